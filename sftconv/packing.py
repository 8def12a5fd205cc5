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

from .template import Encoded

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
        self._pending: list[Encoded] = []

    def add(self, samples: Iterable[Encoded]) -> list[PackedRow]:
        """Take samples; return the rows of every window they completed."""
        self._pending.extend(samples)
        rows: list[PackedRow] = []
        while len(self._pending) >= self.window:
            window, self._pending = self._pending[:self.window], self._pending[self.window:]
            bins = self._bins(window)
            if len(bins) > 1:
                # The emptiest row's samples go back to the front of the queue to fill up rows of the
                # next window: no window leaves a half-empty row behind, and memory grows by one row at most.
                emptiest = min(range(len(bins)), key=lambda b: (sum(len(window[i].input_ids) for i in bins[b]), -b))
                self._pending[:0] = [window[i] for i in bins.pop(emptiest)]
            rows += [self._row(window, members) for members in bins]
        return rows

    def flush(self) -> list[PackedRow]:
        """The rows of the last, partial window."""
        window, self._pending = self._pending, []
        return [self._row(window, members) for members in self._bins(window)]

    def _bins(self, samples: list[Encoded]) -> list[list[int]]:
        return best_fit_decreasing([len(s.input_ids) for s in samples], self.seq_len)

    @staticmethod
    def _row(samples: list[Encoded], members: list[int]) -> PackedRow:
        input_ids: list[int] = []
        loss_mask: list[int] = []
        for index in members:
            input_ids += samples[index].input_ids
            loss_mask += samples[index].loss_mask
        return PackedRow(input_ids, loss_mask, tuple(len(samples[i].input_ids) for i in members))
