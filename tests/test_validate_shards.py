"""`sftconv validate OUT_DIR`: real convert output, corrupted one way at a time, is caught by name, never a crash."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.writers.arrow import arrow_schema

from .conftest import write_jsonl
from .validate_support import counts, examples, run

BOS, START_HEADER, EOT, VOCAB = 128000, 128006, 128009, 128256


def records(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": "more"},
                          {"role": "assistant", "content": f"more {i}"}]} for i in range(n)]


def convert(tmp: Path, items: list, *args) -> Path:
    out = tmp / "out"
    result = CliRunner().invoke(main, ["convert", str(write_jsonl(tmp / "in.jsonl", items)), "-o", str(out), "-q",
                                       *map(str, args)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """25 samples and one reject in shards of 10, 10 and 5 rows."""
    return convert(tmp_path_factory.mktemp("converted"), records(25) + ["not json"], "--shard-rows", 10)


@pytest.fixture
def out(converted, tmp_path) -> Path:
    """A fresh copy of the converted folder to break."""
    return Path(shutil.copytree(converted, tmp_path / "out"))


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def save_manifest(folder: Path, data: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def rewrite(folder: Path, name: str, row: int, change) -> None:
    """Apply `change(row_dict)` to one row of a shard, then reseal the manifest so only the row is wrong."""
    path = folder / name
    rows = pq.read_table(path).to_pylist()
    change(rows[row])
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(packed=False)), path)
    reseal(folder)


def reseal(folder: Path) -> None:
    """Make the manifest agree with the shards as they now are: hashes and token counts."""
    data = manifest(folder)
    for shard in data["shards"]:
        [entry] = shard["files"]
        table = pq.read_table(folder / entry["file"])
        entry["sha256"] = hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest()
        entry["bytes"] = (folder / entry["file"]).stat().st_size
        shard["tokens"] = sum(map(len, table.column("input_ids").to_pylist()))
        shard["trained_tokens"] = sum(map(sum, table.column("loss_mask").to_pylist()))
    data["counts"]["tokens"] = sum(s["tokens"] for s in data["shards"])
    data["counts"]["trained_tokens"] = sum(s["trained_tokens"] for s in data["shards"])
    save_manifest(folder, data)


def first_trained(row: dict) -> int:
    return row["loss_mask"].index(1)


def test_clean_output_passes(converted):
    exit_code, report = run(converted)
    counted = manifest(converted)["counts"]
    assert (exit_code, report["kind"], report["issues"]) == (0, "shards", [])
    assert (report["checked"], report["stats"]["tokens"], report["stats"]["trained_tokens"]) == (
        counted["written"], counted["tokens"], counted["trained_tokens"])
    assert report["stats"]["shards"] == 3


def test_flipped_label(out):
    rewrite(out, "part-00000-shard-00001.parquet", 3, lambda r: r["labels"].__setitem__(first_trained(r), -100))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"label_mismatch": 1}
    [example] = examples(report, "label_mismatch")
    assert (example["location"], example["field"]) == (f"{out / 'part-00000-shard-00001.parquet'}[row 3]", "labels")
    assert example["detail"].startswith(f"at {first_trained(pq.read_table(out / 'part-00000-shard-00001.parquet').to_pylist()[3])}"
                                        ": label -100, input_id ")


def test_flipped_label_without_resealing_also_breaks_the_hash(out):
    path = out / "part-00000-shard-00000.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[0]["labels"][first_trained(rows[0])] += 1
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(packed=False)), path)
    assert counts(run(out)[1]) == {"label_mismatch": 1, "sha256_mismatch": 1}


def test_truncated_shard_is_reported_by_name(out):
    path = out / "part-00000-shard-00001.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    exit_code, report = run(out)
    assert exit_code == 1
    assert counts(report) == {"shard_unreadable": 1, "sha256_mismatch": 1, "counts_mismatch": 1}
    [example] = examples(report, "shard_unreadable")
    assert example["location"] == str(path) and "cannot read as Parquet" in example["detail"]
    assert report["checked"] == 15  # the other two shards were still read


def test_garbage_in_place_of_a_shard(out):
    (out / "part-00000-shard-00002.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    reseal_hash_only(out, "part-00000-shard-00002.parquet")
    assert counts(run(out)[1]) == {"shard_unreadable": 1, "counts_mismatch": 1}


def test_shard_of_another_schema(out):
    path = out / "part-00000-shard-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(0, "input_ids", pa.array([str(v) for v in table.column("input_ids").to_pylist()])),
                   path)
    reseal_hash_only(out, "part-00000-shard-00000.parquet")
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"shard_unreadable": 1, "counts_mismatch": 1}
    assert examples(report, "shard_unreadable")[0]["detail"].startswith("column input_ids is string, not a list of integers")


def reseal_hash_only(folder: Path, name: str) -> None:
    data = manifest(folder)
    entry = next(f for s in data["shards"] for f in s["files"] if f["file"] == name)
    entry["sha256"] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    entry["bytes"] = (folder / name).stat().st_size
    save_manifest(folder, data)


def test_wrong_sha256(out):
    data = manifest(out)
    data["shards"][2]["files"][0]["sha256"] = "0" * 64
    save_manifest(out, data)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"sha256_mismatch": 1}
    assert examples(report, "sha256_mismatch")[0]["detail"].endswith(f"the manifest says {'0' * 64}")


def test_id_out_of_range(out):
    def change(row):
        row["input_ids"][2] = VOCAB  # a header token: untrained, so its label stays -100
    rewrite(out, "part-00000-shard-00000.parquet", 7, change)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"id_out_of_range": 1}
    [example] = examples(report, "id_out_of_range")
    assert example["location"].endswith("part-00000-shard-00000.parquet[row 7]")
    assert example["detail"] == "input_ids[2] is 128256, not below the vocabulary size 128,256"


def test_missing_shard(out):
    (out / "part-00000-shard-00002.parquet").unlink()
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"shard_missing": 1, "counts_mismatch": 1}
    assert examples(report, "shard_missing")[0]["location"] == str(out / "part-00000-shard-00002.parquet")
    assert report["checked"] == 20


def test_untrained_eot(out):
    def change(row):
        last = len(row["input_ids"]) - 1
        row["loss_mask"][last], row["labels"][last] = 0, -100
    rewrite(out, "part-00000-shard-00000.parquet", 0, change)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"untrained_eot": 1}
    assert examples(report, "untrained_eot")[0]["detail"].endswith("trains its content but its <|eot_id|> is not trained")


def test_row_training_on_nothing(out):
    rewrite(out, "part-00000-shard-00002.parquet", 1, lambda r: r.update(loss_mask=[0] * r["length"], labels=[-100] * r["length"]))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"no_trained_tokens": 1}
    assert examples(report, "no_trained_tokens")[0]["location"].endswith("part-00000-shard-00002.parquet[row 1]")


def test_trained_header(out):
    def change(row):
        at = row["input_ids"].index(START_HEADER)
        row["loss_mask"][at], row["labels"][at] = 1, START_HEADER
    rewrite(out, "part-00000-shard-00000.parquet", 4, change)
    assert counts(run(out)[1]) == {"trained_header": 1}


@pytest.mark.parametrize("change, detail", [
    (lambda r: [r[k].pop(0) for k in ("input_ids", "labels", "loss_mask")] and r.update(length=r["length"] - 1),
     "starts with id 128006, not <|begin_of_text|> (128000)"),
    (lambda r: [r[k].insert(1, v) for k, v in (("input_ids", BOS), ("labels", -100), ("loss_mask", 0))]
     and r.update(length=r["length"] + 1), "holds 2 <|begin_of_text|> tokens"),
    (lambda r: r.update(input_ids=[], labels=[], loss_mask=[], length=0), "the sample is empty"),
])
def test_bad_bos(out, change, detail):
    rewrite(out, "part-00000-shard-00001.parquet", 0, change)
    _, report = run(out)
    assert counts(report) == {"bad_bos": 1} and examples(report, "bad_bos")[0]["detail"].startswith(detail)


def test_length_mismatch(out):
    rewrite(out, "part-00000-shard-00002.parquet", 4, lambda r: r["loss_mask"].pop())
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"length_mismatch": 1}
    [example] = examples(report, "length_mismatch")
    n = len(pq.read_table(out / "part-00000-shard-00002.parquet").to_pylist()[4]["input_ids"])
    assert example["detail"] == f"input_ids {n}, labels {n}, loss_mask {n - 1} tokens, length {n}"


def test_manifest_problems(out):
    save_manifest(out, {**manifest(out), "format": "tfrecord"})
    assert counts(run(out)[1]) == {"unknown_format": 1}
    data = manifest(out)
    del data["shards"][1]["rows"]
    save_manifest(out, {**data, "format": "parquet"})
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"manifest_invalid": 1}
    assert examples(report, "manifest_invalid")[0]["detail"] == "shards[1].rows must be a int, found missing"
    (out / "manifest.json").write_text('{"format": ')
    assert counts(run(out)[1]) == {"manifest_invalid": 1}
    (out / "manifest.json").unlink()
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"manifest_missing": 1} and report["stats"] == {}


def test_counts_and_rejects_must_add_up(out):
    data = manifest(out)
    data["counts"]["read"] += 1
    save_manifest(out, data)
    assert counts(run(out)[1]) == {"counts_mismatch": 1}
    data["counts"]["read"] -= 1
    save_manifest(out, data)
    (out / "rejects.jsonl").write_text("")
    assert counts(run(out)[1]) == {"rejects_mismatch": 1}


def test_unlisted_shard_is_a_warning(out):
    shutil.copy(out / "part-00000-shard-00000.parquet", out / "part-00000-shard-00007.parquet")
    exit_code, report = run(out)
    assert exit_code == 0 and counts(report) == {"unlisted_shard": 1}
    assert run(out, "--strict")[0] == 1


def test_rows_are_located_across_row_groups(tmp_path):
    """Shards are read a row group (1,024 rows) at a time; a row's number counts from the shard's start."""
    out = convert(tmp_path, records(2100))
    assert pq.ParquetFile(out / "part-00000-shard-00000.parquet").num_row_groups == 3
    rewrite(out, "part-00000-shard-00000.parquet", 2050, lambda r: r["labels"].__setitem__(first_trained(r), 5))
    rewrite(out, "part-00000-shard-00000.parquet", 1023, lambda r: r["input_ids"].__setitem__(1, -1))
    _, report = run(out)
    assert counts(report) == {"label_mismatch": 1, "id_out_of_range": 1}
    assert examples(report, "label_mismatch")[0]["row"] == 2050 and examples(report, "id_out_of_range")[0]["row"] == 1023
    assert report["checked"] == 2100


@pytest.mark.parametrize("train_on", ["all", "last"])
def test_other_mask_policies_pass(tmp_path, train_on):
    exit_code, report = run(convert(tmp_path, records(5), "--train-on", train_on))
    assert (exit_code, report["issues"]) == (0, [])


def test_headers_trained_under_all_are_not_allowed_elsewhere(tmp_path):
    out = convert(tmp_path, records(3), "--train-on", "all")
    data = manifest(out)
    data["options"]["train_on"] = "assistant"
    save_manifest(out, data)
    assert counts(run(out)[1]) == {"trained_header": 3}


def test_max_seq_len_on_rows(converted):
    longest = max(map(len, pq.read_table(converted / "part-00000-shard-00000.parquet").column("input_ids").to_pylist()))
    assert run(converted, "--max-seq-len", longest)[0] == 0
    exit_code, report = run(converted, "--max-seq-len", longest - 1)
    assert exit_code == 1 and counts(report)["too_long"] >= 1


def test_table_output_names_the_shard(out):
    (out / "part-00000-shard-00001.parquet").unlink()
    result = CliRunner().invoke(main, ["validate", str(out), "-q"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"15 rows in 3 shard(s) of {out}"
    assert any(line.split()[:4] == ["error", "shard_missing", "1", str(out / "part-00000-shard-00001.parquet")]
               for line in result.stdout.splitlines())
    assert result.stdout.splitlines()[-1].startswith("FAILED: 2 finding(s) about whole files or the run")


def test_output_folder_without_manifest_is_still_an_output_folder(out):
    (out / "manifest.json").unlink()
    exit_code, report = run(out)
    assert (exit_code, report["kind"], counts(report)) == (1, "shards", {"manifest_missing": 1})


def test_raw_shards_of_a_user_are_raw_input(tmp_path):
    write_jsonl(tmp_path / "shard-0001.jsonl", records(2))
    write_jsonl(tmp_path / "shard-0002.jsonl", records(1))
    exit_code, report = run(tmp_path)
    assert (exit_code, report["kind"], report["stats"]["records"]) == (0, "raw", 3)
