"""Compressed inputs: gzip and zstd, recognised by their magic bytes or, failing that, by the file name."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def inner_name(name: str) -> str:
    """The file name without its compression suffix: `train.jsonl.gz` -> `train.jsonl`."""
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in COMPRESSION_SUFFIXES else name


def compression_of(path: Path) -> str | None:
    """`gzip`, `zstd` or None; the content decides first, so a gzip file named `.jsonl` is still read."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return COMPRESSION_SUFFIXES.get(path.suffix.lower())


def open_binary(path: Path) -> BinaryIO:
    """The file's decompressed bytes as a buffered stream that can be iterated line by line."""
    codec = compression_of(path)
    if codec == "gzip":
        return gzip.open(path, "rb")
    if codec == "zstd":
        import zstandard

        # read_across_frames: a file that `zstd` wrote in several frames is read to its end.
        stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True, closefd=True)
        return io.BufferedReader(stream)
    return open(path, "rb")
