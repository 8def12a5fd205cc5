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

from ..writers.arrow import arrow_array, arrow_schema
from ..writers.layouts import SftLayout
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


class TracedLayout(SftLayout):
    """SFT rows with `source` and `source_row`: each sample's origin is queued with its rows and taken
    off as they reach a file.

    A writer hands its layout the rows in the order they were written, so the next samples to reach
    a file are always the oldest queued.
    """

    def __init__(self, packed: bool, names: Sequence[str]):
        super().__init__(packed)
        self.names = list(names)
        self._sources = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros(0, dtype=np.int64)

    def queue(self, sources: np.ndarray, rows: np.ndarray) -> None:
        """The origins of the samples written next: `sources` (indices into `names`) and their cache `rows`."""
        self._sources = np.concatenate([self._sources, sources])
        self._rows = np.concatenate([self._rows, rows])

    def take(self, count: int) -> tuple[list[str], np.ndarray]:
        """The source names and cache rows of the next `count` samples."""
        sources, rows = self._sources[:count], self._rows[:count]
        self._sources, self._rows = self._sources[count:], self._rows[count:]
        return [self.names[i] for i in sources.tolist()], rows

    def schema(self) -> pa.Schema:
        return traced_schema(self.packed)

    def table(self, columns: Columns) -> pa.Table:
        names, rows = self.take(len(columns.seq_lens))
        arrays = [pa.array(names, pa.string()), arrow_array(rows)]
        if self.packed:
            offsets = arrow_array(columns.seq_offsets.astype(np.int32))
            arrays = [pa.ListArray.from_arrays(offsets, array) for array in arrays]
        return pa.Table.from_arrays([*super().table(columns).columns, *arrays], schema=self.schema())

    def json_rows(self, columns: Columns) -> Iterator[dict]:
        names, rows = self.take(len(columns.seq_lens))
        rows, seq_offsets = rows.tolist(), columns.seq_offsets.tolist()
        for r, row in enumerate(super().json_rows(columns)):
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

