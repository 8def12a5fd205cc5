"""JSON Lines: one JSON value per line, located by 1-based line number."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from .base import Chunk, Reader
from .compression import open_binary

CHUNK_BYTES = 1 << 18  # a chunk holds the whole lines that start in this many bytes
TOO_DEEP = "JSON nested too deeply to decode"


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
        except RecursionError:
            yield Rejected(location, INVALID_JSON, TOO_DEEP, text.rstrip("\r\n"))


@dataclass(frozen=True)
class LineChunk(Chunk):
    """Whole lines of a JSON Lines file as one block of bytes, split and parsed where the chunk is processed."""

    source: str
    first_line: int
    data: bytes

    def records(self) -> Iterator[Record | Rejected]:
        # BytesIO splits at b"\n" only, as iterating over the file does (a raw \r may sit inside a string).
        return parse_lines(io.BytesIO(self.data).readlines(), self.source, self.first_line)


class JsonlReader(Reader):
    """Reads `.jsonl` files (plain, gzip or zstd) line by line, in bounded memory; blank lines are not records."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        for chunk in self.file_chunks(path):
            yield from chunk.records()

    def file_chunks(self, path: Path) -> Iterator[LineChunk]:
        source, first_line, pending = str(path), 1, []  # pending: the start of a line not yet ended
        with open_binary(path) as handle:
            while block := handle.read(CHUNK_BYTES):
                end = block.rfind(b"\n") + 1
                if not end:
                    pending.append(block)
                    continue
                data = b"".join([*pending, block[:end]])
                pending = [block[end:]]
                yield LineChunk(source, first_line, data)
                first_line += data.count(b"\n")
        if tail := b"".join(pending):
            yield LineChunk(source, first_line, tail)
