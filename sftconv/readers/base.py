"""What every reader shares: one method to implement, and failures that name the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..conversation import Record, Rejected


class ReaderError(Exception):
    """A whole input cannot be read (missing, corrupt, truncated, not the format its name says)."""


class Reader:
    """Yields the records of one input; subclasses implement `read_file` and know nothing of chat."""

    name = ""
    suffixes: tuple[str, ...] = ()  # file-name endings this reader takes (after any .gz or .zst)

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        """Yield each record of `path`, or a Rejected for a part that cannot be decoded."""
        raise NotImplementedError

    def read(self, path: Path) -> Iterator[Record | Rejected]:
        """`read_file`, with a failure of the whole input raised as a ReaderError that names it.

        Raises:
            ReaderError: the input cannot be opened, is corrupt, or its compressed stream is truncated.
        """
        import zstandard

        try:
            yield from self.read_file(path)
        except ReaderError:
            raise
        except (OSError, EOFError, zstandard.ZstdError) as error:
            raise ReaderError(f"{path}: cannot be read: {error}") from error
