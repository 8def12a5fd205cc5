"""Compressed inputs: gzip and zstd, recognised by their magic bytes or, failing that, by the file name."""

from __future__ import annotations

import gzip
import io
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .base import open_input

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
ZSTD_CHUNK = 1 << 16  # compressed bytes read at a time


def inner_name(name: str) -> str:
    """The file name without its compression suffix: `train.jsonl.gz` -> `train.jsonl`."""
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in COMPRESSION_SUFFIXES else name


def codec_of(head: bytes, path: Path | str) -> str | None:
    """`gzip`, `zstd` or None from a file's first bytes, or failing that its name; so a gzip file named `.jsonl` is still read."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return COMPRESSION_SUFFIXES.get(PurePosixPath(path).suffix.lower())


def open_binary(path: Path | str) -> BinaryIO:
    """The file's decompressed bytes as a buffered stream that can be iterated line by line (a URL too)."""
    handle = open_input(path)
    try:
        codec = codec_of(handle.read(4), path)
        handle.seek(0)
        if codec == "gzip":
            return GzipInput(handle)
        if codec == "zstd":
            return io.BufferedReader(ZstdStream(handle))
    except BaseException:
        handle.close()
        raise
    return handle


class GzipInput(gzip.GzipFile):
    """A gzip stream over an open file that closes the file with it, as `gzip.open(path)` does."""

    def __init__(self, file: BinaryIO):
        super().__init__(fileobj=file, mode="rb")
        self.file = file

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.file.close()


class ZstdStream(io.RawIOBase):
    """A zstd file's decompressed bytes, frame after frame, ending in EOFError if the last frame is cut short.

    zstandard's own `stream_reader` ends quietly at a cut, so a truncated download would read as a
    shorter dataset; gzip raises there, and so does this. A file `zstd` wrote in several frames is read to its end.
    """

    def __init__(self, file: BinaryIO):
        import zstandard

        self.file = file  # closed with the stream
        self.new_frame = zstandard.ZstdDecompressor().decompressobj
        self.frame = self.new_frame()
        self.in_frame = False  # bytes of the current frame have been read, and its end not yet
        self.ready, self.offset = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.offset == len(self.ready):
            chunk = self.file.read(ZSTD_CHUNK)
            if not chunk:
                if self.in_frame:
                    raise EOFError("the zstd stream ends in the middle of a frame (the file is truncated)")
                return 0
            self.ready, self.offset = self.decompress(chunk), 0
        size = min(len(buffer), len(self.ready) - self.offset)
        buffer[:size] = self.ready[self.offset:self.offset + size]
        self.offset += size
        return size

    def decompress(self, chunk: bytes) -> bytes:
        """The bytes `chunk` completes, starting a new frame wherever one ends inside it."""
        out = []
        while chunk:
            self.in_frame = True
            out.append(self.frame.decompress(chunk))
            if not self.frame.eof:
                break
            chunk, self.frame, self.in_frame = self.frame.unused_data, self.new_frame(), False
        return b"".join(out)

    def close(self) -> None:
        self.file.close()
        super().close()
