"""--keep-columns: record fields carried into every row, as JSON text, null where absent."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.keep import kept_values

from .conftest import write_jsonl


def chat(answer: str = "Hello") -> list[dict]:
    return [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}]


RECORDS = [
    {"id": "a1", "meta": {"source": "web"}, "messages": chat()},
    {"id": 2, "meta": {"source": ["x", 1]}, "messages": chat("word " * 400)},  # over --max-seq-len: dropped
    {"id": 3, "messages": chat()[:1]},  # no assistant turn: rejected
    {"id": None, "meta": {}, "messages": chat("Bye")},  # a present null is the text null
    {"messages": chat("Later"), "meta": {"source": {"b": 1, "a": 2}}},  # no id: a null
    {"id": 4.5, "meta": {"source": "web"}, "messages": chat("Again")},
]
# The rows written: records 0, 3, 4 and 5, each with its own fields.
EXPECTED = [('"a1"', '"web"'), ("null", None), (None, '{"a":2,"b":1}'), ("4.5", '"web"')]


def convert(*args):
    return CliRunner().invoke(main, [str(a) for a in ("convert", *args)])


def test_kept_values_are_json_text_or_null():
    assert kept_values({"id": 7, "meta": {"k": [1, "a"]}}, ("id", "meta.k", "meta.x", "nope")) == (
        "7", '[1,"a"]', None, None)
    assert kept_values({"id": None}, ("id",)) == ("null",)


@pytest.mark.parametrize("output_format", ["parquet", "hf", "jsonl"])
def test_each_row_carries_its_own_records_fields(tmp_path, output_format):
    data = write_jsonl(tmp_path / "chats.jsonl", RECORDS)
    out = tmp_path / "out"
    result = convert(data, "-o", out, "--keep-columns", "id,meta.source", "--format", output_format,
                     "--max-seq-len", "64", "-q")
    assert result.exit_code == 0, result.output
    if output_format == "parquet":
        table = pq.read_table(out / "part-00000-shard-00000.parquet")
        assert table.schema.field("id").type == "string" and table.schema.names[-2:] == ["id", "meta.source"]
        rows = table.select(["id", "meta.source"]).to_pylist()
    elif output_format == "hf":
        import datasets

        rows = datasets.load_from_disk(str(out)).select_columns(["id", "meta.source"]).to_list()
    else:
        rows = [json.loads(line) for line in (out / "part-00000-shard-00000.jsonl").read_text().splitlines()]
    assert [(row["id"], row["meta.source"]) for row in rows] == EXPECTED
    assert json.loads((out / "manifest.json").read_text())["options"]["keep_columns"] == ["id", "meta.source"]
    assert CliRunner().invoke(main, ["validate", str(out)]).exit_code == 0


def test_kept_columns_do_not_depend_on_workers_or_units(tmp_path):
    data = write_jsonl(tmp_path / "chats.jsonl", RECORDS * 300)
    shards = []
    for name, options in (("one", ["-j", "1"]), ("many", ["-j", "2", "--unit-size", "20KB"])):
        assert convert(data, "-o", tmp_path / name, "--keep-columns", "id", *options, "-q").exit_code == 0
        files = sorted((tmp_path / name).glob("*.parquet"))
        shards.append([row for f in files for row in pq.read_table(f, columns=["input_ids", "id"]).to_pylist()])
    assert shards[0] == shards[1] and len(shards[0]) == 5 * 300


def test_without_keep_columns_the_bytes_are_those_of_before(tmp_path):
    data = write_jsonl(tmp_path / "chats.jsonl", RECORDS)
    assert convert(data, "-o", tmp_path / "plain", "-q").exit_code == 0
    assert convert(data, "-o", tmp_path / "kept", "--keep-columns", "id", "-q").exit_code == 0
    plain = pq.read_table(tmp_path / "plain" / "part-00000-shard-00000.parquet")
    kept = pq.read_table(tmp_path / "kept" / "part-00000-shard-00000.parquet")
    assert plain.schema.names == ["input_ids", "labels", "loss_mask", "length"]
    assert kept.drop_columns(["id"]).equals(plain)
    assert "keep_columns" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())["options"]


@pytest.mark.parametrize("args, message", [
    (["--format", "megatron"], "--keep-columns needs a format with columns (parquet, hf, jsonl)"),
    (["--pack", "512"], "--keep-columns cannot be used with --pack: a packed row holds several records"),
])
def test_formats_and_packing_that_cannot_hold_them_are_refused(tmp_path, args, message):
    data = write_jsonl(tmp_path / "chats.jsonl", RECORDS)
    result = convert(data, "-o", tmp_path / "out", "--keep-columns", "id", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_a_kept_field_in_no_record_or_named_as_a_row_column_is_a_usage_error(tmp_path):
    data = write_jsonl(tmp_path / "chats.jsonl", [{**record, "length": 3, "label": True} for record in RECORDS])
    for names, task, message in (
            ("idd", "sft", "--keep-columns names 'idd', which is in no sampled record"),
            ("length", "sft", "--keep-columns length: every sft row has a column of that name already"),
            ("label", "auto", "--keep-columns label: every kto row has a column of that name already")):
        result = convert(data, "-o", tmp_path / "out", "--keep-columns", names, "--task", task)
        assert result.exit_code == 2 and message in result.stderr, result.output
