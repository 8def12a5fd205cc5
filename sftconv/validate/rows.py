"""What makes a finished row right, checked on a whole batch of rows at once with numpy.

A row is right when input_ids, labels and loss_mask have one length (and the stored `length` says
it), every id is below the vocabulary size, each label is the id where loss_mask is 1 and -100 where
it is 0, the row starts with the one and only `<|begin_of_text|>` (never trained), some token is
trained, no header token (`<|start_header_id|>role<|end_header_id|>\\n\\n`) is trained unless the
run trained on `all`, and every turn whose content is trained ends with a trained `<|eot_id|>`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..conversation import NO_TRAINED_TOKENS
from ..template import IGNORE_INDEX
from ..tokenizer import NAMED_SPECIAL_TOKENS, NUM_SPECIAL_TOKENS
from .codes import BAD_BOS, ID_OUT_OF_RANGE, LABEL_MISMATCH, LENGTH_MISMATCH, TOO_LONG, TRAINED_HEADER, UNTRAINED_EOT
from .formats import TokenBatch
from .report import Finding


@dataclass(frozen=True, kw_only=True)
class RowRules:
    """The ids and policy a row is checked against, as the manifest records them."""

    vocab_size: int
    train_headers: bool
    max_seq_len: int | None = None

    def special(self, name: str) -> int:
        """A special token's id: Meta's 256 special tokens follow the BPE ranks, in Meta's order."""
        return self.vocab_size - NUM_SPECIAL_TOKENS + NAMED_SPECIAL_TOKENS.index(name)


def check_rows(batch: TokenBatch, rules: RowRules) -> dict[int, list[Finding]]:
    """The findings of every bad row in the batch, keyed by row number in the shard; good rows are absent."""
    findings: dict[int, list[Finding]] = defaultdict(list)
    lengths = np.diff(batch.ids_offsets)
    bad = (lengths != np.diff(batch.labels_offsets)) | (lengths != np.diff(batch.mask_offsets))
    if batch.length is not None:
        bad |= lengths != batch.length
    for row in np.flatnonzero(bad):
        counts = [np.diff(o)[row] for o in (batch.ids_offsets, batch.labels_offsets, batch.mask_offsets)]
        stored = f", length {batch.length[row]}" if batch.length is not None else ""
        findings[batch.first_row + int(row)].append(Finding(
            LENGTH_MISMATCH, f"input_ids {counts[0]}, labels {counts[1]}, loss_mask {counts[2]} tokens{stored}"))
    good = np.flatnonzero(~bad)
    ids, ids_offsets = select(batch.input_ids, batch.ids_offsets, good)
    labels, _ = select(batch.labels, batch.labels_offsets, good)
    mask, _ = select(batch.loss_mask, batch.mask_offsets, good)
    for local, finding in check_tokens(ids, labels, mask, ids_offsets, rules):
        findings[batch.first_row + int(good[local])].append(finding)
    return findings


def select(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat values and offsets of the given rows only (the input itself when that is every row)."""
    if len(rows) == len(offsets) - 1:
        return values, offsets
    lengths = np.diff(offsets)[rows]
    parts = [values[offsets[r]:offsets[r + 1]] for r in rows]
    return (np.concatenate(parts) if parts else values[:0]), np.concatenate([[0], np.cumsum(lengths)])


def check_tokens(ids: np.ndarray, labels: np.ndarray, mask: np.ndarray, offsets: np.ndarray,
                 rules: RowRules) -> list[tuple[int, Finding]]:
    """Findings for rows whose three columns have equal lengths; at most one per code and row."""
    rows = len(offsets) - 1
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    row_of = np.repeat(np.arange(rows), lengths)
    ids = ids.astype(np.int64)
    out: list[tuple[int, Finding]] = []

    def first_per_row(flags: np.ndarray) -> list[tuple[int, int, int]]:
        """(row, flat position, position in row) of each row's first flagged token."""
        where = np.flatnonzero(flags)
        found, first = np.unique(row_of[where], return_index=True)
        return [(int(r), int(p), int(p - offsets[r])) for r, p in zip(found, where[first])]

    for row, flat, at in first_per_row((ids < 0) | (ids >= rules.vocab_size)):
        out.append((row, Finding(ID_OUT_OF_RANGE, f"input_ids[{at}] is {ids[flat]}, not below the vocabulary size "
                                                  f"{rules.vocab_size:,}", "input_ids")))

    expected = np.where(mask == 1, ids, IGNORE_INDEX)
    for row, flat, at in first_per_row((labels != expected) | (mask > 1)):
        detail = (f"at {at}: label {labels[flat]}, input_id {ids[flat]}, loss_mask {mask[flat]} "
                  f"(want the id where loss_mask is 1, {IGNORE_INDEX} where 0)")
        out.append((row, Finding(LABEL_MISMATCH, detail, "labels")))

    bos = rules.special("<|begin_of_text|>")
    nonempty = lengths > 0
    first_id = np.full(rows, -1, dtype=np.int64)
    first_id[nonempty] = ids[starts[nonempty]]
    first_trained = np.zeros(rows, dtype=bool)
    first_trained[nonempty] = mask[starts[nonempty]] != 0
    bos_count = np.bincount(row_of[ids == bos], minlength=rows)
    for row in np.flatnonzero((first_id != bos) | (bos_count != 1) | first_trained):
        if not nonempty[row]:
            detail = "the sample is empty"
        elif first_id[row] != bos:
            detail = f"starts with id {first_id[row]}, not <|begin_of_text|> ({bos})"
        elif bos_count[row] != 1:
            detail = f"holds {bos_count[row]} <|begin_of_text|> tokens; a sample has exactly one, at its start"
        else:
            detail = "<|begin_of_text|> is trained"
        out.append((int(row), Finding(BAD_BOS, detail, "input_ids")))

    trained_per_row = np.bincount(row_of[mask == 1], minlength=rows)
    for row in np.flatnonzero((trained_per_row == 0) & nonempty):
        out.append((int(row), Finding(NO_TRAINED_TOKENS, "no token is trained: the row costs compute and teaches "
                                                         "nothing", "loss_mask")))

    in_header = header_tokens(ids, offsets, rules)
    if not rules.train_headers:
        for row, flat, at in first_per_row(in_header & (mask == 1)):
            out.append((row, Finding(TRAINED_HEADER, f"header token at {at} (id {ids[flat]}) is trained; headers are "
                                                     "trained only under --train-on all", "loss_mask")))

    out += untrained_ends(ids, mask, in_header, offsets, row_of, rules)

    if rules.max_seq_len is not None:
        for row in np.flatnonzero(lengths > rules.max_seq_len):
            out.append((int(row), Finding(TOO_LONG, f"{lengths[row]:,} tokens > --max-seq-len {rules.max_seq_len:,}")))
    return out


def header_tokens(ids: np.ndarray, offsets: np.ndarray, rules: RowRules) -> np.ndarray:
    """Flags of header tokens: `<|start_header_id|>` through `<|end_header_id|>`, and the "\\n\\n" after."""
    opens = ids == rules.special("<|start_header_id|>")
    closes = ids == rules.special("<|end_header_id|>")
    running = np.concatenate([[0], np.cumsum(opens.astype(np.int64) - closes)])
    # Open headers so far within each row, so one malformed row cannot spill into the next.
    depth = running[1:] - np.repeat(running[offsets[:-1]], np.diff(offsets))
    after_close = np.zeros_like(closes)
    after_close[1:] = closes[:-1]
    after_close[offsets[:-1][offsets[:-1] < len(ids)]] = False
    return (depth > 0) | closes | after_close


def untrained_ends(ids, mask, in_header, offsets, row_of, rules: RowRules) -> list[tuple[int, Finding]]:
    """Turns (a header to the next one or the row's end) training content without a trained <|eot_id|> at the end."""
    eot = rules.special("<|eot_id|>")
    turn_starts = np.flatnonzero(ids == rules.special("<|start_header_id|>"))
    if not len(turn_starts):
        return []
    turn_rows = row_of[turn_starts]
    ends = np.minimum(np.append(turn_starts[1:], len(ids)), offsets[turn_rows + 1])
    trained_content = np.concatenate([[0], np.cumsum((mask == 1) & ~in_header & (ids != eot))])
    has_trained = trained_content[ends] - trained_content[turn_starts] > 0
    last = ends - 1
    closed = (ids[last] == eot) & (mask[last] == 1)
    out, seen = [], set()
    for turn in np.flatnonzero(has_trained & ~closed):
        row = int(turn_rows[turn])
        if row in seen:
            continue
        seen.add(row)
        at = turn_starts[turn] - offsets[row]
        why = "its <|eot_id|> is not trained" if ids[last[turn]] == eot else "it does not end with <|eot_id|>"
        out.append((row, Finding(UNTRAINED_EOT, f"the turn at {at} trains its content but {why}", "loss_mask")))
    return out
