"""CSV with a header row: every cell stays a string (`3.3` and `00000` are text, as the file wrote them)."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from ..conversation import INVALID_CSV, INVALID_UTF8, Location, Record, Rejected
from .base import Reader
from .compression import open_binary

# Chat answers can be far longer than csv's default 128 KiB field limit.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class CsvReader(Reader):
    """Reads `.csv` files: the first row names the fields, each later row is a record of strings.

    A record is located by the line it starts on (a quoted cell may span lines). An empty cell is
    the empty string, which the shapes treat as absent for optional fields such as `input` or `system`.
    A row whose cell count differs from the header's is rejected (`invalid_csv`).
    """

    name = "csv"
    suffixes = (".csv",)

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        source = str(path)
        with open_binary(path) as binary:
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            rows = csv.reader(text)
            start = 1  # the line the next record starts on
            try:
                header = next(rows, None)
                if header is None:
                    return
                start = rows.line_num + 1
                for cells in rows:
                    location = Location(source, line=start)
                    start = rows.line_num + 1
                    if not cells:
                        continue  # a blank line
                    if len(cells) != len(header):
                        yield Rejected(location, INVALID_CSV,
                                       f"{len(cells)} cells, but the header has {len(header)}", cells)
                        continue
                    yield Record(location, dict(zip(header, cells)))
            except UnicodeDecodeError as error:
                yield Rejected(Location(source, line=start), INVALID_UTF8,
                               f"{error}; the rest of the file cannot be read")
            except csv.Error as error:
                yield Rejected(Location(source, line=rows.line_num), INVALID_CSV,
                               f"{error}; the rest of the file cannot be read")
