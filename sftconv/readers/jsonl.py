"""JSON Lines: one JSON value per line, located by 1-based line number."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from .base import Chunk, Reader, Span, open_input, store_failures
from .compression import codec_of, open_binary

CHUNK_BYTES = 1 << 18  # a chunk holds the whole lines that start in this many bytes
SCAN_BYTES = 1 << 23  # bytes read at a time while counting the lines before each span
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


def count_lines(handle, start: int, stop: int) -> int:
    """The line ends in bytes `start:stop` of an open file."""
    handle.seek(start)
    return sum(handle.read(min(SCAN_BYTES, stop - at)).count(b"\n") for at in range(start, stop, SCAN_BYTES))


class JsonlReader(Reader):
    """Reads `.jsonl` files (plain, gzip or zstd) line by line, in bounded memory; blank lines are not records."""

    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def read_file(self, path: Path | str) -> Iterator[Record | Rejected]:
        for chunk in self.file_chunks(path):
            yield from chunk.records()

    def spans(self, path: Path | str, size: int) -> list[Span | None]:
        """Spans of about `size` bytes, each ending at a line end; a compressed file is read whole."""
        with store_failures(path), open_input(path) as handle:
            total = handle.seek(0, io.SEEK_END)
            if total <= size:
                return [None]
            handle.seek(0)
            if codec_of(handle.read(4), path):
                return [None]
            spans, start, line = [], 0, 1
            while start < total:
                handle.seek(start + size - 1)
                rest = handle.readline()  # to the end of the line the span's last byte is in
                stop = min(start + size - 1 + len(rest), total)
                spans.append(Span(start, stop if stop < total else None, line))
                if stop < total:
                    line += count_lines(handle, start, stop)
                start = stop
        return spans

    def file_chunks(self, path: Path | str, span: Span | None = None) -> Iterator[LineChunk]:
        source, pending = str(path), []  # pending: the start of a line not yet ended
        first_line, left = 1, None  # left: the bytes still to read, when the span ends before the file
        if span is not None:
            first_line, left = span.first, None if span.stop is None else span.stop - span.start
        with open_binary(path) as handle:
            if span is not None:
                handle.seek(span.start)
            while block := handle.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left)):
                if left is not None:
                    left -= len(block)
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
