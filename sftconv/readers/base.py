"""What every reader shares: one method to implement, and input paths expanded for it."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

from ..conversation import Record, Rejected


class Reader:
    """Yields the records of one file; subclasses implement `read_file` and know nothing of chat."""

    name = ""
    suffixes: tuple[str, ...] = ()

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        """Yield each record of `path`, or a Rejected for a part that cannot be decoded."""
        raise NotImplementedError


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files named by the inputs: globs expanded, folders walked in sorted order, each file once.

    Raises:
        FileNotFoundError: an input matches nothing.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches or not os.path.exists(matches[0]):
            raise FileNotFoundError(f"no such file or folder: {item}")
        for match in map(Path, matches):
            if match.is_dir():
                for root, dirs, names in os.walk(match):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    found.update((Path(root, n), None) for n in sorted(names) if not n.startswith("."))
            else:
                found[match] = None
    return list(found)
