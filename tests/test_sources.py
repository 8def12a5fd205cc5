"""The same records in any container give the same samples, and Parquet is read in bounded memory."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from sftconv.cli import main

from .conftest import cache_hub_dataset, write_jsonl

# Records that exercise what a container could get wrong: nested lists of structs with fields only
# some messages have (weight), nulls, non-ASCII text, and records that must be rejected.
OPENAI = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"},
                  *([{"role": "assistant", "content": "A draft.", "weight": 0},
                     {"role": "user", "content": "Better?"}] if i % 2 else []),
                  {"role": "assistant", "content": f"Answer {i}, 日本語 🎌", "weight": 1}]}
    for i in range(30)
] + [
    {"messages": [{"role": "user", "content": "Two turns"}, {"role": "assistant", "content": "a", "weight": 0},
                  {"role": "user", "content": "again"}, {"role": "assistant", "content": "b"}]},
    {"messages": [{"role": "user", "content": "no answer"}]},
    {"messages": [{"role": "user", "content": "empty answer"}, {"role": "assistant", "content": "  "}]},
]
ALPACA = [
    {"instruction": f"Add {i} and 3.", "input": "" if i % 3 else f"{i} + 3", "output": f"{i + 3}"} for i in range(30)
] + [{"instruction": "Nothing to say.", "input": "", "output": ""}]


def convert(*args):
    result = CliRunner().invoke(main, ["convert", *map(str, args), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def outcome(out) -> tuple:
    """What a run produced, minus where its records came from: samples, counts, and reject reasons in order."""
    import pyarrow.parquet as pq

    samples = [(r["input_ids"], r["loss_mask"]) for s in sorted(out.glob("part-*.parquet"))
               for r in pq.read_table(s).to_pylist()]
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    reasons = [json.loads(line)["reason"] for line in (out / "rejects.jsonl").read_text().splitlines()]
    return samples, counts, reasons


def write_containers(tmp_path, records: list[dict], monkeypatch) -> dict[str, str]:
    """The records written as each container sftconv reads; returns name -> input argument."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = {"jsonl": write_jsonl(tmp_path / "data.jsonl", records)}
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "data.parquet", row_group_size=7)
    inputs["parquet"] = tmp_path / "data.parquet"
    datasets.Dataset.from_list(records).save_to_disk(tmp_path / "saved")
    inputs["save_to_disk"] = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(records),
                          "test": datasets.Dataset.from_list(records[:2])}).save_to_disk(tmp_path / "saved_dict")
    inputs["save_to_disk split"] = f"{tmp_path / 'saved_dict'} --split train"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    cache_hub_dataset(tmp_path / "cache", "team/chats", {"train": records})
    inputs["dataset name"] = "hf:team/chats"
    (tmp_path / "data.json").write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    inputs["json array"] = tmp_path / "data.json"
    (tmp_path / "data.jsonl.gz").write_bytes(gzip.compress((tmp_path / "data.jsonl").read_bytes()))
    inputs["gzip"] = tmp_path / "data.jsonl.gz"
    if all(isinstance(v, str) for r in records for v in r.values()):
        with open(tmp_path / "data.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        inputs["csv"] = tmp_path / "data.csv"
    return {name: str(value) for name, value in inputs.items()}


@pytest.mark.parametrize("records, shape, rejected", [
    (OPENAI, "openai", ["no_assistant_turn", "empty_content"]),
    (ALPACA, "alpaca", ["empty_content"]),
])
def test_every_container_gives_the_same_token_ids(tmp_path, monkeypatch, records, shape, rejected):
    inputs = write_containers(tmp_path, records, monkeypatch)
    results = {}
    for name, argument in inputs.items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        convert(*argument.split(" "), "-o", out)
        manifest = json.loads((out / "manifest.json").read_text())
        assert list(manifest["shapes"].values()) == [shape], name
        results[name] = outcome(out)
    samples, counts, reasons = results["jsonl"]
    assert len(samples) == len(records) - len(rejected) and reasons == rejected
    assert counts["read"] == len(records)
    assert ("csv" in inputs) == (shape == "alpaca")  # CSV holds only strings, so only the Alpaca records fit it
    for name, result in results.items():
        assert result == results["jsonl"], f"{name} differs from JSONL"


PEAK_SCRIPT = textwrap.dedent("""
    import sys, tracemalloc
    from pathlib import Path
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sftconv.readers import read_records

    tracemalloc.start()
    if sys.argv[2] == "sftconv":
        count = sum(1 for _ in read_records([Path(sys.argv[1])]))
    else:
        count = len(pq.read_table(sys.argv[1]).to_pylist())
    print(count, pa.default_memory_pool().max_memory() + tracemalloc.get_traced_memory()[1])
""")


def peak_bytes(path, how: str) -> tuple[int, int]:
    """Rows read and peak bytes allocated (Arrow's memory pool plus Python objects), in a fresh process.

    Allocation peaks rather than RSS: the allocators keep freed memory mapped, so RSS grows with the
    number of row groups read even when only one is held at a time.
    """
    output = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path), how], check=True,
                            capture_output=True, text=True).stdout
    rows, peak = map(int, output.split())
    return rows, peak


def test_parquet_is_read_in_bounded_memory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, group, text_bytes = 16_000, 500, 4096  # 32 row groups of ~2 MB: ~64 MB of incompressible text
    path = tmp_path / "big.parquet"
    schema = pa.schema([("prompt", pa.string()), ("completion", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, group):
            writer.write_table(pa.table({
                "prompt": [f"question {start + i}" for i in range(group)],
                "completion": [os.urandom(text_bytes // 2).hex() for _ in range(group)],
            }, schema=schema))
    data_bytes = rows * text_bytes
    bound = data_bytes // 2
    assert peak_bytes(path, "whole file")[1] > 2 * data_bytes  # what loading it all costs: far above the bound
    read, peak = peak_bytes(path, "sftconv")
    assert read == rows
    assert peak < bound, f"peak {peak / 1e6:.1f} MB while reading {data_bytes / 1e6:.0f} MB of text"
