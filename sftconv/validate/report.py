"""What validation found: per-code counts with the first few places, exact statistics, and the verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..conversation import Location
from ..percentiles import percentile
from .codes import ERROR, WARNING, severity


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one record, row or file; `field` names the offending field where known."""

    code: str
    detail: str
    field: str | None = None


@dataclass
class Issue:
    """Every occurrence of one code: how many records (rows, files) have it, and the first few."""

    code: str
    count: int = 0
    examples: list[tuple[Location, Finding]] = field(default_factory=list)
    last: Location | None = field(default=None, repr=False)

    @property
    def severity(self) -> str:
        return severity(self.code)

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "count": self.count,
            "examples": [{"location": str(loc), "source": loc.source, "line": loc.line, "row": loc.row,
                          "field": f.field, "detail": f.detail} for loc, f in self.examples],
        }


class Distribution:
    """Exact percentiles in memory bounded by the number of distinct values (a histogram, not a list).

    Percentiles are nearest-rank (`sftconv.percentiles`, as inspect --stats computes them).

    Example:
        >>> d = Distribution()
        >>> for v in (3, 1, 2, 10):
        ...     d.add(v)
        >>> d.percentile(50), d.percentile(95)
        (2, 10)
    """

    def __init__(self):
        self.counts: Counter[int] = Counter()
        self.n = 0
        self.total = 0

    def add(self, value: int) -> None:
        self.counts[value] += 1
        self.n += 1
        self.total += value

    def add_all(self, values) -> None:
        """Add every value of an integer array at once."""
        distinct, counts = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
        for value, count in zip(distinct.tolist(), counts.tolist()):
            self.counts[value] += count
        self.n += len(values)
        self.total += int(np.asarray(values, dtype=np.int64).sum())

    def percentile(self, p: float) -> int | None:
        values = sorted(self.counts)
        return percentile(values, [self.counts[value] for value in values], p)

    def to_json(self) -> dict:
        return {
            "count": self.n,
            "min": min(self.counts, default=None),
            "median": self.percentile(50),
            "p95": self.percentile(95),
            "max": max(self.counts, default=None),
            "mean": round(self.total / self.n, 2) if self.n else None,
        }


@dataclass
class Report:
    """Findings of one validation run and the exit code they lead to.

    A unit is a record (raw input) or a row (shards). The error rate is the share of units with an
    error (with `strict`, with an error or a warning); it may be up to `max_error_rate`. A finding about
    a whole file or the run (a missing shard, no records at all) fails the run whatever the rate.
    """

    kind: str
    inputs: list[str]
    unit: str
    max_examples: int = 3
    strict: bool = False
    max_error_rate: float = 0.0
    checked: int = 0
    with_errors: int = 0
    with_warnings: int = 0
    file_errors: int = 0
    file_warnings: int = 0
    issues: dict[str, Issue] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def add(self, location: Location, findings: list[Finding]) -> None:
        """Tally one unit's findings: each code counts once per unit, its first findings kept as examples."""
        if not findings:
            return
        levels = {self._tally(location, f) for f in findings}
        if ERROR in levels:
            self.with_errors += 1
        elif WARNING in levels:
            self.with_warnings += 1

    def add_file(self, location: Location, finding: Finding) -> None:
        """Tally a finding about a whole file or the run, which does not count toward the error rate."""
        if self._tally(location, finding) == ERROR:
            self.file_errors += 1
        else:
            self.file_warnings += 1

    def _tally(self, location: Location, finding: Finding) -> str:
        issue = self.issues.setdefault(finding.code, Issue(finding.code))
        if issue.last != location:
            issue.last = location
            issue.count += 1
            if len(issue.examples) < self.max_examples:
                issue.examples.append((location, finding))
        return issue.severity

    @property
    def error_rate(self) -> float:
        failing = self.with_errors + (self.with_warnings if self.strict else 0)
        return failing / self.checked if self.checked else 0.0

    @property
    def ok(self) -> bool:
        if self.file_errors or (self.strict and self.file_warnings):
            return False
        return self.error_rate <= self.max_error_rate

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def verdict(self) -> str:
        """One line saying whether the run passes, and why."""
        units = f"{self.checked:,} {self.unit}s"
        failing = self.with_errors + (self.with_warnings if self.strict else 0)
        what = "errors or warnings" if self.strict else "errors"
        rate = f"{failing:,} of {units} ({self.error_rate:.1%}) have {what}"
        limit = f"--max-error-rate {self.max_error_rate:g}"
        file_level = self.file_errors + (self.file_warnings if self.strict else 0)
        if file_level:
            return f"FAILED: {file_level:,} finding(s) about whole files or the run; {rate}"
        if not self.ok:
            return f"FAILED: {rate}, over {limit}"
        return f"OK: {rate}, within {limit}" if failing else f"OK: no {what} in {units}"

    def sorted_issues(self) -> list[Issue]:
        """Errors first, then warnings, each by code."""
        return sorted(self.issues.values(), key=lambda i: (i.severity != ERROR, i.code))

    def to_json(self) -> dict:
        """The report as `schemas/validate_report.json` defines it."""
        return {
            "sftconv_version": __version__,
            "kind": self.kind,
            "inputs": self.inputs,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "strict": self.strict,
            "max_error_rate": self.max_error_rate,
            "unit": self.unit,
            "checked": self.checked,
            "with_errors": self.with_errors,
            "with_warnings": self.with_warnings,
            "error_rate": self.error_rate,
            "errors": sum(i.count for i in self.issues.values() if i.severity == ERROR),
            "warnings": sum(i.count for i in self.issues.values() if i.severity == WARNING),
            "issues": [i.to_json() for i in self.sorted_issues()],
            "stats": self.stats,
        }
