"""JSON Lines: one JSON value per line, located by 1-based line number."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from .base import Chunk, Reader
from .compression import open_binary

CHUNK_BYTES = 1 << 18  # whole lines per chunk, about this many bytes


def parse_lines(lines: Iterable[bytes], source: str, first_line: int = 1) -> Iterator[Record | Rejected]:
    """Each non-blank line as a Record, or a located Rejected if it is not UTF-8 JSON.

    `first_line` is the line number of the first of `lines`.
    """
    import msgspec

    decode = msgspec.json.Decoder().decode
    for number, raw in enumerate(lines, first_line):
        if number != 1:
            # The fast path: what msgspec accepts, json.loads accepts too and decodes to equal values (a
            # test checks this). Whatever msgspec refuses, in whatever way, takes the path below, which
            # decides how a line is read and how a bad one is reported.
            try:
                data = decode(raw)
            except Exception:
                pass
            else:
                yield Record(Location(source, line=number), data)
                continue
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


@dataclass(frozen=True)
class LineChunk(Chunk):
    """Raw lines of a JSON Lines file, parsed where the chunk is processed."""

    source: str
    first_line: int
    lines: list[bytes]

    def records(self) -> Iterator[Record | Rejected]:
        return parse_lines(self.lines, self.source, self.first_line)


class JsonlReader(Reader):
    """Reads `.jsonl` files (plain, gzip or zstd) line by line, in bounded memory; blank lines are not records."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        for chunk in self.file_chunks(path):
            yield from chunk.records()

    def file_chunks(self, path: Path) -> Iterator[LineChunk]:
        with open_binary(path) as handle:
            first_line = 1
            while lines := handle.readlines(CHUNK_BYTES):
                yield LineChunk(str(path), first_line, lines)
                first_line += len(lines)
