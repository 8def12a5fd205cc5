"""Each output format read back with the library its users load it with, as the same list of row dicts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

IGNORE_INDEX = -100


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def shard_files(out: Path, suffix: str) -> list[Path]:
    """The shards' files with this suffix, in the manifest's order."""
    return [out / f["file"] for shard in manifest(out)["shards"] for f in shard["files"] if f["file"].endswith(suffix)]


def parquet_rows(out: Path, cache: Path) -> list[dict]:
    from datasets import load_dataset

    files = [str(p) for p in shard_files(out, ".parquet")]
    return load_dataset("parquet", data_files=files, split="train", cache_dir=str(cache)).to_list() if files else []


def hf_rows(out: Path, cache: Path) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(out)).to_list()


def jsonl_rows(out: Path, cache: Path) -> list[dict]:
    from datasets import load_dataset

    files = [str(p) for p in shard_files(out, ".jsonl")]
    return load_dataset("json", data_files=files, split="train", cache_dir=str(cache)).to_list() if files else []


def megatron_rows(out: Path, cache: Path) -> list[dict]:
    """Rows rebuilt from Megatron's own reader: a document is a row, its sequences are the row's samples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron.core warns that Apex and Transformer Engine are absent
        from megatron.core.datasets.indexed_dataset import IndexedDataset

    packed = manifest(out)["options"]["pack"] is not None
    rows = []
    for idx in shard_files(out, ".input_ids.idx"):
        ids = IndexedDataset(str(idx)[:-len(".idx")])
        mask = IndexedDataset(str(idx)[:-len(".input_ids.idx")] + ".loss_mask")
        assert list(ids.document_indices) == list(mask.document_indices)
        assert list(ids.sequence_lengths) == list(mask.sequence_lengths)
        documents = ids.document_indices
        for first, last in zip(documents[:-1], documents[1:]):
            input_ids = [int(t) for i in range(first, last) for t in ids[i]]
            loss_mask = [int(m) for i in range(first, last) for m in mask[i]]
            row = {"input_ids": input_ids,
                   "labels": [t if m else IGNORE_INDEX for t, m in zip(input_ids, loss_mask)],
                   "loss_mask": loss_mask}
            if packed:
                seq_lens = [int(n) for n in ids.sequence_lengths[first:last]]
                row["position_ids"] = [p for n in seq_lens for p in range(n)]
                row["seq_lens"] = seq_lens
            row["length"] = len(input_ids)
            rows.append(row)
    return rows


LOADERS = {"parquet": parquet_rows, "hf": hf_rows, "jsonl": jsonl_rows, "megatron": megatron_rows}


def load_rows(out: Path, output_format: str, cache: Path) -> list[dict]:
    return LOADERS[output_format](out, cache)
