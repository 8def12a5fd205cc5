"""Every file of the team's real sample data (../shared/data, see its README) through `sftconv convert`.

Each case gives only the options a user would need, and the counts expected from reading the file
and the rules: records read, samples written, rejected by reason code, and the shape auto-detection
chose. Where a number is surprising, the comment says why.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.schema import validator

CASES = [
    # file, extra options, shape, read, written, rejected by reason
    ("FastChat/dummy_conversation.json", [], "sharegpt", 500, 500, {}),
    ("GPTeacher/codegen-instruct.json", [], "alpaca", 4535, 4535, {}),  # `response` stands for `output`
    ("LLaMA-Factory/alpaca_en_demo.json", [], "alpaca", 999, 999, {}),  # the 14 duplicates are all written
    ("LLaMA-Factory/identity.json", [], "alpaca", 91, 91, {}),  # {{name}} placeholders are ordinary text
    # 153 of the 300 records hold function_call/observation turns, which Llama 3 cannot render; the other
    # 147 are plain chats (their `tools` are ignored). Llama 3.1 renders all 300.
    ("LLaMA-Factory/glaive_toolcall_en_demo.json", [], "sharegpt", 300, 147, {"tool_calls_unsupported": 153}),
    ("LLaMA-Factory/glaive_toolcall_en_demo.json", ["--template", "llama3.1"], "sharegpt", 300, 300, {}),
    # KTO data: one row per labelled answer (see test_preference.py); read as SFT, the 150 answers labelled
    # false are rejected rather than trained as good ones.
    ("LLaMA-Factory/kto_en_demo.json", [], "kto", 300, 300, {}),
    ("LLaMA-Factory/kto_en_demo.json", ["--task", "sft"], "openai", 300, 150, {"undesirable_answer": 150}),
    ("LLaMA-Factory/v1_sft_demo.jsonl", [], "openai", 500, 500, {}),
    ("axolotl/alpaca.json", [], "alpaca", 2, 2, {}),
    ("axolotl/conversation.json", [], "sharegpt", 1, 1, {}),  # one top-level object is one record
    ("axolotl/conversation.missingturns.json", [], "sharegpt", 1, 0, {"empty_content": 1}),
    ("dolly/so3_long.jsonl", [], "prompt-completion", 432, 429, {"invalid_json": 3}),
    # One record with parallel calls, null and empty contents beside calls, and code interpreter calls
    # (named `python`, arguments that are code); Llama 3 has no tool turns, Llama 3.1 renders it.
    ("functionary/test_case.json", [], "openai", 1, 0, {"tool_calls_unsupported": 1}),
    ("functionary/test_case.json", ["--template", "llama3.1"], "openai", 1, 1, {}),
    # `chosen` is the transcript to learn from. 8 transcripts have two Human turns in a row; 4 end in an
    # empty Assistant turn.
    ("hh-rlhf/harmless-base/test.jsonl.gz", ["--transcript-field", "chosen", "--task", "sft"], "transcript", 2312,
     2300, {"consecutive_same_role": 8, "empty_content": 4}),
    # As preference pairs (the default for these records): 9 pairs have two Human turns in a row on a side;
    # 4 end on an empty Assistant turn.
    ("hh-rlhf/harmless-base/test.jsonl.gz", [], "transcript-pair", 2312, 2299,
     {"consecutive_same_role": 9, "empty_answer": 4}),
    # input/completion; `input` is "" in 7 rows, an empty user turn.
    ("mistral_llm_sft_guardrail/train.parquet", [], "prompt-completion", 3193, 3186, {"empty_content": 7}),
    ("ms-swift/alpaca.csv", [], "alpaca", 3, 3, {}),
    ("ms-swift/alpaca.jsonl", [], "alpaca", 3, 3, {}),
    ("ms-swift/chatml.jsonl", [], "openai", 3, 3, {}),
    ("ms-swift/conversations.jsonl", [], "sharegpt", 3, 3, {}),
    ("ms-swift/sharegpt.jsonl", [], "sharegpt", 3, 3, {}),  # the {human, assistant} pair-list variant
    ("ms-swift/swift_multi.jsonl", [], "prompt-completion", 3, 3, {}),  # query/response/history
    # Record 4 is a system prompt and an answer with no user turn.
    ("openai-cookbook/toy_chat_fine_tuning.jsonl", [], "openai", 5, 4, {"assistant_before_user": 1}),
    ("self-instruct/ag_news_classify.jsonl", [], "prompt-completion", 200, 200, {}),
    ("self-instruct/trec_fine_grained_ABBR.jsonl", [], None, 0, 0, {}),  # 0 bytes
    ("torchtune/alpaca_tiny.json", [], "alpaca", 100, 100, {}),  # the pre-rendered `text` is ignored
    ("torchtune/chat_tiny.json", [], "sharegpt", 1, 1, {}),
    ("torchtune/instruct_tiny.json", [], "alpaca", 2, 2, {}),
    ("xtuner/mllm_sft_text_example_data.jsonl", [], "openai", 200, 200, {}),
    ("xtuner/openai_sft.jsonl", [], "openai", 128, 128, {}),  # bare arrays of messages
    # Lines 7-12 call tools (arguments as dicts); lines 13-17 send images or video, which no Llama 3 text
    # template renders; lines 1-6 are text, some with a reasoning_content trace (see test_reasoning_convert.py).
    ("xtuner/qwen35_tokenize_data.jsonl", [], "openai", 17, 6, {"tool_calls_unsupported": 6, "non_text_content": 5}),
    ("xtuner/qwen35_tokenize_data.jsonl", ["--template", "llama3.1"], "openai", 17, 12, {"non_text_content": 5}),
]


def convert(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


def test_every_data_file_has_a_case(shared_data):
    files = {p.relative_to(shared_data).as_posix() for p in shared_data.rglob("*") if p.is_file()}
    assert files - {"README.md", "LLaMA-Factory/dataset_info.json"} == {case[0] for case in CASES}


@pytest.mark.parametrize("name, options, shape, read, written, rejected", CASES,
                         ids=[" ".join([c[0], *c[1]]) for c in CASES])
def test_counts(tmp_path, shared_data, name, options, shape, read, written, rejected):
    path = shared_data / name
    result = convert(path, "-o", tmp_path, *options)
    assert result.exit_code == (0 if written else 1), result.output  # a run that writes nothing fails, saying why
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    counts = manifest["counts"]
    assert (counts["read"], counts["written"], counts["rejected_by_reason"]) == (read, written, rejected)
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"]
    assert manifest["shapes"] == {str(path): shape}
    assert re.search(rf"^shape +{shape or '[(]no records[)]'}  {re.escape(str(path))}$", result.stdout, re.M)
    assert not list(validator("manifest").iter_errors(manifest))
    rejects = (tmp_path / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == counts["rejected"]


def test_broken_dolly_lines_are_rejected_with_their_line_numbers(tmp_path, shared_data):
    assert convert(shared_data / "dolly" / "so3_long.jsonl", "-o", tmp_path, "-q").exit_code == 0
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(347, "invalid_json"), (370, "invalid_json"),
                                                           (371, "invalid_json")]
    assert all("Invalid \\escape" in r["detail"] for r in rejects)


def test_empty_file_is_an_empty_dataset_with_a_warning(tmp_path, shared_data):
    """An empty result fails the run (exit 1, saying why) unless --allow-empty says it is wanted."""
    path = shared_data / "self-instruct" / "trec_fine_grained_ABBR.jsonl"
    warning = f"warning: {path}: no records (an empty input); it adds nothing to the dataset\n"
    result = convert(path, "-o", tmp_path / "a", "-q")
    assert result.exit_code == 1
    assert result.stderr == warning + ("Error: no samples written: the inputs hold no records; pass --allow-empty if "
                                       "an empty result is what you want\n")
    result = convert(path, "-o", tmp_path / "b", "-q", "--allow-empty")
    assert result.exit_code == 0 and result.stderr == warning
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["shards"] == []


def test_no_user_turn_record_of_the_cookbook(tmp_path, shared_data):
    assert convert(shared_data / "openai-cookbook" / "toy_chat_fine_tuning.jsonl", "-o", tmp_path, "-q").exit_code == 0
    [reject] = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert (reject["line"], reject["reason"]) == (4, "assistant_before_user")
    assert [m["role"] for m in reject["record"]["messages"]] == ["system", "assistant"]


def test_dataset_info_is_not_data(tmp_path, shared_data):
    path = shared_data / "LLaMA-Factory" / "dataset_info.json"
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path)])
    assert result.exit_code == 2  # bad usage: the input is not chat data
    assert f"\nError: {path}: no record shape fits (fields seen: identity, alpaca_en_demo, " in result.stderr
    assert "Choose one with --shape, and map your field names" in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_tool_call_records_are_rejected_where_they_hold_tool_turns(tmp_path, shared_data):
    """The reject says which turn is the tool turn; the records without one are written."""
    assert convert(shared_data / "xtuner" / "qwen35_tokenize_data.jsonl", "-o", tmp_path, "-q").exit_code == 0
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        *((line, "tool_calls_unsupported") for line in range(7, 13)),
        *((line, "non_text_content") for line in range(13, 18))]
    assert rejects[0]["detail"] == "turn 2 calls a tool; Llama 3 has no tool turns: pass --template llama3.1"
    assert rejects[-1]["detail"] == "messages[0].content[0] is a 'video' part; only text is rendered"


def test_many_inputs_in_one_run_each_with_its_shape(tmp_path, shared_data):
    result = convert(shared_data / "ms-swift", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {name.rsplit("/", 1)[1]: shape for name, shape in manifest["shapes"].items()} == {
        "alpaca.csv": "alpaca", "alpaca.jsonl": "alpaca", "chatml.jsonl": "openai",
        "conversations.jsonl": "sharegpt", "sharegpt.jsonl": "sharegpt", "swift_multi.jsonl": "prompt-completion"}
    assert manifest["counts"]["read"] == manifest["counts"]["written"] == 18
    assert re.search(rf"^shape +sharegpt  {re.escape(str(shared_data / 'ms-swift' / 'sharegpt.jsonl'))}$",
                     result.stdout, re.M)
