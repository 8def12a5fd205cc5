"""Parquet shards of tokenized samples, the default output and what `datasets` and pandas load."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..template import IGNORE_INDEX, Encoded
from .atomic import commit, sha256_file, temp_path

# Explicit, so a shard's schema never depends on the rows that happen to come first.
SCHEMA = pa.schema(
    [
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("labels", pa.list_(pa.int32()), nullable=False),
        pa.field("loss_mask", pa.list_(pa.uint8()), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
    ],
    metadata={
        b"sftconv.labels": f"token id where trained, {IGNORE_INDEX} elsewhere".encode(),
        b"sftconv.loss_mask": b"1 = the token counts toward the loss",
    },
)


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What the manifest records of one finished shard."""

    file: str
    rows: int
    tokens: int
    trained_tokens: int
    sha256: str

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "rows": self.rows,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "sha256": self.sha256,
        }


def to_table(samples: list[Encoded]) -> pa.Table:
    """Samples as one Arrow table, built from flat numpy buffers rather than Python lists of lists."""
    lengths = np.fromiter((len(s.input_ids) for s in samples), dtype=np.int32, count=len(samples))
    offsets = np.zeros(len(samples) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    ids = np.fromiter(chain.from_iterable(s.input_ids for s in samples), dtype=np.int32, count=total)
    mask = np.fromiter(chain.from_iterable(s.loss_mask for s in samples), dtype=np.uint8, count=total)
    labels = np.where(mask.astype(bool), ids, np.int32(IGNORE_INDEX)).astype(np.int32)
    offsets_array = pa.array(offsets)
    return pa.Table.from_arrays(
        [
            pa.ListArray.from_arrays(offsets_array, pa.array(ids)),
            pa.ListArray.from_arrays(offsets_array, pa.array(labels)),
            pa.ListArray.from_arrays(offsets_array, pa.array(mask)),
            pa.array(lengths),
        ],
        schema=SCHEMA,
    )


class ParquetShardWriter:
    """Writes samples to `shard-00000.parquet`, `shard-00001.parquet`, ... of at most `shard_rows` rows.

    Each shard is written under a hidden temporary name and renamed when complete.

    Args:
        out_dir: an existing folder.
        shard_rows: rows per shard (default 100,000).
    """

    name = "parquet"

    def __init__(self, out_dir: Path, *, shard_rows: int = 100_000):
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be at least 1, found {shard_rows}")
        self.out_dir = Path(out_dir)
        self.shard_rows = shard_rows
        self.shards: list[ShardInfo] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = self._tokens = self._trained = 0

    def _path(self, index: int) -> Path:
        return self.out_dir / f"shard-{index:05d}.parquet"

    def write(self, samples: list[Encoded]) -> None:
        """Append samples, starting a new shard whenever the current one is full."""
        while samples:
            if self._writer is None:
                self._writer = pq.ParquetWriter(temp_path(self._path(len(self.shards))), SCHEMA)
            room = self.shard_rows - self._rows
            batch, samples = samples[:room], samples[room:]
            self._writer.write_table(to_table(batch))
            self._rows += len(batch)
            self._tokens += sum(len(s.input_ids) for s in batch)
            self._trained += sum(s.trained_tokens for s in batch)
            if self._rows == self.shard_rows:
                self._finish_shard()

    def _finish_shard(self) -> None:
        self._writer.close()
        self._writer = None
        path = self._path(len(self.shards))
        commit(path)
        self.shards.append(ShardInfo(path.name, self._rows, self._tokens, self._trained, sha256_file(path)))
        self._rows = self._tokens = self._trained = 0

    def close(self) -> list[ShardInfo]:
        """Finish the last shard and return what was written."""
        if self._writer is not None:
            self._finish_shard()
        return self.shards

    def abort(self) -> None:
        """Remove the unfinished shard after a failure; finished shards stay."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            temp_path(self._path(len(self.shards))).unlink(missing_ok=True)
