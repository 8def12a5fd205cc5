"""Parquet shards of tokenized samples, the default output and what `datasets` and pandas load."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from .arrow import arrow_schema, to_table
from .atomic import temp_path
from .shards import Columns, ShardWriter


class ParquetShardWriter(ShardWriter):
    """Writes `shard-00000.parquet`, `shard-00001.parquet`, ...: one row per sample (or packed row).

    Columns: `input_ids`, `labels`, `loss_mask`, `length`, and when packed `position_ids` and
    `seq_lens`, then any kept record fields; a row group per 1,024 rows or 1Mi tokens. See `ShardWriter`
    for the arguments.
    """

    name = "parquet"

    def paths(self, index: int) -> list[Path]:
        return [self.out_dir / f"{self.stem(index)}.parquet"]

    def _start(self, index: int) -> None:
        self._writer = pq.ParquetWriter(temp_path(self.paths(index)[0]), arrow_schema(self.packed, self.keep))

    def _append(self, columns: Columns) -> None:
        self._writer.write_table(to_table(columns, self.packed, self.keep))

    def _end(self) -> None:
        self._writer.close()
