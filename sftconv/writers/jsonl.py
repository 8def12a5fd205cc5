"""JSON Lines shards: every row's ids, labels and mask as plain JSON, for reading small sets by eye."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import temp_path
from .shards import Columns, ShardWriter


class JsonlShardWriter(ShardWriter):
    """Writes `shard-00000.jsonl`, ...: one JSON object per row with the Parquet writer's columns, in its order.

    Large and slow to load compared with Parquet: meant for debugging. See `ShardWriter` for the arguments.
    """

    name = "jsonl"

    def paths(self, index: int) -> list[Path]:
        return [self.out_dir / f"{self.stem(index)}.jsonl"]

    def _start(self, index: int) -> None:
        self._handle = open(temp_path(self.paths(index)[0]), "w", encoding="utf-8")

    def _append(self, columns: Columns) -> None:
        names = ["input_ids", "labels", "loss_mask"] + (["position_ids"] if self.packed else [])
        flat = {name: getattr(columns, name).tolist() for name in names}
        seq_lens = columns.seq_lens.tolist()
        offsets, seq_offsets = columns.row_offsets.tolist(), columns.seq_offsets.tolist()
        for r in range(len(columns)):
            start, stop = offsets[r], offsets[r + 1]
            row = {name: values[start:stop] for name, values in flat.items()}
            if self.packed:
                row["seq_lens"] = seq_lens[seq_offsets[r]:seq_offsets[r + 1]]
            row["length"] = stop - start
            row.update(zip(self.keep, columns.kept[r] if self.keep else ()))
            self._handle.write(json.dumps(row) + "\n")

    def _end(self) -> None:
        self._handle.close()
