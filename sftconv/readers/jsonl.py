"""JSON Lines: one JSON value per line, located by 1-based line number."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from .base import Reader
from .compression import open_binary

TOO_DEEP = "JSON nested too deeply to decode"


def parse_lines(lines: Iterable[bytes], source: str) -> Iterator[Record | Rejected]:
    """Each non-blank line as a Record, or a located Rejected if it is not UTF-8 JSON."""
    for number, raw in enumerate(lines, 1):
        location = Location(source, line=number)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield Rejected(location, INVALID_UTF8, str(error), raw.decode("utf-8", "replace"))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
        if not text.strip():
            continue
        try:
            # strict=False accepts a raw tab or CR inside a string: unambiguous, and common in exports.
            yield Record(location, json.loads(text, strict=False))
        except json.JSONDecodeError as error:
            yield Rejected(location, INVALID_JSON, str(error), text.rstrip("\r\n"))
        except RecursionError:
            yield Rejected(location, INVALID_JSON, TOO_DEEP, text.rstrip("\r\n"))


class JsonlReader(Reader):
    """Reads `.jsonl` files (plain, gzip or zstd) line by line, in bounded memory; blank lines are not records."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        with open_binary(path) as handle:
            yield from parse_lines(handle, str(path))
