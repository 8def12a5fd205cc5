"""Parquet: streamed one batch of a row group at a time, never the whole file; nested columns become lists and dicts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..conversation import Location, Record, Rejected
from ..remote import is_url, local_path
from . import base
from .base import Chunk, Reader, ReaderError, Span, open_input, store_failures

if TYPE_CHECKING:
    import pyarrow as pa

READ_BUFFER = 1 << 20  # bytes read from disk at a time within a column chunk


@dataclass(frozen=True)
class ArrowChunk(Chunk):
    """Consecutive rows as an Arrow record batch, turned into Python objects where the chunk is processed."""

    source: str
    first_row: int
    batch: pa.RecordBatch

    def records(self) -> Iterator[Record | Rejected]:
        for row, data in enumerate(self.batch.to_pylist(), self.first_row):
            yield Record(Location(self.source, row=row), data)


def parquet_input(path: Path | str) -> AbstractContextManager:
    """What pyarrow opens: a local file by its path (read by pyarrow's own I/O, outside the GIL), a URL's file object."""
    return open_input(path, random_reads=True) if is_url(path) else nullcontext(local_path(str(path)))


class ParquetReader(Reader):
    """Reads `.parquet` files with pyarrow's `ParquetFile.iter_batches`, so memory stays near one row group.

    A record is located by its 0-based row, as pandas and `datasets` number rows. A `list<struct>`
    column (such as `messages`) arrives as a list of dicts; a struct field missing from a message is None.
    """

    name = "parquet"
    suffixes = (".parquet", ".pq")

    def read_file(self, path: Path | str) -> Iterator[Record | Rejected]:
        for chunk in self.file_chunks(path):
            yield from chunk.records()

    def spans(self, path: Path | str, size: int) -> list[Span | None]:
        """Runs of whole row groups of about `size` bytes of data each (as the file's metadata counts them)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with store_failures(path), parquet_input(path) as handle:
                metadata = pq.ParquetFile(handle).metadata
        except pa.ArrowException as error:
            raise ReaderError(f"{path}: not a readable Parquet file: {error}") from error
        spans, start, first, row, taken = [], 0, 0, 0, 0
        for index in range(metadata.num_row_groups):
            group = metadata.row_group(index)
            if taken and taken + group.total_byte_size > size:
                spans.append(Span(start, index, first))
                start, first, taken = index, row, 0
            taken += group.total_byte_size
            row += group.num_rows
        return [None] if not spans else [*spans, Span(start, None, first)]

    def file_chunks(self, path: Path | str, span: Span | None = None) -> Iterator[ArrowChunk]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = str(path)
        try:
            with parquet_input(path) as handle:
                # pre_buffer=False: pyarrow's default pre-buffering reads ahead across row groups, which for a
                # large file meant holding about the whole file in memory; buffer_size reads column chunks piecewise.
                parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=READ_BUFFER)
                groups, row = None, 0
                if span is not None:
                    groups = range(span.start, parquet.num_row_groups if span.stop is None else span.stop)
                    row = span.first
                for batch in parquet.iter_batches(batch_size=base.CHUNK_RECORDS, row_groups=groups):
                    yield ArrowChunk(source, row, batch)
                    row += batch.num_rows
        except pa.ArrowException as error:
            raise ReaderError(f"{path}: not a readable Parquet file: {error}") from error
