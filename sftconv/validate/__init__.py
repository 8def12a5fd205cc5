"""Validation: raw input through convert's own code path, or a finished output folder against its manifest."""

from .codes import ERROR, WARNING, severity
from .raw import RawChecks, validate_raw
from .report import Distribution, Finding, Issue, Report
from .shards import is_output_folder, validate_shards

__all__ = [
    "ERROR",
    "WARNING",
    "Distribution",
    "Finding",
    "Issue",
    "RawChecks",
    "Report",
    "is_output_folder",
    "severity",
    "validate_raw",
    "validate_shards",
]
