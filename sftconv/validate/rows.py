"""What makes a finished row right, checked on a whole batch of rows at once with numpy.

A row is right when its columns have one length (and the stored `length` says it), every id is below
the vocabulary size, loss_mask is 0 or 1, and each label is the id where loss_mask is 1 and -100 where
it is 0. A packed row's `seq_lens` split it into samples and its `position_ids` restart at 0 with each.
Each sample (the row itself unless packed) starts with its one `<|begin_of_text|>`, never trained, so
in a packed row no label asks the model to continue one sample into the next; it trains some token,
trains no header token (`<|start_header_id|>role<|end_header_id|>\\n\\n`) unless the run trained on
`all`, and ends every turn whose content is trained with a trained `<|eot_id|>` (or, for a Llama 3.1
tool-call turn, `<|eom_id|>`), except the last turn of a sample that `--overflow truncate-tokens` cut
at `--max-seq-len`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..conversation import NO_TRAINED_TOKENS
from ..template import IGNORE_INDEX
from ..tokenizer import NAMED_SPECIAL_TOKENS, NUM_SPECIAL_TOKENS
from .codes import (
    BAD_BOS,
    BAD_LOSS_MASK,
    BAD_POSITION_IDS,
    BAD_SEQ_LENS,
    ID_OUT_OF_RANGE,
    LABEL_MISMATCH,
    LENGTH_MISMATCH,
    TOO_LONG,
    TRAINED_HEADER,
    UNTRAINED_EOT,
)
from .formats import ListColumn, TokenBatch
from .report import Finding

SHOWN_SEQ_LENS = 8  # a finding lists a row's seq_lens up to this many
CHECK_TOKENS = 1 << 18  # tokens checked at once: the checks hold about 200 bytes a token in numpy temporaries


@dataclass(frozen=True, slots=True)
class Limit:
    """A length limit and the option it comes from, as a finding names it."""

    tokens: int
    name: str


@dataclass(frozen=True, kw_only=True)
class RowRules:
    """The ids, policy and limits a row is checked against, as the manifest (and validate's options) give them.

    `max_sample_len` applies to the samples of packed rows (unpacked, a row is a sample and
    `max_row_len` covers it); `cut_at` is set when `--overflow truncate-tokens` cut samples at that length.
    """

    vocab_size: int
    train_headers: bool
    max_row_len: Limit | None = None
    max_sample_len: Limit | None = None
    cut_at: int | None = None
    control_ids: dict[str, int] | None = None  # the manifest's; older manifests have none

    def special(self, name: str) -> int:
        """A control token's id, as the manifest records it; for older manifests, from Meta's layout
        (256 special tokens after the BPE ranks, in Meta's order)."""
        if self.control_ids and name in self.control_ids:
            return self.control_ids[name]
        return self.vocab_size - NUM_SPECIAL_TOKENS + NAMED_SPECIAL_TOKENS.index(name)


def check_rows(batch: TokenBatch, rules: RowRules) -> dict[int, list[Finding]]:
    """The findings of every bad row in the batch, keyed by row number in the shard; good rows are absent."""
    findings: dict[int, list[Finding]] = defaultdict(list)
    for chunk in batch.chunks(CHECK_TOKENS):
        bad = np.zeros(chunk.rows, dtype=bool)
        for row, finding in shape_findings(chunk):
            findings[chunk.first_row + row].append(finding)
            bad[row] = True
        good = np.flatnonzero(~bad)
        for local, finding in check_tokens(take(chunk, good), rules):
            findings[chunk.first_row + int(good[local])].append(finding)
    return findings


def shape_findings(batch: TokenBatch) -> list[tuple[int, Finding]]:
    """Rows whose columns disagree on their length, or whose `seq_lens` do not split them into samples."""
    lengths = batch.input_ids.lengths
    columns = {name: getattr(batch, name) for name in ("input_ids", "labels", "loss_mask", "position_ids")}
    columns = {name: column for name, column in columns.items() if column is not None}
    mismatch = np.zeros(batch.rows, dtype=bool)
    for column in columns.values():
        mismatch |= column.lengths != lengths
    if batch.length is not None:
        mismatch |= batch.length != lengths
    out = []
    for row in np.flatnonzero(mismatch):
        counts = ", ".join(f"{name} {column.lengths[row]}" for name, column in columns.items())
        stored = f", length {batch.length[row]}" if batch.length is not None else ""
        out.append((int(row), Finding(LENGTH_MISMATCH, f"{counts} tokens{stored}")))
    for row in np.flatnonzero(batch.bad_seq_lens() & ~mismatch):
        seq_lens = batch.seq_lens.row(row)
        shown = (f"[{', '.join(map(str, seq_lens))}]" if len(seq_lens) <= SHOWN_SEQ_LENS
                 else f"({len(seq_lens):,} samples)")
        if not len(seq_lens):
            detail = "seq_lens is empty: a packed row holds at least one sample"
        elif (seq_lens < 1).any():
            detail = f"seq_lens {shown} holds {seq_lens[seq_lens < 1][0]}: every sample has at least one token"
        else:
            detail = f"seq_lens {shown} sum to {int(seq_lens.sum()):,}, the row has {lengths[row]:,} tokens"
        out.append((int(row), Finding(BAD_SEQ_LENS, detail, "seq_lens")))
    return out


def take(batch: TokenBatch, rows: np.ndarray) -> TokenBatch:
    """The batch's given rows only (the batch itself when that is every row)."""
    if len(rows) == batch.rows:
        return batch

    def pick(column: ListColumn | None) -> ListColumn | None:
        if column is None:
            return None
        parts = [column.row(r) for r in rows]
        values = np.concatenate(parts) if parts else column.values[:0]
        return ListColumn(values, np.concatenate([[0], np.cumsum(column.lengths[rows])]))

    return TokenBatch(batch.first_row, pick(batch.input_ids), pick(batch.labels), pick(batch.loss_mask),
                      None if batch.length is None else batch.length[rows], pick(batch.position_ids),
                      pick(batch.seq_lens))


def check_tokens(batch: TokenBatch, rules: RowRules) -> list[tuple[int, Finding]]:
    """Findings for rows whose columns agree in length and split into samples; at most one per code and row."""
    ids = batch.input_ids.values.astype(np.int64)
    mask = batch.loss_mask.values.astype(np.int64)
    row_offsets = batch.input_ids.offsets
    offsets, sample_rows, places = batch.samples()
    packed = batch.seq_lens is not None
    row_of = np.repeat(np.arange(batch.rows), np.diff(row_offsets))
    sample_lengths = np.diff(offsets)
    out: list[tuple[int, Finding]] = []

    def first_per_row(flags: np.ndarray) -> list[tuple[int, int, int]]:
        """(row, flat position, position in row) of each row's first flagged token."""
        where = np.flatnonzero(flags)
        found, first = np.unique(row_of[where], return_index=True)
        return [(int(r), int(p), int(p - row_offsets[r])) for r, p in zip(found, where[first])]

    def first_sample_per_row(flags: np.ndarray) -> list[int]:
        """Each row's first flagged sample."""
        flagged = np.flatnonzero(flags)
        return [int(s) for s in flagged[np.unique(sample_rows[flagged], return_index=True)[1]]]

    def sample_name(sample: int) -> str:
        return f"sample {places[sample]}: " if packed else ""

    for row, flat, at in first_per_row((ids < 0) | (ids >= rules.vocab_size)):
        out.append((row, Finding(ID_OUT_OF_RANGE, f"input_ids[{at}] is {ids[flat]}, not below the vocabulary size "
                                                  f"{rules.vocab_size:,}", "input_ids")))

    valid_mask = (mask == 0) | (mask == 1)
    for row, flat, at in first_per_row(~valid_mask):
        out.append((row, Finding(BAD_LOSS_MASK, f"loss_mask[{at}] is {mask[flat]}, not 0 or 1", "loss_mask")))

    if batch.labels is not None:
        labels = batch.labels.values.astype(np.int64)
        expected = np.where(mask == 1, ids, IGNORE_INDEX)
        for row, flat, at in first_per_row((labels != expected) & valid_mask):
            detail = (f"at {at}: label {labels[flat]}, input_id {ids[flat]}, loss_mask {mask[flat]} "
                      f"(want the id where loss_mask is 1, {IGNORE_INDEX} where 0)")
            out.append((row, Finding(LABEL_MISMATCH, detail, "labels")))

    if batch.position_ids is not None:
        positions = batch.position_ids.values.astype(np.int64)
        expected = np.arange(len(ids)) - np.repeat(offsets[:-1], sample_lengths)
        for row, flat, at in first_per_row(positions != expected):
            detail = (f"position_ids[{at}] is {positions[flat]}, want {expected[flat]}: positions restart at 0 "
                      "with each sample of seq_lens")
            out.append((row, Finding(BAD_POSITION_IDS, detail, "position_ids")))

    bos = rules.special("<|begin_of_text|>")
    nonempty = sample_lengths > 0
    starts = offsets[:-1][nonempty]
    first_id = np.full(len(sample_lengths), -1, dtype=np.int64)
    first_id[nonempty] = ids[starts]
    first_trained = np.zeros(len(sample_lengths), dtype=bool)
    first_trained[nonempty] = mask[starts] != 0
    sample_of = np.repeat(np.arange(len(sample_lengths)), sample_lengths)
    bos_count = np.bincount(sample_of[ids == bos], minlength=len(sample_lengths))
    for sample in first_sample_per_row((first_id != bos) | (bos_count != 1) | first_trained):
        if not nonempty[sample]:
            detail = "the sample is empty"
        elif first_id[sample] != bos:
            detail = f"starts with id {first_id[sample]}, not <|begin_of_text|> ({bos})"
        elif bos_count[sample] != 1:
            detail = f"holds {bos_count[sample]} <|begin_of_text|> tokens; a sample has exactly one, at its start"
        elif places[sample]:
            detail = (f"<|begin_of_text|> is trained: its label asks the model to continue sample "
                      f"{places[sample] - 1} into this one")
        else:
            detail = "<|begin_of_text|> is trained"
        out.append((int(sample_rows[sample]), Finding(BAD_BOS, sample_name(sample) + detail, "input_ids")))

    trained_per_sample = np.bincount(sample_of[mask == 1], minlength=len(sample_lengths))
    for sample in first_sample_per_row((trained_per_sample == 0) & nonempty):
        what = "sample" if packed else "row"
        out.append((int(sample_rows[sample]), Finding(NO_TRAINED_TOKENS, f"{sample_name(sample)}no token is trained: "
                                                      f"the {what} costs compute and teaches nothing", "loss_mask")))

    in_header = header_tokens(ids, offsets, rules)
    if not rules.train_headers:
        for row, flat, at in first_per_row(in_header & (mask == 1)):
            out.append((row, Finding(TRAINED_HEADER, f"{sample_name(sample_of[flat])}header token at {at} "
                                                     f"(id {ids[flat]}) is trained; headers are trained only under "
                                                     "--train-on all", "loss_mask")))

    out += untrained_ends(ids, mask, in_header, offsets, sample_of, row_offsets, sample_rows, sample_name, rules)

    if rules.max_row_len is not None:
        limit = rules.max_row_len
        for row in np.flatnonzero(batch.input_ids.lengths > limit.tokens):
            out.append((int(row), Finding(TOO_LONG, f"{batch.input_ids.lengths[row]:,} tokens > {limit.name} "
                                                    f"{limit.tokens:,}")))
    if rules.max_sample_len is not None and packed:
        limit = rules.max_sample_len
        for sample in first_sample_per_row(sample_lengths > limit.tokens):
            out.append((int(sample_rows[sample]), Finding(
                TOO_LONG, f"{sample_name(sample)}{sample_lengths[sample]:,} tokens > {limit.name} {limit.tokens:,}")))
    return out


def header_tokens(ids: np.ndarray, offsets: np.ndarray, rules: RowRules) -> np.ndarray:
    """Flags of header tokens: `<|start_header_id|>` through `<|end_header_id|>`, and the "\\n\\n" after."""
    opens = ids == rules.special("<|start_header_id|>")
    closes = ids == rules.special("<|end_header_id|>")
    running = np.concatenate([[0], np.cumsum(opens.astype(np.int64) - closes)])
    # Open headers so far within each sample, so one malformed sample cannot spill into the next.
    depth = running[1:] - np.repeat(running[offsets[:-1]], np.diff(offsets))
    after_close = np.zeros_like(closes)
    after_close[1:] = closes[:-1]
    after_close[offsets[:-1][offsets[:-1] < len(ids)]] = False
    return (depth > 0) | closes | after_close


def untrained_ends(ids, mask, in_header, offsets, sample_of, row_offsets, sample_rows, sample_name,
                   rules: RowRules) -> list[tuple[int, Finding]]:
    """Turns (a header to the next one or the sample's end) training content without a trained end of turn."""
    turn_end = np.array([rules.special("<|eot_id|>"), rules.special("<|eom_id|>")])
    turn_starts = np.flatnonzero(ids == rules.special("<|start_header_id|>"))
    if not len(turn_starts):
        return []
    turn_samples = sample_of[turn_starts]
    sample_ends = offsets[turn_samples + 1]
    ends = np.minimum(np.append(turn_starts[1:], len(ids)), sample_ends)
    is_end = np.isin(ids, turn_end)
    trained_content = np.concatenate([[0], np.cumsum((mask == 1) & ~in_header & ~is_end)])
    has_trained = trained_content[ends] - trained_content[turn_starts] > 0
    last = ends - 1
    closed = is_end[last] & (mask[last] == 1)
    if rules.cut_at is not None:
        # truncate-tokens cut these samples at exactly cut_at tokens, inside their last turn: expected, and documented.
        cut = (sample_ends - offsets[turn_samples] == rules.cut_at) & (ends == sample_ends) & ~is_end[last]
        closed |= cut
    out, seen = [], set()
    for turn in np.flatnonzero(has_trained & ~closed):
        row = int(sample_rows[turn_samples[turn]])
        if row in seen:
            continue
        seen.add(row)
        at = turn_starts[turn] - row_offsets[row]
        end = "<|eom_id|>" if ids[last[turn]] == turn_end[1] else "<|eot_id|>"
        why = f"its {end} is not trained" if is_end[last[turn]] else "it does not end with <|eot_id|>"
        detail = f"{sample_name(turn_samples[turn])}the turn at {at} trains its content but {why}"
        out.append((row, Finding(UNTRAINED_EOT, detail, "loss_mask")))
    return out
