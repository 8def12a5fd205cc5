"""What every writer shares: rows as flat columns, and the cutting of a row stream into atomic shards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..packing import PackedRow, PackedRows
from ..template import IGNORE_INDEX, Encoded, Samples
from .atomic import commit, sha256_file, temp_path

if TYPE_CHECKING:
    from .folder import Folder
    from .layouts import RowLayout

# A writer buffers rows until it has this many rows or tokens, then writes them out together
# (one Parquet row group, one Arrow record batch); the token bound keeps long packed rows in check.
BATCH_ROWS, BATCH_TOKENS = 1024, 1 << 20
TOKEN_BYTES, PACKED_TOKEN_BYTES = 9, 13  # int32 id + int32 label + uint8 mask (+ int32 position id)


@dataclass(frozen=True)
class Columns:
    """Rows as flat numpy buffers, the one thing every writer turns into files.

    Row r is tokens `row_offsets[r]:row_offsets[r + 1]`; its samples' lengths are
    `seq_lens[seq_offsets[r]:seq_offsets[r + 1]]` (one sample per row unless packed). `extras` holds
    per-row values a row layout needs beyond the tokens (a preference row's `prompt_length`...). `kept` holds each
    row's kept record fields as JSON text (see `sftconv.keep`), or is None when no field is kept.
    """

    input_ids: np.ndarray
    loss_mask: np.ndarray
    row_offsets: np.ndarray
    seq_lens: np.ndarray
    seq_offsets: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    kept: list[tuple[str | None, ...]] | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[Encoded | PackedRow]) -> Columns:
        """Columns of samples or packed rows, built from flat buffers rather than lists of lists."""
        lengths = np.fromiter((len(r.input_ids) for r in rows), dtype=np.int64, count=len(rows))
        row_offsets = offsets_of(lengths)
        total = int(row_offsets[-1])
        seqs = [r.seq_lens if isinstance(r, PackedRow) else (len(r.input_ids),) for r in rows]
        seq_counts = np.fromiter(map(len, seqs), dtype=np.int64, count=len(rows))
        return cls(
            input_ids=np.fromiter(chain.from_iterable(r.input_ids for r in rows), dtype=np.int32, count=total),
            loss_mask=np.fromiter(chain.from_iterable(r.loss_mask for r in rows), dtype=np.uint8, count=total),
            row_offsets=row_offsets,
            seq_lens=np.fromiter(chain.from_iterable(seqs), dtype=np.int32, count=int(seq_counts.sum())),
            seq_offsets=offsets_of(seq_counts),
        )

    @classmethod
    def from_samples(cls, samples: Samples, kept: list[tuple[str | None, ...]] | None = None) -> Columns:
        """Columns of unpacked samples: one row each, with each one's kept fields if any."""
        count = len(samples)
        return cls(input_ids=samples.input_ids, loss_mask=samples.loss_mask, row_offsets=samples.offsets,
                   seq_lens=samples.lengths.astype(np.int32), seq_offsets=np.arange(count + 1, dtype=np.int64),
                   kept=kept)

    @classmethod
    def from_packed(cls, packed: PackedRows) -> Columns:
        """Columns of packed rows."""
        samples = packed.samples
        seq_offsets = offsets_of(packed.row_sizes)
        lengths = np.add.reduceat(samples.lengths, seq_offsets[:-1]) if len(packed) else np.zeros(0, dtype=np.int64)
        return cls(input_ids=samples.input_ids, loss_mask=samples.loss_mask, row_offsets=offsets_of(lengths),
                   seq_lens=samples.lengths.astype(np.int32), seq_offsets=seq_offsets)

    @classmethod
    def concat(cls, parts: list[Columns]) -> Columns:
        """One Columns holding the rows of `parts` in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            input_ids=np.concatenate([p.input_ids for p in parts]),
            loss_mask=np.concatenate([p.loss_mask for p in parts]),
            row_offsets=offsets_of(np.concatenate([p.lengths for p in parts])),
            seq_lens=np.concatenate([p.seq_lens for p in parts]),
            seq_offsets=offsets_of(np.concatenate([p.samples_per_row for p in parts])),
            extras={name: np.concatenate([p.extras[name] for p in parts]) for name in parts[0].extras},
            kept=None if parts[0].kept is None else [row for p in parts for row in p.kept],
        )

    def __len__(self) -> int:
        return len(self.row_offsets) - 1

    def slice(self, start: int, stop: int) -> Columns:
        """Rows `start:stop`."""
        first, last = self.row_offsets[start], self.row_offsets[stop]
        seq_first, seq_last = self.seq_offsets[start], self.seq_offsets[stop]
        return Columns(
            input_ids=self.input_ids[first:last],
            loss_mask=self.loss_mask[first:last],
            row_offsets=self.row_offsets[start:stop + 1] - first,
            seq_lens=self.seq_lens[seq_first:seq_last],
            seq_offsets=self.seq_offsets[start:stop + 1] - seq_first,
            extras={name: values[start:stop] for name, values in self.extras.items()},
            kept=None if self.kept is None else self.kept[start:stop],
        )

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_offsets)

    @property
    def samples_per_row(self) -> np.ndarray:
        return np.diff(self.seq_offsets)

    @property
    def labels(self) -> np.ndarray:
        """The token id where trained, IGNORE_INDEX elsewhere."""
        return np.where(self.loss_mask.astype(bool), self.input_ids, np.int32(IGNORE_INDEX)).astype(np.int32)

    @property
    def position_ids(self) -> np.ndarray:
        """Each token's position within its own sample: 0, 1, ... restarting at every sample."""
        sample_starts = offsets_of(self.seq_lens)[:-1]
        return (np.arange(len(self.input_ids)) - np.repeat(sample_starts, self.seq_lens)).astype(np.int32)

    def row_bytes(self, packed: bool) -> np.ndarray:
        """Each row's uncompressed token data, what `shard_bytes` counts."""
        return self.lengths * (PACKED_TOKEN_BYTES if packed else TOKEN_BYTES)


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive runs of `lengths`, with the total at the end."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


@dataclass(frozen=True, slots=True)
class ShardFile:
    """One finished file of a shard."""

    name: str
    bytes: int
    sha256: str

    def to_json(self) -> dict:
        return {"file": self.name, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What the manifest records of one finished shard; `rows` equals `samples` unless packed."""

    files: tuple[ShardFile, ...]
    rows: int
    samples: int
    tokens: int
    trained_tokens: int

    @classmethod
    def from_json(cls, data: dict) -> ShardInfo:
        files = tuple(ShardFile(f["file"], f["bytes"], f["sha256"]) for f in data["files"])
        return cls(files, data["rows"], data["samples"], data["tokens"], data["trained_tokens"])

    def to_json(self) -> dict:
        return {
            "files": [f.to_json() for f in self.files],
            "rows": self.rows,
            "samples": self.samples,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
        }


class ShardWriter:
    """Cuts a stream of rows into shards and makes each appear only when complete.

    A shard ends when it holds `shard_rows` rows, or before the row that would take its token data
    past `shard_bytes` (at least one row per shard); where shards end depends only on the rows, so
    every format cuts the same input at the same rows. Subclasses write one shard's files under
    their temporary names (`_start`, `_append`, `_end`); this class renames them when complete.

    Args:
        out_dir: an existing folder.
        shard_rows: the most rows in a shard (None: no row limit).
        shard_bytes: the most uncompressed token data in a shard, 9 bytes a token, 13 when packed
            (None: no byte limit).
        packed: rows are `PackedRow`s, written with `position_ids` and `seq_lens`.
        layout: the row layout, which turns rows into the format's columns (default: SFT rows, packed or not).
        prefix: put before every shard's name (`part-00003-` names `part-00003-shard-00000...`), so
            that several writers can fill one folder.
        publish: called with each finished file's path (`Folder.publish` uploads it to a URL folder).

    Raises:
        ValueError: a limit is below 1.
    """

    name = ""
    side_files: tuple[str, ...] = ()  # files other than shards that the writer puts in the folder

    def __init__(self, out_dir: Path, *, shard_rows: int | None = 100_000, shard_bytes: int | None = None,
                 packed: bool = False, prefix: str = "", publish: Callable[[Path], None] | None = None,
                 layout: RowLayout | None = None):
        for option, value in (("shard_rows", shard_rows), ("shard_bytes", shard_bytes)):
            if value is not None and value < 1:
                raise ValueError(f"{option} must be at least 1, found {value}")
        self.out_dir = Path(out_dir)
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes
        self.packed = packed
        if layout is None:
            from .layouts import SftLayout  # here: layouts build on this module's Columns

            layout = SftLayout(packed)
        self.layout = layout
        self.prefix = prefix
        self.publish = publish
        self.shards: list[ShardInfo] = []
        self._open = False
        self._buffer: list[Columns] = []
        self._buffered_rows = self._buffered_tokens = self._rows = self._bytes = self._samples = self._tokens = self._trained = 0

    def paths(self, index: int) -> list[Path]:
        """The final paths of shard `index`'s files, in the order they are renamed into place."""
        raise NotImplementedError

    def stem(self, index: int) -> str:
        """The name shard `index`'s files start with."""
        return f"{self.prefix}shard-{index:05d}"

    @classmethod
    def finish(cls, folder: Folder, shards: list[ShardInfo], *, packed: bool, layout: RowLayout | None = None
               ) -> list[ShardInfo]:
        """Write the files that make a folder of finished shards whole, once all are in it; returns all shards."""
        return shards

    def _start(self, index: int) -> None:
        """Open shard `index`'s files under their temporary names."""
        raise NotImplementedError

    def _append(self, columns: Columns) -> None:
        """Write rows to the open shard."""
        raise NotImplementedError

    def _end(self) -> None:
        """Complete and close the open shard's temporary files."""
        raise NotImplementedError

    def write(self, rows: Sequence[Encoded | PackedRow]) -> None:
        """Append rows in order, starting a new shard whenever the open one is full."""
        if rows:
            self.write_columns(Columns.from_rows(rows))

    def write_columns(self, columns: Columns) -> None:
        """`write` for rows already in columns.

        Where shards and write batches end depends only on the rows, never on how they are split
        between calls, so the bytes do not depend on how the rows arrive.
        """
        sizes = columns.row_bytes(self.packed)
        start = 0
        while start < len(columns):
            count = self._room(sizes[start:])
            if count == 0:
                self._finish_shard()
                continue
            count = min(count, self._batch_room(columns.lengths[start:start + count]))
            if not self._open:
                self._start(len(self.shards))
                self._open = True
            part = columns.slice(start, start + count)
            self._buffer.append(part)
            self._buffered_rows += count
            self._buffered_tokens += len(part.input_ids)
            self._rows += count
            self._bytes += int(sizes[start:start + count].sum())
            self._samples += len(part.seq_lens)
            self._tokens += len(part.input_ids)
            self._trained += int(part.loss_mask.sum())
            start += count
            if self._buffered_rows >= BATCH_ROWS or self._buffered_tokens >= BATCH_TOKENS:
                self._flush()
            if self._rows == self.shard_rows:
                self._finish_shard()

    def _room(self, sizes: np.ndarray) -> int:
        """How many of the next rows go into the open shard (at least one if it is empty)."""
        count = len(sizes)
        if self.shard_rows is not None:
            count = min(count, self.shard_rows - self._rows)
        if self.shard_bytes is not None:
            fits = int(np.searchsorted(np.cumsum(sizes[:count]), self.shard_bytes - self._bytes, side="right"))
            count = fits if fits or self._rows else 1
        return count

    def _batch_room(self, lengths: np.ndarray) -> int:
        """How many of the next rows fit in the write batch: up to BATCH_ROWS rows, and up to the row that
        takes it to BATCH_TOKENS tokens."""
        count = min(len(lengths), BATCH_ROWS - self._buffered_rows)
        reach = int(np.searchsorted(np.cumsum(lengths[:count]), BATCH_TOKENS - self._buffered_tokens, side="left"))
        return min(count, reach + 1)

    def _flush(self) -> None:
        if self._buffer:
            self._append(Columns.concat(self._buffer))
        self._buffer, self._buffered_rows, self._buffered_tokens = [], 0, 0

    def _finish_shard(self) -> None:
        self._flush()
        self._end()
        self._open = False
        files = []
        for path in self.paths(len(self.shards)):
            commit(path)
            files.append(ShardFile(path.name, path.stat().st_size, sha256_file(path)))
            if self.publish is not None:
                self.publish(path)
        self.shards.append(ShardInfo(tuple(files), self._rows, self._samples, self._tokens, self._trained))
        self._rows = self._bytes = self._samples = self._tokens = self._trained = 0

    def close(self) -> list[ShardInfo]:
        """Finish the last shard and return what this writer wrote (`finish` completes the folder)."""
        if self._open:
            self._finish_shard()
        return self.shards

    def abort(self) -> None:
        """Remove the unfinished shard after a failure; finished shards stay."""
        if self._open:
            self._buffer, self._buffered_rows, self._buffered_tokens = [], 0, 0
            self._open = False
            try:
                self._end()  # can fail again, on a full disk, say: the temp files go all the same
            finally:
                for path in self.paths(len(self.shards)):
                    temp_path(path).unlink(missing_ok=True)
