"""Files that appear under their final name only when complete, so a crash never leaves a look-alike."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def temp_path(final: Path) -> Path:
    """The hidden name a file is written under until it is complete."""
    return final.with_name(f".{final.name}.tmp")


def commit(final: Path) -> None:
    """Flush the finished temp file to disk, then give it its final name in one step."""
    temp = temp_path(final)
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final)


def write_text(final: Path, text: str) -> None:
    """Write a whole text file atomically."""
    temp_path(final).write_text(text, encoding="utf-8")
    commit(final)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
