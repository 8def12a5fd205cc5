"""`.arrow` files: one Arrow IPC file, as `datasets` caches a dataset (the stream format) or in the file format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..remote import is_url, local_path
from . import base
from .base import Reader, ReaderError, open_input
from .parquet import ArrowChunk

FILE_MAGIC = b"ARROW1"  # the first bytes of the IPC file format; the stream format has none


class ArrowReader(Reader):
    """Reads a single `.arrow` file (such as a `datasets` cache file, `data-00000-of-00001.arrow`) batch by batch.

    The file is memory-mapped where it is local, so memory stays near one batch whatever its size.
    A record is located by its 0-based row. For a whole `save_to_disk` folder, give the folder.
    """

    name = "arrow"
    suffixes = (".arrow",)

    def read_file(self, path: Path | str) -> Iterator:
        for chunk in self.file_chunks(path):
            yield from chunk.records()

    def file_chunks(self, path: Path | str, span: base.Span | None = None) -> Iterator[ArrowChunk]:
        import pyarrow as pa

        source, row = str(path), 0
        try:
            with open_input(path) if is_url(path) else pa.memory_map(local_path(source)) as handle:
                is_file_format = handle.read(len(FILE_MAGIC)) == FILE_MAGIC
                handle.seek(0)
                if is_file_format:
                    opened = pa.ipc.open_file(handle)
                    batches = (opened.get_batch(index) for index in range(opened.num_record_batches))
                else:
                    batches = pa.ipc.open_stream(handle)
                for batch in batches:
                    for start in range(0, batch.num_rows, base.CHUNK_RECORDS):
                        part = batch.slice(start, base.CHUNK_RECORDS)
                        yield ArrowChunk(source, row, part)
                        row += part.num_rows
        except pa.ArrowException as error:
            raise ReaderError(f"{path}: not a readable Arrow IPC file: {error}") from error
