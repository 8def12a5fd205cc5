"""Row layouts: which columns a row of shards holds, for SFT samples, preference pairs or KTO samples.

A writer asks its layout for the Arrow schema, an Arrow table or JSON rows of some `Columns`; it never
names a column itself. Column names follow the trainers' own: `chosen_input_ids`, `chosen_labels`,
`rejected_input_ids`, `rejected_labels` as LLaMA-Factory's and torchtune's preference datasets name them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from ..template import IGNORE_INDEX
from .arrow import KEPT_METADATA, METADATA, arrow_array, arrow_schema, kept_arrays, kept_fields, to_table
from .shards import Columns, offsets_of

SFT, PAIRS, KTO = "sft", "pairs", "kto"
CHOSEN_LENGTH, PROMPT_LENGTH, LABEL = "chosen_length", "prompt_length", "label"  # Columns.extras of preference rows
PAIR_METADATA = {
    b"sftconv.prompt_length": b"tokens of the shared prompt and the answer's header; both sides start with them",
}


class SftLayout:
    """SFT rows: `input_ids`, `labels`, `loss_mask`, `length` (and when packed `position_ids`, `seq_lens`), then
    the kept record fields (`keep`, see `sftconv.keep`)."""

    name = SFT

    def __init__(self, packed: bool = False, keep: tuple[str, ...] = ()):
        self.packed = packed
        self.keep = keep

    def schema(self) -> pa.Schema:
        return arrow_schema(self.packed, self.keep)

    def table(self, columns: Columns) -> pa.Table:
        return to_table(columns, self.packed, self.keep)

    def json_rows(self, columns: Columns) -> Iterator[dict]:
        """Each row as the JSON object the JSON Lines writer writes, the columns in the Parquet order."""
        names = ["input_ids", "labels", "loss_mask"] + (["position_ids"] if self.packed else [])
        flat = {name: getattr(columns, name).tolist() for name in names}
        seq_lens = columns.seq_lens.tolist()
        offsets, seq_offsets = columns.row_offsets.tolist(), columns.seq_offsets.tolist()
        for r in range(len(columns)):
            start, stop = offsets[r], offsets[r + 1]
            row = {name: values[start:stop] for name, values in flat.items()}
            if self.packed:
                row["seq_lens"] = seq_lens[seq_offsets[r]:seq_offsets[r + 1]]
            row["length"] = stop - start
            row.update(zip(self.keep, columns.kept[r] if self.keep else ()))
            yield row


def token_fields(prefix: str) -> list[pa.Field]:
    """The `input_ids`, `labels` and `loss_mask` fields, their names after `prefix` (`chosen_`...)."""
    return [pa.field(f"{prefix}input_ids", pa.list_(pa.int32()), nullable=False),
            pa.field(f"{prefix}labels", pa.list_(pa.int32()), nullable=False),
            pa.field(f"{prefix}loss_mask", pa.list_(pa.uint8()), nullable=False)]


def token_arrays(ids: np.ndarray, mask: np.ndarray, offsets: np.ndarray) -> list[pa.Array]:
    """`input_ids`, `labels` and `loss_mask` list arrays over flat buffers."""
    labels = np.where(mask.astype(bool), ids, np.int32(IGNORE_INDEX)).astype(np.int32)
    offsets = arrow_array(offsets.astype(np.int32))
    return [pa.ListArray.from_arrays(offsets, arrow_array(values)) for values in (ids, labels, mask)]


class PairLayout:
    """Preference pairs, one per row: `chosen_input_ids`, `chosen_labels`, `chosen_loss_mask`, the same three for
    `rejected`, `prompt_length`, `chosen_length`, `rejected_length`.

    In `Columns`, a row's tokens are its chosen side then its rejected side; `extras` holds
    `chosen_length` and `prompt_length`.
    """

    name = PAIRS
    packed = False

    def __init__(self, keep: tuple[str, ...] = ()):
        self.keep = keep

    def schema(self) -> pa.Schema:
        lengths = [pa.field(name, pa.int32(), nullable=False)
                   for name in (PROMPT_LENGTH, CHOSEN_LENGTH, "rejected_length")]
        return pa.schema([*token_fields("chosen_"), *token_fields("rejected_"), *lengths, *kept_fields(self.keep)],
                         metadata={**METADATA, **PAIR_METADATA, **(KEPT_METADATA if self.keep else {})})

    def sides(self, columns: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which tokens are chosen ones, and each row's chosen and rejected lengths."""
        lengths = columns.lengths
        chosen = columns.extras[CHOSEN_LENGTH].astype(np.int64)
        position = np.arange(len(columns.input_ids)) - np.repeat(columns.row_offsets[:-1], lengths)
        return position < np.repeat(chosen, lengths), chosen, lengths - chosen

    def table(self, columns: Columns) -> pa.Table:
        is_chosen, chosen, rejected = self.sides(columns)
        arrays = [*token_arrays(columns.input_ids[is_chosen], columns.loss_mask[is_chosen], offsets_of(chosen)),
                  *token_arrays(columns.input_ids[~is_chosen], columns.loss_mask[~is_chosen], offsets_of(rejected)),
                  *(arrow_array(values.astype(np.int32)) for values in (columns.extras[PROMPT_LENGTH], chosen, rejected)),
                  *kept_arrays(columns, self.keep)]
        return pa.Table.from_arrays(arrays, schema=self.schema())

    def json_rows(self, columns: Columns) -> Iterator[dict]:
        """Each row as the JSON Lines writer writes it, the columns in the Parquet order."""
        yield from self.table(columns).to_pylist()


class KtoLayout:
    """KTO samples, one per row: `input_ids`, `labels`, `loss_mask`, `label` (true: a desirable answer),
    `prompt_length`, `length`."""

    name = KTO
    packed = False

    def __init__(self, keep: tuple[str, ...] = ()):
        self.keep = keep

    def schema(self) -> pa.Schema:
        return pa.schema([*token_fields(""), pa.field(LABEL, pa.bool_(), nullable=False),
                          pa.field(PROMPT_LENGTH, pa.int32(), nullable=False),
                          pa.field("length", pa.int32(), nullable=False), *kept_fields(self.keep)],
                         metadata={**METADATA, **PAIR_METADATA, **(KEPT_METADATA if self.keep else {})})

    def table(self, columns: Columns) -> pa.Table:
        arrays = [*token_arrays(columns.input_ids, columns.loss_mask, columns.row_offsets),
                  pa.array(columns.extras[LABEL].astype(bool), type=pa.bool_()),
                  arrow_array(columns.extras[PROMPT_LENGTH].astype(np.int32)),
                  arrow_array(columns.lengths.astype(np.int32)), *kept_arrays(columns, self.keep)]
        return pa.Table.from_arrays(arrays, schema=self.schema())

    def json_rows(self, columns: Columns) -> Iterator[dict]:
        """Each row as the JSON Lines writer writes it, the columns in the Parquet order."""
        yield from self.table(columns).to_pylist()


RowLayout = SftLayout | PairLayout | KtoLayout
