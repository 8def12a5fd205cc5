"""Packing: whole samples into rows of at most N tokens, best fit decreasing within a window of samples.

A packed row keeps its samples apart: `position_ids` restart at 0 for each sample and `seq_lens`
gives the sample boundaries (cu_seqlens is their running sum), which is what flash-attention's
variable-length kernels and Hugging Face's padding-free path need so no sample attends to another.
Every sample starts with `<|begin_of_text|>`, which is never trained, so no label asks the model to
continue one sample into the next.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .template import Encoded, Samples

if TYPE_CHECKING:
    import numpy as np

DEFAULT_WINDOW = 1000  # samples packed together: bounds memory, and is plenty for near-full rows


@dataclass(frozen=True, slots=True)
class PackedRow:
    """Several samples laid end to end; `seq_lens` are their lengths, in row order."""

    input_ids: list[int]
    loss_mask: list[int]
    seq_lens: tuple[int, ...]

    @property
    def position_ids(self) -> list[int]:
        """Each token's position within its own sample."""
        return [position for length in self.seq_lens for position in range(length)]


@dataclass(frozen=True)
class PackedRows:
    """Packed rows as flat arrays: `samples` in row order, the first `row_sizes[0]` of them in row 0, and so on."""

    samples: Samples
    row_sizes: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.row_sizes)

    def rows(self) -> list[PackedRow]:
        """Each row as a PackedRow of lists."""
        pairs, lengths, rows, start = self.samples.split(), self.samples.lengths.tolist(), [], 0
        for size in self.row_sizes.tolist():
            members = range(start, start + size)
            rows.append(PackedRow([t for i in members for t in pairs[i][0]], [m for i in members for m in pairs[i][1]],
                                  tuple(lengths[start:start + size])))
            start += size
        return rows


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of at most `capacity`, by best fit decreasing.

    Longest first (ties in input order), each into the open bin with the least room that still fits
    it (ties: the bin opened first), else into a new bin. Bins come in the order they were opened.

    Raises:
        ValueError: a length exceeds `capacity`.
    """
    bins: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (room left, bin number), kept sorted
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"a sample of {length} tokens cannot be packed into rows of {capacity}")
        at = bisect_left(rooms, (length, -1))
        if at == len(rooms):
            bins.append([index])
            insort(rooms, (capacity - length, len(bins) - 1))
        else:
            room, number = rooms.pop(at)
            bins[number].append(index)
            insort(rooms, (room - length, number))
    return bins


class Packer:
    """Packs a stream of samples into rows of at most `seq_len` tokens, `window` samples at a time.

    Only the current window (plus the samples of one row carried into the next window) is held in
    memory; the same samples in the same order give the same rows.

    Args:
        seq_len: the most tokens in a row.
        window: samples packed together (default 1,000).

    Raises:
        ValueError: `seq_len` or `window` is below 1.

    Example:
        >>> packer = Packer(4096)
        >>> rows = packer.add(samples) + packer.flush()
    """

    def __init__(self, seq_len: int, window: int = DEFAULT_WINDOW):
        if seq_len < 1 or window < 1:
            raise ValueError(f"seq_len and window must be at least 1, found {seq_len} and {window}")
        self.seq_len = seq_len
        self.window = window
        self._pending = Samples.from_lists([])

    def add(self, samples: Iterable[Encoded]) -> list[PackedRow]:
        """Take samples; return the rows of every window they completed."""
        return self.add_samples(Samples.from_lists((s.input_ids, s.loss_mask) for s in samples)).rows()

    def flush(self) -> list[PackedRow]:
        """The rows of the last, partial window."""
        return self.flush_samples().rows()

    def add_samples(self, samples: Samples) -> PackedRows:
        """`add` for samples in flat arrays."""
        import numpy as np

        pending = Samples.concat([self._pending, samples])
        done: list[PackedRows] = []
        while len(pending) >= self.window:
            window = pending.take(np.arange(self.window))
            rest = pending.take(np.arange(self.window, len(pending)))
            bins = self._bins(window)
            if len(bins) > 1:
                # The emptiest row's samples go back to the front of the queue to fill up rows of the
                # next window: no window leaves a half-empty row behind, and memory grows by one row at most.
                lengths = window.lengths.tolist()
                emptiest = min(range(len(bins)), key=lambda b: (sum(lengths[i] for i in bins[b]), -b))
                rest = Samples.concat([window.take(bins.pop(emptiest)), rest])
            done.append(self._rows(window, bins))
            pending = rest
        self._pending = pending
        return PackedRows(Samples.concat([d.samples for d in done] or [Samples.from_lists([])]),
                          np.concatenate([d.row_sizes for d in done] or [np.zeros(0, dtype=np.int64)]))

    def flush_samples(self) -> PackedRows:
        """`flush` for samples in flat arrays."""
        window, self._pending = self._pending, Samples.from_lists([])
        return self._rows(window, self._bins(window))

    def _bins(self, samples: Samples) -> list[list[int]]:
        return best_fit_decreasing(samples.lengths.tolist(), self.seq_len)

    @staticmethod
    def _rows(samples: Samples, bins: list[list[int]]) -> PackedRows:
        import numpy as np

        return PackedRows(samples.take([i for members in bins for i in members]),
                          np.array([len(members) for members in bins], dtype=np.int64))
