"""Length policies: what happens to a sample longer than `--max-seq-len`, counted so nothing is lost silently."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from .template import Encoded, Samples

if TYPE_CHECKING:
    import numpy as np


class Overflow(str, Enum):
    """What to do with a sample longer than the limit."""

    DROP = "drop"
    TRUNCATE = "truncate"
    TRUNCATE_TOKENS = "truncate-tokens"


@dataclass
class LengthStats:
    """What a length policy did: samples it touched and the tokens they lost."""

    over_limit: int = 0
    truncated: int = 0
    dropped: int = 0
    tokens_lost: int = 0
    trained_tokens_lost: int = 0

    def to_json(self) -> dict:
        return {
            "over_limit": self.over_limit,
            "truncated": self.truncated,
            "dropped": self.dropped,
            "tokens_lost": self.tokens_lost,
            "trained_tokens_lost": self.trained_tokens_lost,
        }


def turn_cut(input_ids: list[int], loss_mask: list[int], limit: int, turn_ends: frozenset[int]) -> int:
    """Length of the longest prefix of whole turns that fits in `limit` and ends with a trained turn; 0 if none.

    Every turn ends with `<|eot_id|>`, or in Llama 3.1 with `<|eom_id|>` when it waits for a tool's
    result, and content never contains those ids (it is encoded as text), so turn ends are exactly
    the positions of `turn_ends`; a turn is trained iff its end is.
    """
    for i in range(min(limit, len(input_ids)) - 1, -1, -1):
        if loss_mask[i] and input_ids[i] in turn_ends:
            return i + 1
    return 0


class LengthPolicy:
    """Fits samples into `max_seq_len` tokens by the overflow rule, counting every sample it touches.

    - `drop`: a longer sample is dropped (the pipeline counts it under reason `too_long`).
    - `truncate`: keep the longest prefix of whole turns that fits and ends with a trained turn, so
      every kept trained turn ends with its `<|eot_id|>` (or `<|eom_id|>`); if none fits, drop.
    - `truncate-tokens`: a hard cut at `max_seq_len` tokens, which can end inside a trained turn
      (the model then never sees that turn's `<|eot_id|>`: unsafe for masks); drop if nothing trained remains.

    Args:
        max_seq_len: the most tokens a kept sample may have (at least 1).
        overflow: the rule, `Overflow.DROP` by default.
        eot_id: the `<|eot_id|>` id, which marks turn ends.
        eom_id: the `<|eom_id|>` id, which ends Llama 3.1 tool-call turns (default None: no such turns).

    Raises:
        ValueError: `max_seq_len` is below 1.

    Example:
        >>> policy = LengthPolicy(4096, Overflow.TRUNCATE, eot_id=tokenizer.eot_id)
        >>> kept = policy.fit(sample)  # None when dropped; policy.stats counts both
    """

    def __init__(self, max_seq_len: int, overflow: Overflow = Overflow.DROP, *, eot_id: int, eom_id: int | None = None):
        if max_seq_len < 1:
            raise ValueError(f"max_seq_len must be at least 1, found {max_seq_len}")
        self.max_seq_len = max_seq_len
        self.overflow = Overflow(overflow)
        self.turn_ends = frozenset({eot_id} if eom_id is None else {eot_id, eom_id})
        self.stats = LengthStats()

    def fit(self, sample: Encoded) -> Encoded | None:
        """The sample itself if it fits, else its cut per the rule, or None if it is dropped."""
        end = self.kept_length(sample.input_ids, sample.loss_mask)
        if end == len(sample.input_ids):
            return sample
        return Encoded(sample.input_ids[:end], sample.loss_mask[:end], sample.location) if end else None

    def fit_samples_rows(self, samples: Samples) -> tuple[Samples, np.ndarray | None]:
        """`fit` for many samples at once, in order (only the ones over the limit are looked at one by one), and
        the positions of the samples kept (None: all of them)."""
        import numpy as np

        over = np.flatnonzero(samples.lengths > self.max_seq_len)
        if not len(over):
            return samples, None
        offsets, lengths = samples.offsets, samples.lengths
        kept = lengths.copy()
        for i in over.tolist():
            start, stop = offsets[i], offsets[i + 1]
            kept[i] = self.kept_length(samples.input_ids[start:stop].tolist(), samples.loss_mask[start:stop].tolist())
        position = np.arange(len(samples.input_ids)) - np.repeat(offsets[:-1], lengths)
        keep = position < np.repeat(kept, lengths)
        return Samples(samples.input_ids[keep], samples.loss_mask[keep], kept[kept > 0]), np.flatnonzero(kept > 0)

    def kept_length(self, input_ids: list[int], loss_mask: list[int]) -> int:
        """How many leading tokens of a sample the rule keeps: all if it fits, 0 if it is dropped; counted in `stats`."""
        if len(input_ids) <= self.max_seq_len:
            return len(input_ids)
        self.stats.over_limit += 1
        end = self._cut(input_ids, loss_mask)
        trained = sum(loss_mask)
        if end == 0:
            self.stats.dropped += 1
            self.stats.tokens_lost += len(input_ids)
            self.stats.trained_tokens_lost += trained
        else:
            self.stats.truncated += 1
            self.stats.tokens_lost += len(input_ids) - end
            self.stats.trained_tokens_lost += trained - sum(loss_mask[:end])
        return end

    def _cut(self, input_ids: list[int], loss_mask: list[int]) -> int:
        if self.overflow is Overflow.DROP:
            return 0
        if self.overflow is Overflow.TRUNCATE:
            return turn_cut(input_ids, loss_mask, self.max_seq_len, self.turn_ends)
        return self.max_seq_len if any(loss_mask[:self.max_seq_len]) else 0
