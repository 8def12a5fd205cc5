"""What every reader shares: one method to implement, and failures that name the file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from ..conversation import Record, Rejected
from ..remote import filesystem, is_url, local_path, store_errors

CHUNK_RECORDS = 256  # records per chunk from a reader that decodes its records itself
# Bytes fetched per request from a URL: enough that a request's latency is small next to its transfer, little
# enough that detecting an input's shape (its first records) fetches not much more than those (fsspec's S3 default
# is 50 MiB). A reader that jumps about keeps the last URL_BLOCKS_KEPT blocks: one per column being read.
URL_BLOCK = 4 << 20
URL_BLOCKS_KEPT = 16


class ReaderError(Exception):
    """A whole input cannot be read (missing, corrupt, truncated, not the format its name says)."""


def open_input(item: Path | str, *, random_reads: bool = False) -> BinaryIO:
    """An input's raw bytes, seekable: a local file with the builtin `open`, a URL through its fsspec filesystem.

    `random_reads` is for a reader that jumps about the file (Parquet, between column chunks): a URL's
    blocks are then kept, where reading ahead would fetch one block again at every jump.
    """
    if not is_url(item):
        return open(local_path(item) if isinstance(item, str) else item, "rb")
    fs, path = filesystem(item)
    cache = {"cache_type": "blockcache", "cache_options": {"maxblocks": URL_BLOCKS_KEPT}} if random_reads else {}
    return fs.open(path, "rb", block_size=URL_BLOCK, **cache)


class Chunk:
    """A run of consecutive records of one input, small enough to send to a worker process.

    A reader may leave decoding to the chunk (`records` runs where the chunk is processed), so that
    parsing is spread over the workers too.
    """

    def records(self) -> Iterator[Record | Rejected]:
        """The chunk's records (or Rejected parts) in input order."""
        raise NotImplementedError


@dataclass(frozen=True)
class RecordChunk(Chunk):
    """Records that were already decoded."""

    items: list[Record | Rejected]

    def records(self) -> Iterator[Record | Rejected]:
        return iter(self.items)


@dataclass(frozen=True)
class Span:
    """A part of an input that can be read on its own: lines from a byte offset (JSON Lines) or row groups (Parquet).

    `start` and `stop` are byte offsets at line starts or row-group indices (`stop` None: to the end);
    `first` is the number of the span's first line (1-based) or row (0-based), so locations stay
    those of the whole file.
    """

    start: int
    stop: int | None
    first: int

    def to_json(self) -> dict:
        return {"start": self.start, "stop": self.stop, "first": self.first}


class Reader:
    """Yields the records of one input; subclasses implement `read_file` and know nothing of chat."""

    name = ""
    suffixes: tuple[str, ...] = ()  # file-name endings this reader takes (after any .gz or .zst)

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        """Yield each record of `path`, or a Rejected for a part that cannot be decoded."""
        raise NotImplementedError

    def spans(self, path: Path, size: int) -> list[Span | None]:
        """The input cut into parts of about `size` bytes, in order; None stands for the whole input.

        A reader that can start reading in the middle of a file overrides this and honours the span in
        `file_chunks`; the others read each input whole.
        """
        return [None]

    def file_chunks(self, path: Path, span: Span | None = None) -> Iterator[Chunk]:
        """`read_file`'s records in chunks; a reader that can leave decoding to the chunk overrides this."""
        records = self.read_file(path)
        while items := list(islice(records, CHUNK_RECORDS)):
            yield RecordChunk(items)

    def read(self, path: Path) -> Iterator[Record | Rejected]:
        """`read_file`, with a failure of the whole input raised as a ReaderError that names it.

        Raises:
            ReaderError: the input cannot be opened, is corrupt, or its compressed stream is truncated.
        """
        return self._named_failures(path, self.read_file(path))

    def chunks(self, path: Path, span: Span | None = None) -> Iterator[Chunk]:
        """`file_chunks` of the span (None: the whole input), with failures raised as `read` raises them.

        Raises:
            ReaderError: as for `read`.
        """
        return self._named_failures(path, self.file_chunks(path, span))

    @staticmethod
    def _named_failures(path: Path | str, items: Iterator) -> Iterator:
        import zstandard

        try:
            with store_failures(path):
                yield from items
        except ReaderError:
            raise
        except (OSError, EOFError, zstandard.ZstdError) as error:
            raise ReaderError(f"{path}: cannot be read: {error}") from error


@contextmanager
def store_failures(path: Path | str) -> Iterator[None]:
    """A URL's store that cannot be reached (no credentials, no network), raised as a ReaderError naming the URL.

    Filesystem packages report these in their own classes (botocore's NoCredentialsError...), not as OSError.
    """
    try:
        yield
    except store_errors() as error:
        raise ReaderError(f"{path}: cannot be read: {type(error).__name__}: {error}") from error
