"""The Arrow schema and tables shared by the Parquet and Hugging Face writers."""

from __future__ import annotations

import numpy as np
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
KEPT_METADATA = {b"sftconv.kept_columns": b"record fields as JSON text (json.loads reads them), null where absent"}
PACKING_METADATA = {
    b"sftconv.position_ids": b"position within each packed sample, restarting at 0",
    b"sftconv.seq_lens": b"lengths of the packed samples in row order; their running sum gives cu_seqlens",
}


def arrow_schema(packed: bool, keep: tuple[str, ...] = ()) -> pa.Schema:
    """The explicit schema, so a shard's schema never depends on the rows that happen to come first.

    Kept record fields (`keep`) are nullable strings after the token columns: JSON text, null where absent.
    """
    kept = kept_fields(keep)
    if packed:
        return pa.schema([*TOKEN_FIELDS, *PACKING_FIELDS, LENGTH_FIELD, *kept], metadata={**METADATA, **PACKING_METADATA})
    return pa.schema([*TOKEN_FIELDS, LENGTH_FIELD, *kept], metadata={**METADATA, **(KEPT_METADATA if keep else {})})


def to_table(columns: Columns, packed: bool, keep: tuple[str, ...] = ()) -> pa.Table:
    """Rows as one Arrow table over the columns' flat buffers."""
    offsets = arrow_array(columns.row_offsets.astype(np.int32))
    arrays = [
        pa.ListArray.from_arrays(offsets, arrow_array(columns.input_ids)),
        pa.ListArray.from_arrays(offsets, arrow_array(columns.labels)),
        pa.ListArray.from_arrays(offsets, arrow_array(columns.loss_mask)),
    ]
    if packed:
        arrays.append(pa.ListArray.from_arrays(offsets, arrow_array(columns.position_ids)))
        arrays.append(pa.ListArray.from_arrays(arrow_array(columns.seq_offsets.astype(np.int32)),
                                               arrow_array(columns.seq_lens)))
    arrays.append(arrow_array(columns.lengths.astype(np.int32)))
    arrays += kept_arrays(columns, keep)
    return pa.Table.from_arrays(arrays, schema=arrow_schema(packed, keep))


def kept_fields(keep: tuple[str, ...]) -> list[pa.Field]:
    """The kept record fields' columns: JSON text, null where a record lacks the field."""
    return [pa.field(name, pa.string(), nullable=True) for name in keep]


def kept_arrays(columns: Columns, keep: tuple[str, ...]) -> list[pa.Array]:
    """The kept record fields of these rows, a string array each."""
    return [pa.array([row[index] for row in columns.kept], pa.string()) for index in range(len(keep))]


def arrow_array(values: np.ndarray) -> pa.Array:
    """An Arrow array over a 1-D numpy array's buffer.

    `pa.array` would do, but it imports pandas (a quarter of a second) just to check the argument.
    """
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])
