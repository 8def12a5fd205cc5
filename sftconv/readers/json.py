"""`.json` files: a top-level array of records, a single record, or JSON Lines under a `.json` name."""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

from ..conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from .base import Reader, ReaderError
from .compression import open_binary
from .jsonl import TOO_DEEP, parse_lines

WHITESPACE = re.compile(r"[ \t\r\n]*")
DECODER = json.JSONDecoder(strict=False)  # strict=False: a raw tab or CR inside a string is unambiguous


class JsonReader(Reader):
    """Reads a whole `.json` document: each element of a top-level array is a record, any other value is one.

    A file whose first line is a complete JSON value followed by more values is JSON Lines under
    another name, and is read line by line. Array elements are located by the line they start on and
    by their 0-based index (`row`). The document is held in memory while it is read; use JSON Lines
    or Parquet for data larger than memory.

    Args:
        records: the field (or path `a.b`) of a top-level object that holds the list of records, for
            files that wrap them (`{"version": 2, "data": [...]}`); its elements are located by `row` alone.
            Default None: the document is the records, as above.
    """

    name = "json"
    suffixes = (".json",)

    def __init__(self, records: str | None = None):
        self.records = records

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        source = str(path)
        with open_binary(path) as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            yield Rejected(Location(source), INVALID_UTF8, f"the file is not UTF-8: {error}")
            return
        if self.records is not None:
            yield from wrapped_records(text, source, self.records)
        elif is_json_lines(text):
            yield from parse_lines(data.removeprefix(b"\xef\xbb\xbf").splitlines(keepends=True), source)
        else:
            yield from parse_document(text, source)


def wrapped_records(text: str, source: str, path: str) -> Iterator[Record | Rejected]:
    """The elements of the list at `path` in the document's top-level object.

    Raises:
        MissingRecords: the document has no list there; the message names the fields it has and the closest.
    """
    try:
        document = json.loads(text, strict=False)
    except json.JSONDecodeError as error:
        yield rejected_rest(source, LineCounter(text), error, text)
        return
    value, found = document, True
    for part in path.split(".") if not (isinstance(document, dict) and path in document) else [path]:
        found = isinstance(value, dict) and part in value
        value = value.get(part) if found else None
        if not found:
            break
    if not isinstance(value, list):
        fields = list(document) if isinstance(document, dict) else []
        close = difflib.get_close_matches(path, fields, n=1)
        what = f"is {type(value).__name__}, not a list of records" if found else "is not in the document"
        raise MissingRecords(f"{source}: --records-field {path!r} {what} (top-level fields: "
                             f"{', '.join(fields) or 'none'})" + (f"; did you mean {close[0]!r}?" if close else ""))
    for row, item in enumerate(value):
        yield Record(Location(source, row=row), item)


class MissingRecords(ReaderError):
    """--records-field names no list in a `.json` document: a usage error."""


def is_json_lines(text: str) -> bool:
    """True if the first line holds a whole JSON value and something follows it."""
    first, newline, rest = text.lstrip(" \t\r\n").partition("\n")
    if not newline or not rest.strip():
        return False
    try:
        json.loads(first, strict=False)
    except json.JSONDecodeError:
        return False
    return True


def parse_document(text: str, source: str) -> Iterator[Record | Rejected]:
    """The elements of a top-level array (or the one top-level value), decoded one at a time."""
    lines = LineCounter(text)
    position = skip_whitespace(text, 0)
    if position == len(text):
        return  # an empty or blank file is an empty dataset
    try:
        if text[position] == "[":
            end = yield from parse_array(text, position, source, lines)
        else:
            value, end = decode(text, position)
            yield Record(Location(source, line=lines.line_at(position)), value)
        end = skip_whitespace(text, end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data after the top-level value", text, end)
    except json.JSONDecodeError as error:
        yield rejected_rest(source, lines, error, text)


def parse_array(text: str, position: int, source: str, lines: LineCounter):
    """Yield each element of the array opening at `position`; return the position after its `]`."""
    position = skip_whitespace(text, position + 1)
    if text.startswith("]", position):
        return position + 1
    for row in itertools.count():
        value, end = decode(text, position)
        yield Record(Location(source, line=lines.line_at(position), row=row), value)
        end = skip_whitespace(text, end)
        if text.startswith("]", end):
            return end + 1
        if not text.startswith(",", end):
            raise json.JSONDecodeError("Expecting ',' or ']' after an array element", text, end)
        position = skip_whitespace(text, end + 1)


def decode(text: str, position: int) -> tuple[object, int]:
    """The JSON value at `position` and the position after it; nesting too deep to decode is a JSON error."""
    try:
        return DECODER.raw_decode(text, position)
    except RecursionError:
        raise json.JSONDecodeError(TOO_DEEP, text, position) from None


def skip_whitespace(text: str, position: int) -> int:
    """The first position at or after `position` that is not JSON whitespace."""
    return WHITESPACE.match(text, position).end()


def rejected_rest(source: str, lines: LineCounter, error: json.JSONDecodeError, text: str) -> Rejected:
    """One reject for a document that stops being JSON: nothing after the error can be located reliably."""
    line = lines.line_at(error.pos)
    snippet = text[error.pos:error.pos + 200]
    return Rejected(Location(source, line=line), INVALID_JSON,
                    f"{error.msg} at line {line} column {error.colno}; the rest of the file cannot be read", snippet)


class LineCounter:
    """1-based line numbers of positions in a text, asked for in increasing order (counted incrementally)."""

    def __init__(self, text: str):
        self.text = text
        self.position = 0
        self.line = 1

    def line_at(self, position: int) -> int:
        """The line `position` is on."""
        if position < self.position:
            self.position, self.line = 0, 1
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line
