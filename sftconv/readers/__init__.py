"""Readers: files -> located raw records. They know file formats and nothing about chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..conversation import Record, Rejected
from .base import Reader, expand_inputs
from .jsonl import JsonlReader

READERS: dict[str, type[Reader]] = {JsonlReader.name: JsonlReader}


def reader_for(path: Path) -> Reader:
    """The reader whose suffix the file name carries.

    Raises:
        ValueError: no reader knows the suffix; the message lists the ones that exist.
    """
    for reader in READERS.values():
        if path.name.lower().endswith(reader.suffixes):
            return reader()
    known = ", ".join(s for r in READERS.values() for s in r.suffixes)
    raise ValueError(f"{path}: no reader for this file type (known: {known})")


def read_records(paths: list[Path]) -> Iterator[Record | Rejected]:
    """Every record of every file, in the order given."""
    for path in paths:
        yield from reader_for(path).read_file(path)


__all__ = ["READERS", "Reader", "expand_inputs", "read_records", "reader_for"]
