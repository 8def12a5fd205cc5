"""Parquet: streamed one batch of a row group at a time, never the whole file; nested columns become lists and dicts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..conversation import Location, Record, Rejected
from .base import Reader, ReaderError

BATCH_ROWS = 1024  # rows turned into Python objects at a time; memory also holds one row group's columns
READ_BUFFER = 1 << 20  # bytes read from disk at a time within a column chunk


class ParquetReader(Reader):
    """Reads `.parquet` files with pyarrow's `ParquetFile.iter_batches`, so memory stays near one row group.

    A record is located by its 0-based row, as pandas and `datasets` number rows. A `list<struct>`
    column (such as `messages`) arrives as a list of dicts; a struct field missing from a message is None.
    """

    name = "parquet"
    suffixes = (".parquet", ".pq")

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = str(path)
        try:
            # pre_buffer=False: pyarrow's default pre-buffering reads ahead across row groups, which for a
            # large file meant holding about the whole file in memory; buffer_size reads column chunks piecewise.
            parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
            batches = parquet.iter_batches(batch_size=BATCH_ROWS)
            row = 0
            for batch in batches:
                for data in batch.to_pylist():
                    yield Record(Location(source, row=row), data)
                    row += 1
        except pa.ArrowException as error:
            raise ReaderError(f"{path}: not a readable Parquet file: {error}") from error
