"""`sftconv validate OUT_DIR` on every output format: clean outputs (packed or not, truncated or not) pass, and
real output broken one way at a time, in its own format with its own library, is caught by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.validate.formats import SHARD_READERS
from sftconv.writers import WRITERS

from .conftest import write_jsonl
from .shard_support import edit, main_file, manifest, read_rows, save_manifest, set_mask, shard_files
from .validate_support import SCHEMA, counts, examples, run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"
FORMATS = list(WRITERS)
STORING_LABELS = [f for f in FORMATS if f != "megatron"]  # Megatron's format stores the mask only
BOS, EOT = 128000, 128009
CUT = 200  # examples/chat_logs.jsonl:2 has 249 tokens; cut at 200 it ends inside its answer
VARIANTS = {
    "samples": ["--shard-rows", 10],
    "packed": [EXAMPLES, "--pack", 256, "--shard-rows", 3],
    "cut": [EXAMPLES, "--max-seq-len", CUT, "--overflow", "truncate-tokens", "--shard-rows", 10],
    "packed-cut": [EXAMPLES, "--pack", 256, "--max-seq-len", CUT, "--overflow", "truncate-tokens", "--shard-rows", 3],
}


def records(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": "more"},
                          {"role": "assistant", "content": f"more {i}"}]} for i in range(n)]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """convert's output of 25 samples and one reject (plus the examples, for some variants), made once per format."""
    base = tmp_path_factory.mktemp("outputs")
    source = write_jsonl(base / "in.jsonl", records(25) + ["not json"])
    made: dict[tuple[str, str], Path] = {}

    def get(output_format: str, variant: str) -> Path:
        if (output_format, variant) not in made:
            out = base / f"{output_format}-{variant}"
            result = CliRunner().invoke(main, ["convert", str(source), *map(str, VARIANTS[variant]), "-o", str(out),
                                               "--format", output_format, "-q"])
            assert result.exit_code == 0, result.output
            made[output_format, variant] = out
        return made[output_format, variant]

    return get


@pytest.fixture
def fresh(outputs, tmp_path):
    """A copy of one output to break."""
    return lambda output_format, variant="samples": Path(shutil.copytree(outputs(output_format, variant),
                                                                        tmp_path / "out"))


def test_every_writer_has_a_reader_and_the_report_schema_names_them():
    assert list(SHARD_READERS) == list(WRITERS)
    schema = json.loads(SCHEMA.read_text())
    assert schema["$defs"]["shard_stats"]["properties"]["format"]["enum"] == list(WRITERS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("output_format", FORMATS)
def test_clean_output_passes(outputs, output_format, variant):
    out = outputs(output_format, variant)
    exit_code, report = run(out)
    counted = manifest(out)["counts"]
    assert (exit_code, report["issues"]) == (0, [])
    stats = report["stats"]
    assert (stats["format"], stats["shards"]) == (output_format, len(manifest(out)["shards"])) and stats["shards"] > 1
    assert (report["checked"], stats["rows"], stats["samples"], stats["tokens"], stats["trained_tokens"]) == (
        counted["rows"], counted["rows"], counted["written"], counted["tokens"], counted["trained_tokens"])
    if "packed" in variant:
        assert stats["rows"] < stats["samples"] and stats["tokens_per_row"]["max"] <= 256
    else:
        assert stats["rows"] == stats["samples"] and stats["tokens_per_row"] is None
    if "cut" in variant:
        assert stats["tokens_per_sample"]["max"] == CUT and manifest(out)["lengths"]["truncated"] == 1


@pytest.mark.parametrize("output_format", FORMATS)
def test_untrained_eot(fresh, output_format):
    out = fresh(output_format)
    edit(out, output_format, 0, lambda rows: set_mask(rows[4], len(rows[4]["input_ids"]) - 1, 0))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"untrained_eot": 1}
    [example] = examples(report, "untrained_eot")
    assert example["location"] == f"{main_file(out, 0)}[row 4]"
    assert example["detail"].endswith("trains its content but its <|eot_id|> is not trained")


@pytest.mark.parametrize("output_format", FORMATS)
def test_trained_header(fresh, output_format):
    out = fresh(output_format)
    edit(out, output_format, 1, lambda rows: set_mask(rows[2], 1, 1))  # <|start_header_id|> of the system turn
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"trained_header": 1}
    assert examples(report, "trained_header")[0]["detail"].startswith("header token at 1 (id 128006) is trained")


@pytest.mark.parametrize("output_format", STORING_LABELS)
def test_flipped_label(fresh, output_format):
    out = fresh(output_format)
    rows = edit(out, output_format, 1, lambda rows: rows[3]["labels"].__setitem__(rows[3]["loss_mask"].index(1), -100))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"label_mismatch": 1}
    [example] = examples(report, "label_mismatch")
    assert (example["location"], example["field"]) == (f"{main_file(out, 1)}[row 3]", "labels")
    assert example["detail"].startswith(f"at {rows[3]['loss_mask'].index(1)}: label -100, input_id ")


@pytest.mark.parametrize("output_format", FORMATS)
def test_loss_mask_other_than_0_or_1(fresh, output_format):
    out = fresh(output_format)
    edit(out, output_format, 2, lambda rows: rows[0]["loss_mask"].__setitem__(rows[0]["loss_mask"].index(1), 2))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"bad_loss_mask": 1}
    assert examples(report, "bad_loss_mask")[0]["detail"].endswith("is 2, not 0 or 1")


@pytest.mark.parametrize("output_format", FORMATS)
def test_changed_file_without_resealing_breaks_its_hash(fresh, output_format):
    out = fresh(output_format)
    before = manifest(out)
    edit(out, output_format, 0, lambda rows: set_mask(rows[0], len(rows[0]["input_ids"]) - 1, 0))
    changed = [new["file"] for new, old in zip(manifest(out)["shards"][0]["files"], before["shards"][0]["files"])
               if new["sha256"] != old["sha256"]]
    save_manifest(out, before)
    _, report = run(out)
    assert counts(report) == {"untrained_eot": 1, "sha256_mismatch": 1, "token_count_mismatch": 1,
                              "counts_mismatch": 1}
    assert [e["location"] for e in examples(report, "sha256_mismatch")] == [str(out / name) for name in changed]


@pytest.mark.parametrize("output_format", FORMATS)
def test_wrong_sha256(fresh, output_format):
    out = fresh(output_format)
    data = manifest(out)
    data["shards"][2]["files"][-1]["sha256"] = "0" * 64
    save_manifest(out, data)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"sha256_mismatch": 1}
    [example] = examples(report, "sha256_mismatch")
    assert example["location"] == str(out / data["shards"][2]["files"][-1]["file"])
    assert example["detail"].endswith(f"the manifest says {'0' * 64}")


def each_file(output_format: str) -> list[tuple[str, int]]:
    return [(output_format, number) for number in range(4 if output_format == "megatron" else 1)]


@pytest.mark.parametrize("output_format, number", [case for f in FORMATS for case in each_file(f)])
def test_missing_file(fresh, output_format, number):
    out = fresh(output_format)
    path = shard_files(out, 2)[number]
    path.unlink()
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"shard_missing": 1, "counts_mismatch": 1}
    assert examples(report, "shard_missing")[0]["location"] == str(path)
    assert report["checked"] == 20  # the other two shards were read


@pytest.mark.parametrize("output_format, number", [case for f in FORMATS for case in each_file(f)])
def test_truncated_file(fresh, output_format, number):
    out = fresh(output_format)
    path = shard_files(out, 1)[number]
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2 + 1])  # + 1: inside a line, for JSON Lines
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"shard_unreadable": 1, "sha256_mismatch": 1, "counts_mismatch": 1}
    [example] = examples(report, "shard_unreadable")
    assert example["location"] == str(path)
    assert "bytes, the manifest says" in examples(report, "sha256_mismatch")[0]["detail"]
    assert report["checked"] == 15


def test_jsonl_cut_at_a_line_break_still_disagrees_with_the_manifest(fresh):
    out = fresh("jsonl")
    path = shard_files(out, 1)[0]
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:7]))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"sha256_mismatch": 1, "row_count_mismatch": 1,
                                                 "token_count_mismatch": 1, "counts_mismatch": 1}
    assert examples(report, "row_count_mismatch")[0]["detail"] == "7 rows (7 samples), the manifest says 10 (10)"


@pytest.mark.parametrize("output_format", FORMATS)
def test_unlisted_shard_is_a_warning(fresh, output_format):
    out = fresh(output_format)
    source = main_file(out, 0)
    shutil.copy(source, out / source.name.replace("part-00000-shard-00000", "part-00000-shard-00007"))
    exit_code, report = run(out)
    assert exit_code == 0 and counts(report) == {"unlisted_shard": 1}
    assert run(out, "--strict")[0] == 1


def test_hf_state_must_list_the_manifest_shards(fresh):
    out = fresh("hf")
    state = json.loads((out / "state.json").read_text())
    state["_data_files"] = state["_data_files"][:2]
    (out / "state.json").write_text(json.dumps(state))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"side_file_mismatch": 1}
    assert "datasets.load_from_disk would not read what the manifest describes" in \
        examples(report, "side_file_mismatch")[0]["detail"]
    (out / "state.json").unlink()
    assert examples(run(out)[1], "side_file_mismatch")[0]["detail"] == "missing: datasets.load_from_disk needs it"


def test_megatron_mask_index_must_match_the_ids_index(fresh):
    out = fresh("megatron")
    ids, mask = shard_files(out, 0)[1], shard_files(out, 0)[3]
    assert mask.name.endswith(".loss_mask.idx")
    mask.write_bytes(shard_files(out, 2)[3].read_bytes())  # the loss_mask index of a shard of 5 rows, not 10
    _, report = run(out)
    assert counts(report) == {"shard_unreadable": 1, "sha256_mismatch": 1, "counts_mismatch": 1}
    [example] = examples(report, "shard_unreadable")
    assert example["location"] == str(mask) and "indexes disagree" in example["detail"] and ids.is_file()


def test_manifest_must_list_every_file_of_a_shard(fresh):
    out = fresh("megatron")
    data = manifest(out)
    del data["shards"][0]["files"][3]
    save_manifest(out, data)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"manifest_invalid": 1, "counts_mismatch": 1, "unlisted_shard": 1}
    assert examples(report, "manifest_invalid")[0]["detail"] == (
        "shards[0]: the manifest lists 0 *.loss_mask.idx files for this shard, not one")
    data["shards"][0]["files"].append({"file": "../elsewhere.idx", "bytes": 1, "sha256": "0" * 64})
    save_manifest(out, data)
    assert examples(run(out)[1], "manifest_invalid")[0]["detail"] == (
        "shards[0].files[3].file must name a file in the output folder, found '../elsewhere.idx'")


def packed_row(rows: list[dict]) -> int:
    """A row holding at least two samples."""
    return next(i for i, row in enumerate(rows) if len(row["seq_lens"]) >= 2)


@pytest.mark.parametrize("output_format", FORMATS)
def test_packed_sample_whose_bos_is_trained(fresh, output_format):
    """The first label of each packed sample must not be trained, or it asks the model to continue the previous one."""
    out = fresh(output_format, "packed")
    found = {}

    def change(rows):
        found["row"] = row = packed_row(rows)
        first = rows[row]["seq_lens"][0]
        assert rows[row]["input_ids"][first] == BOS
        set_mask(rows[row], first, 1)

    edit(out, output_format, 1, change)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"bad_bos": 1}
    [example] = examples(report, "bad_bos")
    assert example["location"] == f"{main_file(out, 1)}[row {found['row']}]"
    assert example["detail"] == ("sample 1: <|begin_of_text|> is trained: its label asks the model to continue "
                                 "sample 0 into this one")


@pytest.mark.parametrize("output_format", FORMATS)
def test_packed_samples_run_together(fresh, output_format):
    """seq_lens that join two samples into one (position_ids agreeing) leave a sample with two <|begin_of_text|>."""
    out = fresh(output_format, "packed")

    def change(rows):
        row = rows[packed_row(rows)]
        first, second, *rest = row["seq_lens"]
        row["seq_lens"] = [first + second, *rest]
        if "position_ids" in row:
            row["position_ids"] = [p for n in row["seq_lens"] for p in range(n)]

    edit(out, output_format, 0, change)
    exit_code, report = run(out)
    # The first sample's last turn now runs into the second sample, so it no longer ends with its <|eot_id|> either.
    assert exit_code == 1 and counts(report) == {"bad_bos": 1, "untrained_eot": 1, "row_count_mismatch": 1,
                                                 "counts_mismatch": 1}
    assert examples(report, "bad_bos")[0]["detail"].startswith(
        "sample 0: holds 2 <|begin_of_text|> tokens; a sample has exactly one")


@pytest.mark.parametrize("output_format", STORING_LABELS)
def test_seq_lens_that_do_not_add_up(fresh, output_format):
    out = fresh(output_format, "packed")
    edit(out, output_format, 2, lambda rows: rows[0]["seq_lens"].__setitem__(-1, rows[0]["seq_lens"][-1] - 1))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"bad_seq_lens": 1}
    [example] = examples(report, "bad_seq_lens")
    assert example["location"] == f"{main_file(out, 2)}[row 0]" and example["field"] == "seq_lens"
    length = len(read_rows(out, output_format, 2)[0]["input_ids"])
    assert example["detail"].endswith(f"sum to {length - 1:,}, the row has {length:,} tokens")


@pytest.mark.parametrize("output_format", STORING_LABELS)
def test_position_ids_that_do_not_restart(fresh, output_format):
    out = fresh(output_format, "packed")
    found = {}

    def change(rows):
        row = rows[packed_row(rows)]
        row["position_ids"] = list(range(len(row["input_ids"])))
        found["first"] = row["seq_lens"][0]

    edit(out, output_format, 0, change)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"bad_position_ids": 1}
    first = found["first"]
    assert examples(report, "bad_position_ids")[0]["detail"].startswith(
        f"position_ids[{first}] is {first}, want 0: positions restart at 0")


@pytest.mark.parametrize("output_format", ["parquet", "megatron"])
def test_limits_recorded_in_the_manifest(fresh, output_format):
    """The run's --max-seq-len bounds each sample and its --pack each row; validate's own --max-seq-len bounds rows."""
    out = fresh(output_format, "packed")
    stats = run(out)[1]["stats"]
    longest_sample, longest_row = stats["tokens_per_sample"]["max"], stats["tokens_per_row"]["max"]
    data = manifest(out)
    data["lengths"]["max_seq_len"] = longest_sample - 1
    save_manifest(out, data)
    _, report = run(out)
    assert counts(report) == {"too_long": 1}
    assert examples(report, "too_long")[0]["detail"].endswith(
        f"{longest_sample} tokens > the run's --max-seq-len {longest_sample - 1}")
    data["lengths"]["max_seq_len"], data["packing"]["seq_len"] = 256, longest_row - 1
    save_manifest(out, data)
    assert examples(run(out)[1], "too_long")[0]["detail"] == (
        f"{longest_row} tokens > the run's --pack {longest_row - 1}")
    data["packing"]["seq_len"] = 256
    save_manifest(out, data)
    assert examples(run(out, "--max-seq-len", longest_row - 2)[1], "too_long")[0]["detail"].endswith(
        f" tokens > --max-seq-len {longest_row - 2}")


@pytest.mark.parametrize("variant", ["cut", "packed-cut"])
@pytest.mark.parametrize("output_format", FORMATS)
def test_an_answer_cut_short_is_expected_only_under_truncate_tokens(fresh, output_format, variant):
    out = fresh(output_format, variant)
    data = manifest(out)
    data["lengths"]["overflow"] = "truncate"
    save_manifest(out, data)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"untrained_eot": 1}
    assert examples(report, "untrained_eot")[0]["detail"].endswith("trains its content but it does not end with "
                                                                  "<|eot_id|>")


@pytest.mark.parametrize("output_format", FORMATS)
def test_an_unclosed_answer_shorter_than_the_cut_is_flagged(fresh, output_format):
    """Under truncate-tokens only a sample of exactly --max-seq-len tokens may end inside an answer."""
    out = fresh(output_format, "cut")
    [(shard, row)] = [(shard, row) for shard in range(len(manifest(out)["shards"]))
                      for row, found in enumerate(read_rows(out, output_format, shard))
                      if len(found["input_ids"]) == CUT]

    def change(rows):
        for column in ("input_ids", "labels", "loss_mask"):
            if column in rows[row]:
                rows[row][column].pop()
        if "length" in rows[row]:
            rows[row]["length"] -= 1
        if "seq_lens" in rows[row]:
            rows[row]["seq_lens"] = [CUT - 1]

    edit(out, output_format, shard, change)
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"untrained_eot": 1}
    assert examples(report, "untrained_eot")[0]["location"] == f"{main_file(out, shard)}[row {row}]"


def test_batches_are_checked_in_runs_of_whole_rows(outputs):
    """Rows are checked a bounded number of tokens at a time; the runs cover every row once, in order."""
    from sftconv.validate.rows import RowRules, check_rows

    out = outputs("parquet", "packed")
    reader = SHARD_READERS["parquet"](packed=True)
    [batch] = list(reader.batches(shard_files(out, 0)))
    lengths = batch.input_ids.lengths
    for tokens in (1, int(lengths[0]), int(lengths[:2].sum()), 10**9):
        chunks = list(batch.chunks(tokens))
        assert [c.first_row for c in chunks] == list(np.cumsum([0] + [c.rows for c in chunks[:-1]]))
        assert sum(c.rows for c in chunks) == batch.rows
        assert all(c.rows == 1 or c.input_ids.lengths.sum() <= tokens for c in chunks)
        assert np.array_equal(np.concatenate([c.seq_lens.values for c in chunks]), batch.seq_lens.values)
    assert check_rows(batch, RowRules(vocab_size=128256, train_headers=False)) == {}


def test_tool_call_turns_end_with_a_trained_eom(tmp_path, shared_data):
    """Llama 3.1 tool-call turns end with <|eom_id|>: validate accepts it trained, and catches it untrained."""
    out = tmp_path / "out"
    source = shared_data / "functionary" / "test_case.json"
    assert CliRunner().invoke(main, ["convert", str(source), "-o", str(out), "--template", "llama3.1", "-q"]).exit_code == 0
    exit_code, report = run(out)
    assert exit_code == 0 and counts(report) == {}
    eom = 128008
    [row] = read_rows(out, "parquet", 0)
    trained_eom = next(i for i, (t, m) in enumerate(zip(row["input_ids"], row["loss_mask"])) if t == eom and m)
    edit(out, "parquet", 0, lambda rows: set_mask(rows[0], trained_eom, 0))
    exit_code, report = run(out)
    assert exit_code == 1 and counts(report) == {"untrained_eot": 1}
    assert examples(report, "untrained_eot")[0]["detail"].endswith("trains its content but its <|eom_id|> is not trained")
