"""`convert --workers N`: the same bytes in every file whatever N, for every format, packed or not, from every container."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import FORMATS, main
from sftconv.readers import base, jsonl

from .conftest import write_jsonl

WORDS = ["the", "model", "answers", "données", "код", "数据", "🙂", "<|eot_id|>", "def f(x):\n    return x", "\t", "42"]


def chat(rng: random.Random) -> dict:
    """A conversation of 1-4 exchanges, sometimes with a system prompt, a typed special token or a weighted-out answer."""
    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))

    messages = [{"role": "system", "content": text()}] if rng.random() < 0.3 else []
    for _ in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": text()})
        messages.append({"role": "assistant", "content": text(), **({"weight": 0} if rng.random() < 0.1 else {})})
    return {"messages": messages}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """JSON Lines with bad lines among good ones, Parquet, and a save_to_disk dataset: 605 records in all, one line blank."""
    from datasets import Dataset

    folder = tmp_path_factory.mktemp("inputs")
    rng = random.Random(7)
    lines: list = [chat(rng) for _ in range(300)]
    for at, bad in [(5, "not json"), (40, {"messages": []}), (41, ""), (90, {"messages": [{"role": "robot", "content": "x"}]}),
                    (200, {"messages": [{"role": "user", "content": "no answer"}]})]:
        lines.insert(at, bad)
    first = write_jsonl(folder / "a.jsonl", lines)
    with open(first, "ab") as handle:
        handle.write(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    records = [chat(rng) for _ in range(150)]
    pq.write_table(pa.Table.from_pylist(records), folder / "b.parquet", row_group_size=40)
    Dataset.from_list([chat(rng) for _ in range(150)]).save_to_disk(str(folder / "c"))
    return [first, folder / "b.parquet", folder / "c"]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few records, so that even these inputs make dozens of them and their order is put to the test."""
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 2_000)
    monkeypatch.setattr(base, "CHUNK_RECORDS", 7)


def convert(inputs: list[Path], out: Path, *options) -> str:
    """The summary, with the output folder's name taken out."""
    result = CliRunner().invoke(main, ["convert", *map(str, inputs), "-o", str(out), *map(str, options)])
    assert result.exit_code == 0, result.output
    return result.stdout.replace(str(out), "OUT")


def files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir()) if path.is_file()}


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("options", [
    [],
    ["--max-seq-len", 120, "--overflow", "truncate", "--train-on", "all"],
    ["--pack", 512, "--pack-window", 50],
], ids=["samples", "truncated", "packed"])
def test_every_worker_count_writes_the_same_bytes(tmp_path, inputs, small_chunks, output_format, options):
    common = ["--format", output_format, "--shard-rows", 97, *options]
    summary = convert(inputs, tmp_path / "one", "--workers", 1, *common)
    expected = files(tmp_path / "one")
    counts = json.loads(expected["manifest.json"])["counts"]
    assert counts["read"] == 605 and len(expected) > 4
    assert {"invalid_json", "invalid_utf8", "messages_not_list", "unknown_role", "no_assistant_turn"} <= set(
        counts["rejected_by_reason"])
    assert convert(inputs, tmp_path / "two", "--workers", 2, *common) == summary
    assert files(tmp_path / "two") == expected


def test_chunk_size_does_not_change_the_bytes(tmp_path, inputs, monkeypatch):
    convert(inputs, tmp_path / "default", "-q")
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 1_000)
    monkeypatch.setattr(base, "CHUNK_RECORDS", 3)
    convert(inputs, tmp_path / "small", "-q", "--workers", 3)
    assert files(tmp_path / "small") == files(tmp_path / "default")


def test_failing_run_stops_at_the_same_record_and_keeps_the_same_shards(tmp_path, inputs, small_chunks):
    results = {}
    for workers in (1, 2):
        out = tmp_path / str(workers)
        result = CliRunner().invoke(main, ["convert", *map(str, inputs), "-o", str(out), "--shard-rows", 2,
                                           "--on-error", "fail", "--workers", str(workers), "-q"])
        results[workers] = (result.exit_code, result.stderr, files(out))
    assert results[1] == results[2]
    code, stderr, kept = results[1]
    assert code == 1 and stderr == f"Error: {inputs[0]}:6: invalid_json: Expecting value: line 1 column 1 (char 0)\n"
    assert sorted(kept) == ["part-00000-shard-00000.parquet", "part-00000-shard-00001.parquet"]  # four good records, two shards


def test_chunks_of_a_dataset_in_several_files_are_its_records(tmp_path, small_chunks):
    from datasets import Dataset

    from sftconv.readers.hf import DiskDatasetReader

    rng = random.Random(3)
    Dataset.from_list([{**chat(rng), "id": i} for i in range(100)]).save_to_disk(str(tmp_path / "d"), num_shards=3)
    reader = DiskDatasetReader()
    chunks = list(reader.chunks(tmp_path / "d"))
    assert len(chunks) > 10
    assert [r for c in chunks for r in c.records()] == list(reader.read(tmp_path / "d"))
