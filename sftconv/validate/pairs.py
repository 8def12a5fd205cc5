"""Preference output folders: pair and KTO rows read in any format but Megatron's, and held to the SFT row rules
on each side plus the pair's own: both sides start with the same untrained prompt and differ after it.

A pair row is checked as a packed row of two samples, chosen then rejected (so a finding's "sample 0" is
the chosen side, "sample 1" the rejected one), each held to the run's `--max-seq-len`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..writers.layouts import CHOSEN_LENGTH, KTO, LABEL, PROMPT_LENGTH
from ..writers.shards import BATCH_ROWS, offsets_of
from .codes import LENGTH_MISMATCH, PROMPT_MISMATCH, SAME_ANSWERS, TRAINED_PROMPT
from .formats import ListColumn, ShardReader, ShardReadError, TokenBatch
from .report import Finding
from .rows import RowRules, check_rows

SIDES = ("chosen_", "rejected_")


@dataclass(frozen=True, slots=True)
class PairBatch(TokenBatch):
    """Rows of preference shards as SFT-like rows (a pair's sides end to end), with what splits them."""

    prompt_length: np.ndarray | None = None
    chosen_length: np.ndarray | None = None  # None for KTO rows: one side
    label: np.ndarray | None = None  # KTO rows only

    def side(self, row: int, which: int) -> tuple[np.ndarray, np.ndarray]:
        """One side's ids and mask (0: chosen, 1: rejected)."""
        ids, mask = self.input_ids.row(row), self.loss_mask.row(row)
        if self.chosen_length is None:
            return ids, mask
        cut = int(self.chosen_length[row])
        return (ids[:cut], mask[:cut]) if which == 0 else (ids[cut:], mask[cut:])


class PairShards(ShardReader):
    """Reads a preference run's shards through the format's own reader for its files, in batches of rows.

    Args:
        base: the format's reader (Parquet, hf or JSON Lines), which knows the files.
        layout: `pairs` or `kto`, the manifest's `layout`.
    """

    def __init__(self, base: ShardReader, layout: str):
        super().__init__(packed=False)
        self.base, self.layout = base, layout
        self.name, self.suffixes, self.patterns, self.side_files = base.name, base.suffixes, base.patterns, base.side_files

    def check_side_files(self, folder: Path, shard_files: list[str]) -> list[tuple[Path, str]]:
        return self.base.check_side_files(folder, shard_files)

    def batches(self, paths: list[Path]) -> Iterator[PairBatch]:
        import pyarrow as pa

        path = self.main_file(paths)
        first_row = 0
        try:
            for table in self._tables(path):
                yield self._batch(table, first_row)
                first_row += table.num_rows
        except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as error:
            raise ShardReadError(f"cannot read as {self.layout} rows of {self.name}: {error!r}", path) from error

    def _tables(self, path: Path) -> Iterator:
        """The shard as Arrow tables of a bounded number of rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.name == "parquet":
            file = pq.ParquetFile(path)
            for group in range(file.num_row_groups):
                yield file.read_row_group(group)
        elif self.name == "hf":
            with pa.OSFile(str(path)) as source:
                for batch in pa.ipc.open_stream(source):
                    yield pa.Table.from_batches([batch])
        else:
            with open(path, encoding="utf-8") as handle:
                rows = []
                for line in handle:
                    rows.append(json.loads(line))
                    if len(rows) == BATCH_ROWS:
                        yield pa.Table.from_pylist(rows)
                        rows = []
                if rows:
                    yield pa.Table.from_pylist(rows)

    def _batch(self, table, first_row: int) -> PairBatch:
        def column(name: str) -> ListColumn:
            values = table.column(name).combine_chunks()
            offsets = values.offsets.to_numpy()
            return ListColumn(values.flatten().to_numpy().astype(np.int64), (offsets - offsets[0]).astype(np.int64))

        def number(name: str) -> np.ndarray:
            return table.column(name).to_numpy().astype(np.int64)

        if self.layout == KTO:
            return PairBatch(first_row, column("input_ids"), column("labels"), column("loss_mask"), number("length"),
                             prompt_length=number(PROMPT_LENGTH),
                             label=table.column(LABEL).to_numpy(zero_copy_only=False))
        sides = [{name: column(f"{side}{name}") for name in ("input_ids", "labels", "loss_mask")} for side in SIDES]
        chosen_length, rejected_length = number(CHOSEN_LENGTH), number("rejected_length")
        joined = {name: joined_rows(sides[0][name], sides[1][name]) for name in sides[0]}
        return PairBatch(first_row, joined["input_ids"], joined["labels"], joined["loss_mask"],
                         chosen_length + rejected_length, prompt_length=number(PROMPT_LENGTH),
                         chosen_length=chosen_length)

    def check(self, batch: PairBatch, rules: RowRules) -> dict[int, list[Finding]]:
        """The SFT row rules on each side, then the pair's own rules."""
        if batch.chosen_length is None:
            findings = check_rows(batch, rules)
        else:
            seq_lens = np.stack([batch.chosen_length, batch.length - batch.chosen_length], axis=1).ravel()
            sides = replace(batch, seq_lens=ListColumn(seq_lens, np.arange(0, 2 * batch.rows + 1, 2)))
            findings = check_rows(sides, replace(rules, max_sample_len=rules.max_row_len, max_row_len=None))
        findings = defaultdict(list, findings)
        for row in range(batch.rows):
            for finding in pair_findings(batch, row):
                findings[batch.first_row + row].append(finding)
        return findings


def joined_rows(first: ListColumn, second: ListColumn) -> ListColumn:
    """Row i of `first` followed by row i of `second`, for every row."""
    lengths_a, lengths_b = first.lengths, second.lengths
    offsets = offsets_of(lengths_a + lengths_b)
    values = np.empty(int(offsets[-1]), dtype=first.values.dtype)
    where_a = np.arange(len(first.values)) - np.repeat(first.offsets[:-1], lengths_a) + np.repeat(offsets[:-1], lengths_a)
    where_b = (np.arange(len(second.values)) - np.repeat(second.offsets[:-1], lengths_b)
               + np.repeat(offsets[:-1] + lengths_a, lengths_b))
    values[where_a], values[where_b] = first.values, second.values
    return ListColumn(values, offsets)


def pair_findings(batch: PairBatch, row: int) -> list[Finding]:
    """A row's prompt: within both sides, untrained, the same ids on both; and its two answers not the same."""
    length = int(batch.prompt_length[row])
    sides = [batch.side(row, 0)] + ([batch.side(row, 1)] if batch.chosen_length is not None else [])
    names = ["chosen", "rejected"] if len(sides) == 2 else [""]
    findings = []
    for name, (ids, mask) in zip(names, sides):
        if not 0 < length < len(ids):
            whose = f"the {name} side's" if name else "the row's"
            findings.append(Finding(LENGTH_MISMATCH, f"prompt_length {length:,} is not within {whose} {len(ids):,} "
                                                     "tokens", PROMPT_LENGTH))
        elif mask[:length].any():
            at = int(np.flatnonzero(mask[:length])[0])
            findings.append(Finding(TRAINED_PROMPT, f"{name} token {at} is trained, inside the prompt's {length:,} "
                                                    "tokens".strip(), "loss_mask"))
    if len(sides) == 2 and not findings:
        (chosen, _), (rejected, _) = sides
        if not np.array_equal(chosen[:length], rejected[:length]):
            at = int(np.flatnonzero(chosen[:length] != rejected[:length])[0])
            findings.append(Finding(PROMPT_MISMATCH, f"the sides differ at token {at}, inside the prompt's {length:,} "
                                                     "tokens", "input_ids"))
        elif np.array_equal(chosen, rejected):
            findings.append(Finding(SAME_ANSWERS, "chosen and rejected are the same tokens", "input_ids"))
    return findings
