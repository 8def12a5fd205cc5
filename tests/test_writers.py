"""Every output format: loads with its users' real library, holds what Parquet holds, and is atomic and stable."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sftconv.cli import FORMATS, main
from sftconv.units import WORK_DIR
from sftconv.writers import WRITERS

from .conftest import write_jsonl
from .loaders import load_rows, manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"
WORDS = ["the", "model", "answers", "données", "код", "数据", "🙂", "<|eot_id|>", "def f(x):\n    return x", "\t", "42"]
OTHER_FORMATS = [f for f in FORMATS if f != "parquet"]


def chat(rng: random.Random) -> dict:
    """A conversation of 1-4 exchanges, sometimes with a system prompt or an answer weighted out."""
    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60)))

    messages = [{"role": "system", "content": text()}] if rng.random() < 0.3 else []
    for _ in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": text()})
        messages.append({"role": "assistant", "content": text(), **({"weight": 0} if rng.random() < 0.1 else {})})
    messages[-1].pop("weight", None)  # keep a trained turn in every record
    return {"messages": messages}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = random.Random(6)
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "chats.jsonl", [chat(rng) for _ in range(300)])


def convert(*args) -> object:
    result = CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_formats_are_the_writers():
    assert list(FORMATS) == list(WRITERS)


@pytest.mark.parametrize("output_format", OTHER_FORMATS)
@pytest.mark.parametrize("options", [[], ["--pack", 1024, "--overflow", "truncate"]], ids=["samples", "packed"])
def test_each_format_loads_with_the_same_rows_as_parquet(tmp_path, corpus, output_format, options):
    common = [EXAMPLES, corpus, "--shard-rows", 40, "-q", *options]
    convert(*common, "-o", tmp_path / "parquet")
    convert(*common, "-o", tmp_path / output_format, "--format", output_format)
    expected = load_rows(tmp_path / "parquet", "parquet", tmp_path / "cache")
    assert len(expected) == manifest(tmp_path / "parquet")["counts"]["rows"] > 40
    assert load_rows(tmp_path / output_format, output_format, tmp_path / "cache") == expected
    ours, theirs = manifest(tmp_path / output_format), manifest(tmp_path / "parquet")
    assert ours["counts"] == theirs["counts"] and ours["format"] == output_format
    assert [s["rows"] for s in ours["shards"]] == [s["rows"] for s in theirs["shards"]]


@pytest.mark.parametrize("output_format", FORMATS)
def test_repeated_runs_are_byte_identical(tmp_path, corpus, output_format):
    options = [EXAMPLES, corpus, "--format", output_format, "--shard-size", "40KB", "--pack", 2048,
               "--max-seq-len", 600, "--overflow", "truncate", "--pack-window", 50, "-q"]
    for name in ("a", "b"):
        convert(*options, "-o", tmp_path / name)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(manifest(tmp_path / "a")["shards"]) > 2
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_shard_size_counts_token_bytes_and_cuts_every_format_alike(tmp_path, corpus):
    limit = 20_000
    shards = {}
    for output_format in FORMATS:
        convert(corpus, "-o", tmp_path / output_format, "--format", output_format, "--shard-size", "20KB", "-q")
        shards[output_format] = [(s["rows"], s["tokens"]) for s in manifest(tmp_path / output_format)["shards"]]
    assert all(cut == shards["parquet"] for cut in shards.values())
    rows = load_rows(tmp_path / "parquet", "parquet", tmp_path / "cache")
    start = 0
    for count, tokens in shards["parquet"]:
        lengths = [row["length"] for row in rows[start:start + count]]
        assert sum(lengths) == tokens and 9 * tokens <= limit  # 9 bytes a token: id, label, mask
        if start + count < len(rows):  # the next row would not have fitted
            assert 9 * (tokens + rows[start + count]["length"]) > limit
        start += count
    assert start == len(rows) == manifest(tmp_path / "parquet")["counts"]["written"] > 250


def test_megatron_files_equal_megatron_builder_output(tmp_path, corpus):
    """Byte for byte what Megatron-LM's own IndexedDatasetBuilder writes for the same sequences and documents."""
    import warnings

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    for options in ([], ["--pack", 1024, "--overflow", "truncate"]):
        out = tmp_path / str(len(options))
        convert(corpus, "-o", out, "--format", "megatron", "-q", *options)
        rows = load_rows(out, "megatron", tmp_path / "cache")
        for name, key, dtype in (("input_ids", "input_ids", np.int32), ("loss_mask", "loss_mask", np.uint8)):
            builder = IndexedDatasetBuilder(str(tmp_path / f"{name}.bin"), dtype=dtype)
            for row in rows:
                start = 0
                for length in row.get("seq_lens", [row["length"]]):
                    builder.add_item(torch.tensor(row[key][start:start + length]))
                    start += length
                builder.end_document()
            builder.finalize(str(tmp_path / f"{name}.idx"))
            for suffix in ("bin", "idx"):
                assert (out / f"part-00000-shard-00000.{name}.{suffix}").read_bytes() == (tmp_path / f"{name}.{suffix}").read_bytes()


def test_jsonl_is_one_readable_object_per_row(tmp_path, tokenizer):
    import json

    from sftconv.conversation import Conversation, Location, Message
    from sftconv.template import Llama3Template

    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    convert(write_jsonl(tmp_path / "in.jsonl", [{"messages": messages}]), "-o", tmp_path / "out", "--format", "jsonl", "-q")
    [line] = (tmp_path / "out" / "part-00000-shard-00000.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert line == json.dumps(row) and list(row) == ["input_ids", "labels", "loss_mask", "length"]
    sample = Llama3Template(tokenizer).render(Conversation(tuple(Message(**m) for m in messages), Location("x")))
    assert row == {"input_ids": sample.input_ids, "labels": sample.labels, "loss_mask": sample.loss_mask,
                   "length": len(sample.input_ids)}


@pytest.mark.parametrize("output_format", FORMATS)
def test_failure_keeps_finished_shards_and_leaves_no_partial_file(tmp_path, output_format):
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    source = write_jsonl(tmp_path / "in.jsonl", [good] * 1100 + ['{"messages": 7}'])
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "--format",
                                       output_format, "--shard-rows", "500", "--on-error", "fail", "-q"])
    assert result.exit_code == 1 and "in.jsonl:1101: messages_not_list" in result.stderr
    left = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != WORK_DIR)  # WORK_DIR: for --resume
    assert left and all(name.startswith(("part-00000-shard-00000", "part-00000-shard-00001")) for name in left), left


def test_hf_empty_run_loads_as_an_empty_dataset(tmp_path):
    from datasets import load_from_disk

    convert(write_jsonl(tmp_path / "in.jsonl", []), "-o", tmp_path / "out", "--format", "hf", "-q", "--allow-empty")
    loaded = load_from_disk(str(tmp_path / "out"))
    assert len(loaded) == 0 and loaded.column_names == ["input_ids", "labels", "loss_mask", "length"]


def test_overwrite_replaces_another_formats_output(tmp_path, corpus):
    convert(corpus, "-o", tmp_path, "--format", "hf", "-q")
    (tmp_path / ".part-00000-shard-00007.arrow.tmp").write_bytes(b"left by a killed run")
    convert(corpus, "-o", tmp_path, "--format", "megatron", "--overwrite", "-q")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "chats.jsonl") == [
        "manifest.json", "part-00000-shard-00000.input_ids.bin", "part-00000-shard-00000.input_ids.idx",
        "part-00000-shard-00000.loss_mask.bin", "part-00000-shard-00000.loss_mask.idx", "rejects.jsonl"]


@pytest.mark.parametrize("args, message", [
    (["--overflow", "truncate"], "--overflow needs --max-seq-len or --pack"),
    (["--pack-window", "10"], "--pack-window needs --pack"),
    (["--pack", "512", "--max-seq-len", "1024"], "--max-seq-len 1024 is longer than --pack 512"),
    (["--shard-size", "lots"], "'lots' is not a size"),
    (["--format", "csv"], "Invalid value for '--format'"),
])
def test_bad_writer_options_are_usage_errors(tmp_path, args, message):
    source = write_jsonl(tmp_path / "in.jsonl", [])
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("text, size", [("1000", 1000), ("500MB", 500_000_000), ("1.5gb", 1_500_000_000),
                                        ("2GiB", 2 * 2**30), ("64k", 64_000)])
def test_shard_sizes_parse(text, size):
    from sftconv.cli import ByteSize

    assert ByteSize().convert(text, None, None) == size


@pytest.mark.parametrize("output_format", FORMATS)
def test_bytes_do_not_depend_on_how_rows_are_handed_to_the_writer(tmp_path, output_format):
    from sftconv.template import Samples
    from sftconv.writers.shards import BATCH_ROWS, Columns

    rng = random.Random(3)
    lengths = [rng.choice([1, 5, 300, 5000]) for _ in range(3 * BATCH_ROWS)]
    samples = Samples.from_lists(([7] * n, [i % 2] * n) for i, n in enumerate(lengths))
    outputs = []
    for name, sizes in [("whole", [len(lengths)]), ("pieces", [1, 2, 700, 1, 1500] + [50] * 200)]:
        writer = WRITERS[output_format](tmp_path / name, shard_rows=2000)
        (tmp_path / name).mkdir()
        start = 0
        for size in sizes:
            writer.write_columns(Columns.from_samples(samples.take(range(start, min(start + size, len(lengths))))))
            start = min(start + size, len(lengths))
        writer.close()
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())})
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1
