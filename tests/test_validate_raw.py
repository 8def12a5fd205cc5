"""`sftconv validate` on raw input: convert's own rejects, validate's text and sample checks, statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.template import Llama3Template

from .conftest import write_jsonl
from .validate_support import GOOD, counts, examples, run

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"


def chat(user: str = "Hi", assistant: str = "Hello!", **message) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant, **message}]}


def check(tmp_path: Path, records: list, *args) -> tuple[int, dict]:
    """Validate records as the OpenAI shape, so a record of another shape is an error, not a detection."""
    return run(write_jsonl(tmp_path / "in.jsonl", records), "--shape", "openai", *args)


# Each raw check: a record that fails it (with the code, field and a piece of the detail), and one that passes.
CASES = {
    "invalid_json": ('{"messages": [', None, "Expecting value", json.dumps(chat("json"))),
    "not_an_object": ("\"just text\"", None, "found str", chat("object")),
    "missing_messages": ({"conversations": []}, None, "fields: conversations", chat("messages")),
    "messages_not_list": ({"messages": "Hi"}, None, "found str", chat("list")),
    "unknown_role": ({"messages": [{"role": "robot", "content": "x"}]}, None, "'robot'", chat("role")),
    "content_not_string": (chat(assistant=None), None, "is null", chat(assistant="a string")),
    "empty_content": (chat(assistant="  \n"), None, "(assistant) has no content", chat(assistant=".")),
    "no_trained_tokens": (chat(weight=0), None, "no token is trained", chat(weight=1)),
    "lone_surrogate": ('{"messages": [{"role": "user", "content": "a\\ud83db"}, {"role": "assistant", "content": "ok"}]}',
                       "messages[0].content", "U+D83D at character 1",
                       '{"messages": [{"role": "user", "content": "a\\ud83d\\ude00b"}, {"role": "assistant", "content": "ok"}]}'),
    "control_character": (chat(assistant="bell\x07 here"), "messages[1].content", "U+0007 at character 4",
                          chat(assistant="tab\there\r\nnew line")),
    "special_token_text": (chat(user="say <|eot_id|> please"), "messages[0].content", "<|eot_id|> typed as text",
                           chat(user="say <|eot_id| or <eot_id> please")),
    "foreign_template_marker": (chat(assistant="Sure.<|im_end|>"), "messages[1].content", "<|im_end|> (ChatML",
                                chat(assistant="im_end and INST and SYS are words")),
}


def test_each_raw_check_fails_and_passes(tmp_path):
    """One file with one failing record per check, then one with each check's passing twin."""
    first = chat("First question")
    exit_code, report = check(tmp_path, [first] + [bad for bad, _, _, _ in CASES.values()])
    assert exit_code == 1 and counts(report) == {code: 1 for code in CASES}
    for line, (code, (_, field, detail, _)) in enumerate(CASES.items(), 2):
        [example] = examples(report, code)
        assert (example["line"], example["field"]) == (line, field) and detail in example["detail"], code
    exit_code, report = check(tmp_path, [first] + [good for _, _, _, good in CASES.values()])
    assert (exit_code, report["issues"], report["stats"]["samples"]) == (0, [], len(CASES) + 1)


def test_invalid_utf8_fails_and_passes(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + json.dumps(chat(assistant="caf\u00e9")).encode()[:-4]
                     + b"\xe9\"}]}\n")
    exit_code, report = run(path)
    assert exit_code == 1 and counts(report) == {"invalid_utf8": 1} and examples(report, "invalid_utf8")[0]["line"] == 2
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(chat(assistant="caf\u00e9"), ensure_ascii=False) + "\n")
    assert run(path)[1]["issues"] == []


def test_foreign_markers(tmp_path):
    markers = ["<|im_start|>", "<|user|>", "<|endoftext|>", "</s>", "<s>", "[INST]", "[/INST]", "<<SYS>>",
               "<start_of_turn>", "<|some_other_token|>"]
    _, report = check(tmp_path, [chat(user=f"x {marker} y", assistant=str(i)) for i, marker in enumerate(markers)],
                      "--examples", len(markers))
    assert counts(report) == {"foreign_template_marker": len(markers)}
    found = [e["detail"].split(" (")[0] for e in examples(report, "foreign_template_marker")]
    assert found == markers


def test_every_llama3_special_name_is_its_own_code(tmp_path, tokenizer):
    names = list(tokenizer.special_tokens)
    _, report = check(tmp_path, [chat(user=f"see {name}") for name in names])
    assert counts(report) == {"special_token_text": 256}


def test_text_checks_scan_every_string_and_report_each_code_once(tmp_path):
    record = {"id": "a\x00b", "messages": [{"role": "user", "content": "<|im_start|>user"},
                                           {"role": "assistant", "content": "x<|eot_id|>\x1b[0m</s>"}]}
    _, report = check(tmp_path, [record])
    assert counts(report) == {"control_character": 1, "foreign_template_marker": 1, "special_token_text": 1}
    assert [examples(report, c)[0]["field"] for c in ("control_character", "foreign_template_marker",
                                                      "special_token_text")] == ["id", "messages[0].content",
                                                                                 "messages[1].content"]


def test_text_of_a_rejected_record_is_still_checked(tmp_path):
    _, report = check(tmp_path, [{"prompt": "Q", "completion": "A<|endoftext|>"}])  # not the OpenAI shape
    assert counts(report) == {"missing_messages": 1, "foreign_template_marker": 1}
    assert report["with_errors"] == 1 and report["with_warnings"] == 0


def test_a_lone_surrogate_in_a_field_name_prints_escaped(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", ['{"\\ud800": "x"}'])
    exit_code, report = run(source, "--shape", "openai")
    assert exit_code == 1 and examples(report, "missing_messages")[0]["detail"] == "no 'messages' field (fields: \ud800)"
    table = CliRunner().invoke(main, ["validate", str(source), "--shape", "openai", "-q"])
    assert table.exit_code == 1 and "(fields: \\ud800)" in table.stdout


def test_duplicates_after_normalisation(tmp_path):
    records = [chat("Hi", "Hello!"), chat(" Hi\n", "Hello!  "), chat("hi", "Hello!"), chat("Hi", "Hello! "),
               chat("Hi", "Hello!", weight=1)]
    exit_code, report = check(tmp_path, records)
    assert exit_code == 0 and counts(report) == {"duplicate": 3}
    assert [e["line"] for e in examples(report, "duplicate")] == [2, 4, 5]
    assert examples(report, "duplicate")[0]["detail"] == f"renders to the same tokens as {tmp_path / 'in.jsonl'}:1"


def test_duplicates_across_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [GOOD])
    write_jsonl(tmp_path / "b.jsonl", [chat("other"), GOOD])
    _, report = run(tmp_path)
    [example] = examples(report, "duplicate")
    assert example["location"] == f"{tmp_path / 'b.jsonl'}:2" and example["detail"].endswith(f"{tmp_path / 'a.jsonl'}:1")


def test_too_long_uses_the_real_tokenizer(tmp_path, tokenizer):
    answer = "Eat a banana! " * 50
    record = chat(assistant=answer)
    template = Llama3Template(tokenizer)
    length = (1 + len(template.header_ids("user")) + len(tokenizer.encode("Hi")) + 1
              + len(template.header_ids("assistant")) + len(tokenizer.encode(answer.strip())) + 1)
    assert check(tmp_path, [record], "--max-seq-len", length)[1]["issues"] == []
    exit_code, report = check(tmp_path, [record], "--max-seq-len", length - 1)
    assert exit_code == 1 and counts(report) == {"too_long": 1}
    assert examples(report, "too_long")[0]["detail"] == f"{length:,} tokens > --max-seq-len {length - 1:,}"
    assert report["stats"]["tokens_per_sample"]["max"] == length


def test_empty_input(tmp_path):
    write_jsonl(tmp_path / "empty.jsonl", [])
    exit_code, report = run(tmp_path / "empty.jsonl")
    assert exit_code == 1 and counts(report) == {"empty_file": 1, "no_records": 1}
    write_jsonl(tmp_path / "full.jsonl", [GOOD])
    exit_code, report = run(tmp_path)
    assert exit_code == 0 and counts(report) == {"empty_file": 1}
    assert run(tmp_path, "--strict")[0] == 1


def test_agrees_with_convert_on_the_examples(tmp_path):
    """One code path: validate reports exactly the rejects convert writes, and the tokens convert writes."""
    assert CliRunner().invoke(main, ["convert", str(EXAMPLES), "-o", str(tmp_path), "-q"]).exit_code == 0
    written = json.loads((tmp_path / "manifest.json").read_text())["counts"]
    exit_code, report = run(EXAMPLES)
    errors = {i["code"]: i["count"] for i in report["issues"] if i["severity"] == "error"}
    assert exit_code == 1 and errors == written["rejected_by_reason"]
    assert counts(report) == {**written["rejected_by_reason"], "special_token_text": 1}
    stats = report["stats"]
    assert (stats["records"], stats["samples"], stats["tokens"], stats["trained_tokens"]) == (
        written["read"], written["written"], written["tokens"], written["trained_tokens"])
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    for reject in rejects:
        assert examples(report, reject["reason"])[0]["location"] == reject["location"]


def test_statistics_are_exact(tmp_path, tokenizer):
    records = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a " * n}] * turns}
               for n, turns in [(1, 1), (5, 2), (9, 1), (30, 3), (2, 1)]]
    _, report = check(tmp_path, records, "--train-on", "last")
    assert CliRunner().invoke(main, ["convert", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out"),
                                     "--train-on", "last", "-q"]).exit_code == 0
    import pyarrow.parquet as pq

    lengths = sorted(pq.read_table(tmp_path / "out" / "part-00000-shard-00000.parquet").column("length").to_pylist())
    assert report["stats"]["tokens_per_sample"] == {"count": 5, "min": lengths[0], "median": lengths[2],
                                                    "p95": lengths[4], "max": lengths[4],
                                                    "mean": round(sum(lengths) / 5, 2)}
    assert report["stats"]["turns_per_conversation"] == {"count": 5, "min": 2, "median": 2, "p95": 6, "max": 6,
                                                         "mean": 3.2}
    assert report["stats"]["trained_share"] == round(report["stats"]["trained_tokens"] / sum(lengths), 4)


def test_table_output(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD, "oops", chat(user="<|im_start|>"), GOOD])
    result = CliRunner().invoke(main, ["validate", str(source), "-q"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "4 records in 1 file(s)"
    assert lines[1].split(None, 4) == ["error", "invalid_json", "1", f"{source}:2", "Expecting value: line 1 column 1 "
                                                                                    "(char 0)"]
    assert lines[2].split(None, 4)[:4] == ["warning", "duplicate", "1", f"{source}:4"]
    assert lines[3].split(None, 4) == ["warning", "foreign_template_marker", "1", f"{source}:3",
                                       "messages[0].content: <|im_start|> (ChatML (Qwen, Yi, OpenHermes)) at character 0"]
    assert "samples                 3" in lines and "trained tokens" in lines[-3]
    assert lines[-1] == "FAILED: 1 of 4 records (25.0%) have errors, over --max-error-rate 0"
    assert "\x1b[" not in result.output  # no colour when not a terminal
    coloured = CliRunner().invoke(main, ["validate", str(source), "-q"], color=True)
    assert "\x1b[31merror" in coloured.output


def test_max_error_rate_and_strict(tmp_path):
    records = [chat(f"question {i}") for i in range(98)] + ["broken", chat(user="<s>")]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    assert run(source)[0] == 1
    exit_code, report = run(source, "--max-error-rate", "0.01")
    assert exit_code == 0 and report["error_rate"] == 0.01 and report["ok"]
    assert run(source, "--max-error-rate", "0.01", "--strict")[0] == 1
    assert run(source, "--max-error-rate", "0.02", "--strict")[1]["error_rate"] == 0.02


@pytest.mark.parametrize("args, message", [
    (["missing.jsonl"], "no such file or folder: missing.jsonl"),
    (["data.xlsx"], "no reader for this file type"),
    (["in.jsonl", "--max-error-rate", "2"], "Invalid value for '--max-error-rate'"),
    (["in.jsonl", "--max-seq-len", "0"], "Invalid value for '--max-seq-len'"),
    (["in.jsonl", "--format", "yaml"], "Invalid value for '--format'"),
    (["in.jsonl", "out"], "out is an output folder; validate it on its own"),
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in.jsonl", [GOOD])
    (tmp_path / "data.xlsx").write_text("")
    CliRunner().invoke(main, ["convert", "in.jsonl", "-o", "out", "-q"])
    result = CliRunner().invoke(main, ["validate", *args])
    assert result.exit_code == 2 and message in result.stderr


def test_help_teaches():
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert "      sftconv validate 'data/*.jsonl' --max-seq-len 8192\n" in result.output


# The team's real broken files, with exact counts per code.

def test_shared_cookbook_file(shared_data):
    source = shared_data / "openai-cookbook" / "toy_chat_fine_tuning.jsonl"
    exit_code, report = run(source)
    # Line 4 answers a system prompt with no user turn: the turn rules reject it, as convert does.
    assert (exit_code, counts(report), report["stats"]["records"], report["stats"]["samples"]) == (
        1, {"assistant_before_user": 1}, 5, 4)
    assert examples(report, "assistant_before_user")[0]["line"] == 4
    exit_code, report = run(source, "--max-seq-len", 4096)
    assert exit_code == 1 and counts(report) == {"assistant_before_user": 1, "too_long": 1}
    assert examples(report, "too_long")[0]["line"] == 5  # the ~26,000-character answer
    assert report["stats"]["turns_per_conversation"]["max"] == 9


def test_shared_dolly_bad_escapes(shared_data):
    exit_code, report = run(shared_data / "dolly" / "so3_long.jsonl")
    assert exit_code == 1 and counts(report)["invalid_json"] == 3
    assert [e["line"] for e in examples(report, "invalid_json")] == [347, 370, 371]
    assert all("Invalid \\escape" in e["detail"] for e in examples(report, "invalid_json"))
    # Every other line is a good prompt/completion record (the shape is detected).
    assert counts(report) == {"invalid_json": 3} and report["stats"]["samples"] == 429


def test_shared_empty_file(shared_data):
    exit_code, report = run(shared_data / "self-instruct" / "trec_fine_grained_ABBR.jsonl")
    assert exit_code == 1 and counts(report) == {"empty_file": 1, "no_records": 1}


def test_shared_self_instruct_endoftext(shared_data):
    _, report = run(shared_data / "self-instruct" / "ag_news_classify.jsonl")
    assert counts(report)["foreign_template_marker"] == 200
    assert {e["field"] for e in examples(report, "foreign_template_marker")} == {"completion"}


def test_shared_kto_leaked_markers(shared_data):
    """kto's answers leak another template's markers: `</s>` in one, `<|user|>` and an invented turn in another."""
    exit_code, report = run(shared_data / "LLaMA-Factory" / "kto_en_demo.json")  # read as KTO samples
    assert exit_code == 0 and counts(report) == {"control_character": 1, "foreign_template_marker": 2}
    # Read as SFT, its 150 `label: false` answers are not SFT data (undesirable_answer); the true ones are
    # counted (kto_label).
    exit_code, report = run(shared_data / "LLaMA-Factory" / "kto_en_demo.json", "--task", "sft")
    assert exit_code == 1 and counts(report) == {"control_character": 1, "foreign_template_marker": 2,
                                                 "undesirable_answer": 150, "kto_label": 150}
    assert [(e["line"], e["field"], e["detail"].split(" ")[0]) for e in examples(report, "foreign_template_marker")] == [
        (2497, "messages[1].content", "</s>"), (4759, "messages[7].content", "<|user|>")]
    exit_code, report = run(shared_data / "LLaMA-Factory" / "kto_en_demo.json", "--strict")
    assert exit_code == 1
