"""The Arrow schema and tables shared by the Parquet and Hugging Face writers."""

from __future__ import annotations

import pyarrow as pa

from ..template import IGNORE_INDEX
from .shards import Columns

TOKEN_FIELDS = [
    pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    pa.field("labels", pa.list_(pa.int32()), nullable=False),
    pa.field("loss_mask", pa.list_(pa.uint8()), nullable=False),
]
PACKING_FIELDS = [
    pa.field("position_ids", pa.list_(pa.int32()), nullable=False),
    pa.field("seq_lens", pa.list_(pa.int32()), nullable=False),
]
LENGTH_FIELD = pa.field("length", pa.int32(), nullable=False)
METADATA = {
    b"sftconv.labels": f"token id where trained, {IGNORE_INDEX} elsewhere".encode(),
    b"sftconv.loss_mask": b"1 = the token counts toward the loss",
}
PACKING_METADATA = {
    b"sftconv.position_ids": b"position within each packed sample, restarting at 0",
    b"sftconv.seq_lens": b"lengths of the packed samples in row order; their running sum gives cu_seqlens",
}


def arrow_schema(packed: bool) -> pa.Schema:
    """The explicit schema, so a shard's schema never depends on the rows that happen to come first."""
    if packed:
        return pa.schema([*TOKEN_FIELDS, *PACKING_FIELDS, LENGTH_FIELD], metadata={**METADATA, **PACKING_METADATA})
    return pa.schema([*TOKEN_FIELDS, LENGTH_FIELD], metadata=METADATA)


def to_table(columns: Columns, packed: bool) -> pa.Table:
    """Rows as one Arrow table over the columns' flat buffers."""
    offsets = pa.array(columns.row_offsets.astype("int32"))
    arrays = [
        pa.ListArray.from_arrays(offsets, pa.array(columns.input_ids)),
        pa.ListArray.from_arrays(offsets, pa.array(columns.labels)),
        pa.ListArray.from_arrays(offsets, pa.array(columns.loss_mask)),
    ]
    if packed:
        arrays.append(pa.ListArray.from_arrays(offsets, pa.array(columns.position_ids)))
        arrays.append(pa.ListArray.from_arrays(pa.array(columns.seq_offsets.astype("int32")), pa.array(columns.seq_lens)))
    arrays.append(pa.array(columns.lengths.astype("int32")))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(packed))
