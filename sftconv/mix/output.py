"""The mix's shards: convert's writers plus two columns saying where each sample came from.

`source` is the sample's source name and `source_row` its row in that source's cache (the folder
`manifest.json` lists under `mix.sources[].cache`), so `sftconv inspect CACHE --index ROW` shows it
with the shard and row it was stored at. In a packed row both are lists, one entry per sample, in
the order of `seq_lens`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..writers.arrow import arrow_array, arrow_schema, to_table
from ..writers.atomic import temp_path
from ..writers.hf import HfShardWriter
from ..writers.jsonl import JsonlShardWriter
from ..writers.parquet import ParquetShardWriter
from ..writers.shards import Columns

if TYPE_CHECKING:
    from ..inspect import Shown

TRACE_METADATA = {
    b"sftconv.source": b"the mix source each sample comes from (one per sample when packed)",
    b"sftconv.source_row": b"the sample's row in its source's cache folder (see manifest.json mix.sources)",
}


def traced_schema(packed: bool) -> pa.Schema:
    """Convert's schema with `source` and `source_row` after its columns."""
    base = arrow_schema(packed)
    kinds = (pa.list_(pa.string()), pa.list_(pa.int64())) if packed else (pa.string(), pa.int64())
    fields = [pa.field("source", kinds[0], nullable=False), pa.field("source_row", kinds[1], nullable=False)]
    return pa.schema([*base, *fields], metadata={**base.metadata, **TRACE_METADATA})


class TracedWriter:
    """A mixin for a ShardWriter: each sample's origin is queued with its rows and taken off as they reach a file.

    `ShardWriter` hands `_append` the rows in the order they were written, so the next samples to
    reach a file are always the oldest queued.
    """

    def __init__(self, out_dir, *, names: Sequence[str] = (), **limits):
        super().__init__(out_dir, **limits)
        self.names = list(names)
        self._traced_sources = np.zeros(0, dtype=np.int64)
        self._traced_rows = np.zeros(0, dtype=np.int64)

    def write_traced(self, columns: Columns, sources: np.ndarray, rows: np.ndarray) -> None:
        """Write rows whose samples came from `sources` (indices into `names`) at `rows` of their caches."""
        self._traced_sources = np.concatenate([self._traced_sources, sources])
        self._traced_rows = np.concatenate([self._traced_rows, rows])
        self.write_columns(columns)

    def take_trace(self, count: int) -> tuple[list[str], np.ndarray]:
        """The source names and cache rows of the next `count` samples."""
        sources, rows = self._traced_sources[:count], self._traced_rows[:count]
        self._traced_sources, self._traced_rows = self._traced_sources[count:], self._traced_rows[count:]
        return [self.names[i] for i in sources.tolist()], rows

    def trace_arrays(self, columns: Columns) -> list[pa.Array]:
        """The `source` and `source_row` columns of these rows."""
        names, rows = self.take_trace(len(columns.seq_lens))
        arrays = [pa.array(names, pa.string()), arrow_array(rows)]
        if self.packed:
            offsets = arrow_array(columns.seq_offsets.astype(np.int32))
            arrays = [pa.ListArray.from_arrays(offsets, array) for array in arrays]
        return arrays

    def traced_table(self, columns: Columns) -> pa.Table:
        """These rows as an Arrow table with convert's columns and the two of the trace."""
        return pa.Table.from_arrays([*to_table(columns, self.packed).columns, *self.trace_arrays(columns)],
                                    schema=traced_schema(self.packed))


class TracedParquetWriter(TracedWriter, ParquetShardWriter):
    """Parquet shards with `source` and `source_row`."""

    def _start(self, index: int) -> None:
        self._writer = pq.ParquetWriter(temp_path(self.paths(index)[0]), traced_schema(self.packed))

    def _append(self, columns: Columns) -> None:
        self._writer.write_table(self.traced_table(columns))


class TracedHfWriter(TracedWriter, HfShardWriter):
    """A `datasets` folder with `source` and `source_row` (in its features too)."""

    @classmethod
    def table_schema(cls, packed: bool) -> pa.Schema:
        return traced_schema(packed)

    def _append(self, columns: Columns) -> None:
        self._writer.write_table(self.traced_table(columns).replace_schema_metadata(self.schema.metadata))


class TracedJsonlWriter(TracedWriter, JsonlShardWriter):
    """JSON Lines shards with `source` and `source_row` in each object."""

    def rows(self, columns: Columns) -> Iterator[dict]:
        names, rows = self.take_trace(len(columns.seq_lens))
        rows, seq_offsets = rows.tolist(), columns.seq_offsets.tolist()
        for r, row in enumerate(super().rows(columns)):
            if self.packed:
                start, stop = seq_offsets[r], seq_offsets[r + 1]
                row["source"], row["source_row"] = names[start:stop], rows[start:stop]
            else:
                row["source"], row["source_row"] = names[r], rows[r]
            yield row


def read_trace(path: Path, format: str) -> list[dict]:
    """Each row's `source` and `source_row` in one shard file of a mix (lists in a packed row)."""
    if format == "jsonl":
        with open(path, encoding="utf-8") as handle:
            return [{key: row[key] for key in ("source", "source_row")} for row in map(json.loads, handle)]
    if format == "hf":
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_stream(source).read_all()
    else:
        table = pq.read_table(path, columns=["source", "source_row"])
    return table.select(["source", "source_row"]).to_pylist()


def with_origins(shown: list[Shown], format: str, sources: list[dict]) -> list[Shown]:
    """Shown samples of a mix, each with its source, its row in that source's cache and, where known, its record.

    `sources` is the manifest's `mix.sources` (see `trace.record_location`).
    """
    from .trace import record_location

    by_name = {source["name"]: source for source in sources}
    traces: dict[str, list[dict]] = {}
    result = []
    for item in shown:
        location = item.sample.location
        if location.source not in traces:
            traces[location.source] = read_trace(Path(location.source), format)
        trace = traces[location.source][location.row]
        source, row = trace["source"], trace["source_row"]
        if item.place is not None:
            source, row = source[item.place], row[item.place]
        record = record_location(by_name[source], row)
        result.append(replace(item, origin=f"{source} row {row}" + (f" ({record})" if record else "")))
    return result


TRACED_WRITERS = {writer.name: writer for writer in (TracedParquetWriter, TracedHfWriter, TracedJsonlWriter)}
