"""Megatron-LM indexed datasets (`.bin` + `.idx`, the MMIDIDX format): token ids plus a parallel loss mask.

The format, as `megatron.core.datasets.indexed_dataset` reads it (all little-endian):
- `.bin`: every sequence's values end to end, no header.
- `.idx`: the magic `MMIDIDX\\x00\\x00`; version 1 (uint64); the value dtype code (uint8: 1 = uint8,
  4 = int32, Megatron's `DType`); the sequence count (uint64); the document-index count (uint64);
  each sequence's length (int32); each sequence's byte offset in `.bin` (int64); the document
  indices (int64): 0, then after each document the number of sequences so far.

Each sample is one sequence. Unpacked, each sample is also a document; packed, each packed row is a
document whose sequences are its samples, so the row's `seq_lens` are its sequences' lengths.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .atomic import temp_path
from .shards import Columns, ShardWriter, offsets_of

INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES = {np.dtype("uint8"): 1, np.dtype("int32"): 4}  # Megatron's DType enum
DATASETS = {"input_ids": np.dtype("<i4"), "loss_mask": np.dtype("u1")}  # name -> value dtype


def write_index(path: Path, dtype: np.dtype, sequence_lengths: np.ndarray, document_indices: np.ndarray) -> None:
    """Write an `.idx` file for sequences of `dtype` values laid end to end in the `.bin`."""
    pointers = offsets_of(sequence_lengths)[:-1] * dtype.itemsize
    with open(path, "wb") as handle:
        handle.write(INDEX_MAGIC)
        handle.write(struct.pack("<QBQQ", INDEX_VERSION, DTYPE_CODES[dtype], len(sequence_lengths),
                                 len(document_indices)))
        handle.write(sequence_lengths.astype("<i4").tobytes())
        handle.write(pointers.astype("<i8").tobytes())
        handle.write(document_indices.astype("<i8").tobytes())


class MegatronShardWriter(ShardWriter):
    """Writes `shard-00000.input_ids.{bin,idx}` and `shard-00000.loss_mask.{bin,idx}`, ...

    Load with `IndexedDataset("out/shard-00000.input_ids")`; the `loss_mask` dataset has the same
    sequences and documents (uint8, 1 = trained). Labels are the ids where the mask is 1; position
    ids restart at 0 for each sequence. See `ShardWriter` for the arguments.
    """

    name = "megatron"

    def paths(self, index: int) -> list[Path]:
        # The .idx files come last: an .idx under its final name means its .bin is complete too.
        return [self._path(index, name, suffix) for suffix in ("bin", "idx") for name in DATASETS]

    def _path(self, index: int, name: str, suffix: str) -> Path:
        return self.out_dir / f"{self.stem(index)}.{name}.{suffix}"

    def _start(self, index: int) -> None:
        self._index = index
        self._bins = {name: open(temp_path(self._path(index, name, "bin")), "wb") for name in DATASETS}
        self._seq_lens: list[np.ndarray] = []
        self._docs: list[np.ndarray] = []

    def _append(self, columns: Columns) -> None:
        self._bins["input_ids"].write(columns.input_ids.astype(DATASETS["input_ids"]).tobytes())
        self._bins["loss_mask"].write(columns.loss_mask.astype(DATASETS["loss_mask"]).tobytes())
        self._seq_lens.append(columns.seq_lens)
        self._docs.append(columns.samples_per_row)

    def _end(self) -> None:
        for handle in self._bins.values():
            handle.close()
        seq_lens = np.concatenate(self._seq_lens) if self._seq_lens else np.zeros(0, dtype=np.int32)
        docs = offsets_of(np.concatenate(self._docs) if self._docs else np.zeros(0, dtype=np.int64))
        for name, dtype in DATASETS.items():
            write_index(temp_path(self._path(self._index, name, "idx")), dtype, seq_lens, docs)
