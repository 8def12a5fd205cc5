"""`sftconv convert` end to end through the CLI: counts add up, rejects are kept, output is exact and stable."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import Conversation, Location, Message
from sftconv.template import Llama3Template

from .conftest import write_jsonl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"
GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def convert(*args: str):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def rows(out: Path) -> list[dict]:
    return [row for shard in sorted(out.glob("part-*.parquet")) for row in pq.read_table(shard).to_pylist()]


def test_examples_convert_and_reconcile(tmp_path, tokenizer):
    result = convert(EXAMPLES, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    counts = manifest(tmp_path)["counts"]
    assert counts["read"] == 14 and counts["written"] == 11
    assert counts["rejected_by_reason"] == {"empty_content": 1, "invalid_json": 1, "no_assistant_turn": 1}
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"]
    assert "records read         14\n" in result.stdout and "  invalid_json       1\n" in result.stdout
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(12, "no_assistant_turn"), (13, "empty_content"),
                                                           (14, "invalid_json")]
    assert rejects[2]["record"].startswith('{"messages": [{"role": "user"')
    written = rows(tmp_path)
    assert len(written) == 11 and sum(r["length"] for r in written) == counts["tokens"]
    assert sum(sum(r["loss_mask"]) for r in written) == counts["trained_tokens"]


def test_shards_hold_what_the_template_renders(tmp_path, tokenizer):
    records = [{"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": f"answer {i} <|eot_id|>"}]} for i in range(25)]
    assert convert(write_jsonl(tmp_path / "in.jsonl", records), "-o", tmp_path / "out", "--shard-rows", 10).exit_code == 0
    out = tmp_path / "out"
    shards = manifest(out)["shards"]
    assert [[f["file"] for f in s["files"]] for s in shards] == [
        ["part-00000-shard-00000.parquet"], ["part-00000-shard-00001.parquet"], ["part-00000-shard-00002.parquet"]]
    assert [s["rows"] for s in shards] == [10, 10, 5]
    template = Llama3Template(tokenizer)
    for i, row in enumerate(rows(out)):
        messages = tuple(Message(m["role"], m["content"]) for m in records[i]["messages"])
        expected = template.render(Conversation(messages, Location("x")))
        assert (row["input_ids"], row["loss_mask"], row["labels"]) == (
            expected.input_ids, expected.loss_mask, expected.labels)
        assert row["length"] == len(row["input_ids"])
        assert tokenizer.eot_id not in row["input_ids"][-10:-1]  # the typed <|eot_id|> stayed text


def test_same_input_gives_identical_bytes(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD] * 30 + ["broken"])
    for name in ("a", "b"):
        assert convert(source, "-o", tmp_path / name, "--shard-rows", 7, "-q").exit_code == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["manifest.json"] + [f"part-00000-shard-0000{i}.parquet" for i in range(5)] + ["rejects.jsonl"]
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_manifest_records_hashes_and_options(tmp_path):
    import hashlib

    convert(write_jsonl(tmp_path / "in.jsonl", [GOOD]), "-o", tmp_path / "out", "--train-on", "last", "-q")
    data = manifest(tmp_path / "out")
    [shard_file] = data["shards"][0]["files"]
    data_bytes = (tmp_path / "out" / shard_file["file"]).read_bytes()
    assert shard_file["sha256"] == hashlib.sha256(data_bytes).hexdigest() and shard_file["bytes"] == len(data_bytes)
    assert data["options"]["train_on"] == "last" and data["options"]["template"] == "llama3"
    assert data["tokenizer"]["name"] == "llama-models:llama3/tokenizer.model"
    assert data["tokenizer"]["vocab_size"] == 128_256 and len(data["tokenizer"]["sha256"]) == 64


def test_loads_with_datasets(tmp_path):
    from datasets import load_dataset

    records = [GOOD, {"messages": [{"role": "user", "content": "日本語"}, {"role": "assistant", "content": "はい 🎌"}]}]
    convert(write_jsonl(tmp_path / "in.jsonl", records), "-o", tmp_path / "out", "-q")
    loaded = load_dataset("parquet", data_files=str(tmp_path / "out" / "*.parquet"), split="train",
                          cache_dir=str(tmp_path / "cache"))
    assert loaded.column_names == ["input_ids", "labels", "loss_mask", "length"]
    assert loaded.to_list() == rows(tmp_path / "out")


def test_on_error_fail_stops_with_location(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD, {"messages": [{"role": "robot", "content": "x"}]}])
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "--on-error", "fail", "-q"])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {source}:2: unknown_role: messages[0].role is 'robot' "
                             "(expected one of system, user, assistant, tool)\n")
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").glob("*.parquet")) and not list((tmp_path / "out").glob(".*.tmp"))


def test_refuses_non_empty_output_unless_overwrite(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "is not empty (notes.txt); pass --overwrite" in result.stderr
    assert convert(source, "-o", tmp_path / "out", "--overwrite", "-q").exit_code == 0
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args, code, message", [
    (["missing.jsonl"], 2, "no such file or folder: missing.jsonl"),
    (["data.xlsx"], 2, "no reader for this file type"),
    (["in.jsonl", "--train-on", "users"], 2, "Invalid value for '--train-on'"),
    (["in.jsonl", "--shard-rows", "0"], 2, "Invalid value for '--shard-rows'"),
])
def test_clear_errors_and_exit_codes(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in.jsonl", [GOOD])
    (tmp_path / "data.xlsx").write_text("")
    result = CliRunner().invoke(main, ["convert", *args, "-o", "out"])
    assert result.exit_code == code and message in result.stderr


def test_empty_input_is_an_empty_dataset(tmp_path):
    """Where a script wants it; without --allow-empty such a run exits 1 (see test_run_outcomes.py)."""
    assert convert(write_jsonl(tmp_path / "in.jsonl", []), "-o", tmp_path / "out", "-q", "--allow-empty").exit_code == 0
    data = manifest(tmp_path / "out")
    assert data["counts"]["read"] == 0 and data["shards"] == []


@pytest.mark.parametrize("command", [[], ["convert"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output and len(result.output) > 200
