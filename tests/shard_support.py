"""Read and rewrite one shard of a real convert output with its format's own library, then reseal the manifest.

A test breaks one row this way and nothing else: afterwards every file's sha256 and size and every token
count in the manifest agree with the edited shard, so what validate finds is the row.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sftconv.writers.arrow import arrow_schema

IGNORE_INDEX = -100


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def save_manifest(out: Path, data: dict) -> None:
    (out / "manifest.json").write_text(json.dumps(data, indent=2))


def shard_files(out: Path, index: int) -> list[Path]:
    """Shard `index`'s files, in the manifest's order."""
    return [out / entry["file"] for entry in manifest(out)["shards"][index]["files"]]


def main_file(out: Path, index: int) -> Path:
    """The file validate and inspect locate the shard's rows in."""
    files = shard_files(out, index)
    return next((f for f in files if f.name.endswith(".input_ids.bin")), files[0])


def megatron():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron.core warns that Apex and Transformer Engine are absent
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def read_rows(out: Path, output_format: str, index: int) -> list[dict]:
    """The shard's rows as dicts; Megatron's rows have `input_ids`, `loss_mask` and `seq_lens` (always)."""
    [path, *_] = shard_files(out, index)
    if output_format == "parquet":
        return pq.read_table(path).to_pylist()
    if output_format == "hf":
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all().to_pylist()
    if output_format == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    prefix = str(main_file(out, index))[:-len(".input_ids.bin")]
    ids = megatron().IndexedDataset(prefix + ".input_ids")
    mask = megatron().IndexedDataset(prefix + ".loss_mask")
    rows = []
    for first, last in zip(ids.document_indices[:-1], ids.document_indices[1:]):
        rows.append({"input_ids": [int(t) for i in range(first, last) for t in ids[i]],
                     "loss_mask": [int(m) for i in range(first, last) for m in mask[i]],
                     "seq_lens": [int(n) for n in ids.sequence_lengths[first:last]]})
    return rows


def write_rows(out: Path, output_format: str, index: int, rows: list[dict]) -> None:
    """Write the rows over the shard's files, as the format's library writes them, and reseal the manifest."""
    files = shard_files(out, index)
    packed = manifest(out)["packing"] is not None
    if output_format == "parquet":
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(packed)), files[0])
    elif output_format == "hf":
        with pa.memory_map(str(files[0])) as source:
            schema = pa.ipc.open_stream(source).schema
        with pa.OSFile(str(files[0]), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    elif output_format == "jsonl":
        files[0].write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        write_megatron(main_file(out, index), rows)
    reseal(out, index, rows)


def write_megatron(input_ids_bin: Path, rows: list[dict]) -> None:
    """A shard's two indexed datasets, written by Megatron-LM's own builder: a document per row, a sequence a sample."""
    import numpy as np
    import torch

    prefix = str(input_ids_bin)[:-len(".input_ids.bin")]
    for name, dtype in (("input_ids", np.int32), ("loss_mask", np.uint8)):
        builder = megatron().IndexedDatasetBuilder(f"{prefix}.{name}.bin", dtype=dtype)
        for row in rows:
            start = 0
            for length in row["seq_lens"]:
                builder.add_item(torch.tensor(row[name][start:start + length]))
                start += length
            builder.end_document()
        builder.finalize(f"{prefix}.{name}.idx")


def reseal(out: Path, index: int, rows: list[dict] | None = None) -> None:
    """Make the manifest agree with shard `index` as it now is: its files' hashes and sizes, and its token counts."""
    data = manifest(out)
    shard = data["shards"][index]
    for entry in shard["files"]:
        path = out / entry["file"]
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["bytes"] = path.stat().st_size
    if rows is not None:
        shard["tokens"] = sum(len(row["input_ids"]) for row in rows)
        shard["trained_tokens"] = sum(sum(row["loss_mask"]) for row in rows)
    data["counts"]["tokens"] = sum(s["tokens"] for s in data["shards"])
    data["counts"]["trained_tokens"] = sum(s["trained_tokens"] for s in data["shards"])
    if data["packing"] is not None:
        data["packing"]["tokens"] = data["counts"]["tokens"]
    save_manifest(out, data)


def edit(out: Path, output_format: str, index: int, change) -> list[dict]:
    """Apply `change(rows)` to shard `index`'s rows and write them back; returns the rows as written."""
    rows = read_rows(out, output_format, index)
    change(rows)
    write_rows(out, output_format, index, rows)
    return rows


def set_mask(row: dict, at: int, value: int) -> None:
    """Set one token's loss_mask, and its label to agree where the format stores labels."""
    row["loss_mask"][at] = value
    if "labels" in row:
        row["labels"][at] = row["input_ids"][at] if value else IGNORE_INDEX
