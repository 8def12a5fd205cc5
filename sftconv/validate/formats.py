"""Readers of finished shards, one per output format: a shard file -> batches of flat token arrays.

A reader knows one file format and nothing about what makes a row right (rows.py knows that), so
validating another output format means adding one small class here and registering it by the name
the manifest's `format` field carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ShardReadError(Exception):
    """A shard that cannot be read to the end: corrupt, truncated, or missing a column."""


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """Consecutive rows of one shard as flat arrays; row i of a column is `values[offsets[i]:offsets[i + 1]]`.

    Each column keeps its own offsets, because their agreeing is one of the things checked.
    `length` is the format's stored length column, or None if it has none.
    """

    first_row: int
    input_ids: np.ndarray
    ids_offsets: np.ndarray
    labels: np.ndarray
    labels_offsets: np.ndarray
    loss_mask: np.ndarray
    mask_offsets: np.ndarray
    length: np.ndarray | None

    @property
    def rows(self) -> int:
        return len(self.ids_offsets) - 1


class ParquetShards:
    """Reads the shards `ParquetShardWriter` writes, one row group at a time (bounded memory)."""

    name = "parquet"
    pattern = "*.parquet"  # what a loader globbing the folder would pick up
    columns = ("input_ids", "labels", "loss_mask", "length")

    def batches(self, path: Path) -> Iterator[TokenBatch]:
        """Each row group of `path` as a TokenBatch.

        Raises:
            ShardReadError: the file is not Parquet, is cut short, lacks a column or holds nulls.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(path)
            self._check_schema(file.schema_arrow)
            first_row = 0
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=list(self.columns))
                yield self._batch(table, first_row)
                first_row += table.num_rows
        except (pa.ArrowException, OSError, ValueError) as error:
            raise ShardReadError(f"cannot read as Parquet: {error}") from error

    def _check_schema(self, schema) -> None:
        """Every column there, the token columns lists of integers and `length` an integer."""
        import pyarrow as pa

        missing = [c for c in self.columns if c not in schema.names]
        if missing:
            raise ShardReadError(f"no {', '.join(missing)} column (columns: {', '.join(schema.names)})")
        for name in self.columns:
            kind = schema.field(name).type
            ok = pa.types.is_integer(kind) if name == "length" else (
                pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_integer(kind.value_type)
            if not ok:
                wanted = "an integer" if name == "length" else "a list of integers"
                raise ShardReadError(f"column {name} is {kind}, not {wanted}")

    @staticmethod
    def _batch(table, first_row: int) -> TokenBatch:
        """Flat numpy views of one row group's list columns."""
        flat = {}
        for name in ("input_ids", "labels", "loss_mask"):
            column = table.column(name).combine_chunks()
            if column.null_count:
                raise ShardReadError(f"{column.null_count} null {name} value(s) at rows from {first_row}")
            offsets = column.offsets.to_numpy()
            flat[name] = (column.flatten().to_numpy(), offsets - offsets[0])
        length = table.column("length").to_numpy()
        return TokenBatch(first_row, *flat["input_ids"], *flat["labels"], *flat["loss_mask"], length)


SHARD_READERS = {ParquetShards.name: ParquetShards}
