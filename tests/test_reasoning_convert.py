"""Reasoning traces end to end through `sftconv convert`: real data, tool-use reasoning, the policy flags and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import Conversation, Location, Message
from sftconv.inspect.reasoning import trace_flags
from sftconv.inspect.samples import open_samples
from sftconv.inspect.text import render_text
from sftconv.pipeline import SourceOptions
from sftconv.template import Llama3Template

from .conftest import write_jsonl

QWEN35 = "xtuner/qwen35_tokenize_data.jsonl"
V1_DEMO = "LLaMA-Factory/v1_sft_demo.jsonl"
IPYTHON_HEADER = [128006, 23799, 4690, 128007, 271]  # <|start_header_id|>ipython<|end_header_id|>\n\n


def convert(*args) -> dict:
    """Run convert; the manifest of its output folder (the one after -o)."""
    args = [str(a) for a in args]
    result = CliRunner().invoke(main, ["convert", *args, "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads((Path(args[args.index("-o") + 1]) / "manifest.json").read_text())


def rows(out: Path) -> list[dict]:
    return [row for shard in sorted(out.glob("part-*.parquet")) for row in pq.read_table(shard).to_pylist()]


def traces_of(path: Path) -> list[list[str]]:
    """Each record's assistant traces, in order (records the data itself holds, read apart from sftconv)."""
    with open(path, encoding="utf-8") as handle:
        return [[m["reasoning_content"] for m in json.loads(line)["messages"] if m.get("reasoning_content") is not None]
                for line in handle]


def test_xtuner_qwen35_traces_are_all_in_the_decoded_ids(tmp_path, tokenizer, shared_data):
    path = shared_data / QWEN35
    manifest = convert(path, "-o", tmp_path, "--template", "llama3.1")
    counts = manifest["counts"]
    # 17 records: 12 convert; 5 hold images or video (non_text_content), none of them lost to a trace.
    assert (counts["read"], counts["written"], counts["rejected_by_reason"]) == (17, 12, {"non_text_content": 5})
    assert counts["reasoning"]["turns"] == 12 and counts["reasoning"]["dropped"] == 0
    assert counts["reasoning"]["trained_tokens"] == counts["reasoning"]["tokens"] > 0
    texts = [tokenizer.decode(row["input_ids"]) for row in rows(tmp_path)]
    written = traces_of(path)[:12]
    assert sum(map(len, written)) == 12
    for text, traces in zip(texts, written):
        assert text.count("<think>") == len(traces)
        for trace in traces:
            assert f"<think>\n{trace.strip()}\n</think>\n\n" in text
    assert texts[0] != texts[1]  # record 1 has no trace, record 2 the same turns with one
    assert texts[1] == texts[2]  # record 3: the same trace and answer with newlines around, trimmed as content is
    in_workers = convert(path, "-o", tmp_path / "workers", "--template", "llama3.1", "--workers", "2")
    assert in_workers == manifest  # the counts come back from the worker processes whole


def test_xtuner_qwen35_policies(tmp_path, tokenizer, shared_data):
    path = shared_data / QWEN35
    base = ["--template", "llama3.1"]
    none = convert(path, "-o", tmp_path / "none", *base, "--keep-reasoning", "none")["counts"]["reasoning"]
    assert (none["turns"], none["dropped"], none["tokens"]) == (0, 12, 0)
    assert not any("<think>" in tokenizer.decode(r["input_ids"]) for r in rows(tmp_path / "none"))
    last = convert(path, "-o", tmp_path / "last", *base, "--keep-reasoning", "last")["counts"]["reasoning"]
    assert last["turns"] + last["dropped"] == 12 and last["dropped"] == 6
    untrained = convert(path, "-o", tmp_path / "off", *base, "--no-train-reasoning")["counts"]
    assert untrained["reasoning"]["trained_tokens"] == 0 and untrained["reasoning"]["tokens"] > 0
    trained = convert(path, "-o", tmp_path / "on", *base)["counts"]
    assert trained["trained_tokens"] - untrained["trained_tokens"] == trained["reasoning"]["tokens"]
    filled = convert(path, "-o", tmp_path / "fill", *base, "--empty-reasoning")["counts"]["reasoning"]
    assert filled["turns"] - filled["filled"] == 12 and filled["filled"] > 0


def test_v1_demo_without_traces_is_unchanged_by_any_reasoning_policy(tmp_path, shared_data):
    path = shared_data / V1_DEMO
    default = convert(path, "-o", tmp_path / "a")
    dropped = convert(path, "-o", tmp_path / "b", "--keep-reasoning", "none", "--no-train-reasoning")
    assert default["counts"]["reasoning"] == {"turns": 0, "filled": 0, "dropped": 0, "tokens": 0, "trained_tokens": 0}
    assert default["counts"]["written"] == 500
    assert [s["files"][0]["sha256"] for s in default["shards"]] == [s["files"][0]["sha256"] for s in dropped["shards"]]


# A tool-use reasoning set in LLaMA-Factory v1's form: content parts of type reasoning, tool_call and text.
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}


def tool_reasoning_records() -> list[dict]:
    def text(value):
        return [{"type": "text", "value": value}]

    call = json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})
    return [
        {"messages": [
            {"role": "user", "content": text("Weather in Paris?"), "loss_weight": 0.0},
            {"role": "assistant", "content": [{"type": "reasoning", "value": "The user wants Paris weather.\nCall the tool."},
                                              {"type": "tool_call", "value": call}], "loss_weight": 1.0},
            {"role": "tool", "content": text('{"temp_c": 21, "note": "<think>not a trace</think>"}')},
            {"role": "assistant", "content": [{"type": "text", "value": "It is 21°C in Paris."},
                                              {"type": "reasoning", "value": "21 degrees; answer briefly."}],
             "loss_weight": 1.0}],
         "tools": json.dumps([WEATHER_TOOL])},
        {"messages": [
            {"role": "user", "content": "And Rome?"},
            {"role": "assistant", "content": "<think>\nSame tool, other city.\n</think>\n\n",
             "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
            {"role": "tool", "content": "24"},
            {"role": "assistant", "content": "24°C.", "reasoning": "Rome is warmer."}],
         "tools": [WEATHER_TOOL]},
    ]


def test_tool_use_reasoning_converts_under_llama31_with_results_never_trained(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "tool_reasoning.jsonl", tool_reasoning_records())
    manifest = convert(path, "-o", tmp_path / "out", "--template", "llama3.1")
    counts = manifest["counts"]
    assert (counts["written"], counts["rejected"]) == (2, 0)
    assert counts["reasoning"]["turns"] == 4
    first, second = rows(tmp_path / "out")
    text = tokenizer.decode(first["input_ids"])
    assert ('<think>\nThe user wants Paris weather.\nCall the tool.\n</think>\n\n'
            '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>') in text
    assert "<think>\n21 degrees; answer briefly.\n</think>\n\nIt is 21°C in Paris.<|eot_id|>" in text
    assert '<think>\nSame tool, other city.\n</think>\n\n{"name": "get_weather", "parameters": {"city": "Rome"}}' \
        in tokenizer.decode(second["input_ids"])
    for row in (first, second):
        ids, mask = row["input_ids"], row["loss_mask"]
        starts = [i for i in range(len(ids)) if ids[i:i + len(IPYTHON_HEADER)] == IPYTHON_HEADER]
        assert starts
        for start in starts:
            end = ids.index(128009, start)  # the result's <|eot_id|>
            assert not any(mask[start:end + 1])
        trained = tokenizer.decode([t for t, m in zip(ids, mask) if m])
        assert trained.count("<think>") == 2


def test_reasoning_field_flag_and_mapping_file_for_shapes_with_one_answer(tmp_path, tokenizer):
    records = [{"instruction": "2+2?", "output": "4", "rationale": "Add two and two."}]
    path = write_jsonl(tmp_path / "alpaca.jsonl", records)
    flagged = convert(path, "-o", tmp_path / "a", "--reasoning-field", "rationale")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("reasoning: rationale\nkeep_reasoning: all\ntrain_reasoning: false\n")
    mapped = convert(path, "-o", tmp_path / "b", "--mapping", mapping)
    assert flagged["counts"]["reasoning"]["turns"] == mapped["counts"]["reasoning"]["turns"] == 1
    assert mapped["options"]["reasoning"] == {"keep": "all", "train": False, "empty": False}
    assert mapped["options"]["mapping"] == {"reasoning": "rationale"}
    (a,), (b,) = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert a["input_ids"] == b["input_ids"]
    assert tokenizer.decode(a["input_ids"]).endswith("<think>\nAdd two and two.\n</think>\n\n4<|eot_id|>")
    assert sum(a["loss_mask"]) - sum(b["loss_mask"]) == mapped["counts"]["reasoning"]["tokens"]
    flag_wins = convert(path, "-o", tmp_path / "c", "--mapping", mapping, "--train-reasoning")
    assert flag_wins["options"]["reasoning"]["train"] is True


def test_a_record_level_switch_is_not_read_as_a_trace(tmp_path, tokenizer):
    records = [{"prompt": "2+2?", "completion": "4", "reasoning": "on"},
               {"prompt": "3+3?", "completion": "6", "reasoning_content": "Add."}]
    counts = convert(write_jsonl(tmp_path / "pc.jsonl", records), "-o", tmp_path / "out")["counts"]
    assert counts["reasoning"]["turns"] == 1
    first, second = (tokenizer.decode(row["input_ids"]) for row in rows(tmp_path / "out"))
    assert "<think>" not in first and second.endswith("<think>\nAdd.\n</think>\n\n6<|eot_id|>")


def test_sharegpt_turn_field(tmp_path, tokenizer):
    records = [{"conversations": [{"from": "human", "value": "Hi"},
                                  {"from": "gpt", "value": "Hello!", "thought": "Greet back."}]}]
    path = write_jsonl(tmp_path / "sharegpt.jsonl", records)
    convert(path, "-o", tmp_path / "out", "--reasoning-field", "thought")
    (row,) = rows(tmp_path / "out")
    assert tokenizer.decode(row["input_ids"]).endswith("<think>\nGreet back.\n</think>\n\nHello!<|eot_id|>")


def test_malformed_traces_are_rejected_with_their_reason(tmp_path):
    records = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>open"}]},
               {"messages": [{"role": "user", "content": "q", "reasoning": "x"}, {"role": "assistant", "content": "a"}]},
               {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning": "t"}]}]
    counts = convert(write_jsonl(tmp_path / "bad.jsonl", records), "-o", tmp_path / "out")["counts"]
    assert counts["rejected_by_reason"] == {"malformed_reasoning": 1, "misplaced_reasoning": 1}
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"]


def validate(*args) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["validate", *map(str, args), "--format", "json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_validate_reports_trace_findings_and_statistics(tmp_path, shared_data):
    code, report = validate(shared_data / QWEN35, "--template", "llama3.1", "--keep-reasoning", "last")
    issues = {issue["code"]: issue for issue in report["issues"]}
    assert issues["reasoning_dropped"]["severity"] == "warning" and issues["reasoning_dropped"]["count"] == 4
    assert report["stats"]["reasoning"]["dropped"] == 6 and report["stats"]["reasoning"]["turns"] == 6
    # record 3 is record 2 with newlines around its trace and answer: the one duplicate; 1 and 2 differ
    assert issues["duplicate"]["count"] == 1
    records = [{"messages": [{"role": "user", "content": "q <think>pasted</think>"}, {"role": "assistant", "content": "a"}]},
               {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a</think>"}]},
               {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}]
    code, report = validate(write_jsonl(tmp_path / "tags.jsonl", records))
    issues = {issue["code"]: issue for issue in report["issues"]}
    assert issues["think_tag_outside_answer"]["severity"] == "warning"
    assert issues["malformed_reasoning"]["severity"] == "error" and code == 1
    assert "reasoning" not in report["stats"]  # no trace rendered, none dropped


def test_inspect_shows_the_trace_apart_from_the_answer(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "r.jsonl", [{"instruction": "2+2?", "output": "<think>weigh it</think>4"}])

    def shown(*flags):
        result = CliRunner().invoke(main, ["inspect", str(path), *flags], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "{{<think>\nweigh it\n</think>\n\n}}[[4<|eot_id|>]]" in shown("--plain")
    assert "((<think>\nweigh it\n</think>\n\n))[[4<|eot_id|>]]" in shown("--plain", "--no-train-reasoning")
    (sample,) = open_samples([str(path)], SourceOptions()).at([0])
    assert "\x1b[36m<think>\nweigh it\n</think>\n\n\x1b[0m\x1b[32m4<|eot_id|>" in render_text(
        sample, tokenizer, color=True)
    tokens = CliRunner().invoke(main, ["inspect", str(path), "--tokens"]).output.splitlines()
    traced = [line for line in tokens if line.endswith("(trace)")]
    assert traced and '"<th"' in traced[0] and '">\\n\\n"' in traced[-1]
    assert not any(line.endswith("(trace)") for line in tokens if '"4"' in line)
    page = tmp_path / "page.html"
    CliRunner().invoke(main, ["inspect", str(path), "--html", str(page)], catch_exceptions=False)
    html = page.read_text()
    assert html.count('class="t trained trace"') == len(traced) and "is a reasoning block" in html


def test_trace_spans_found_from_tokens_match_the_template(tokenizer):
    sample = Llama3Template(tokenizer).render(Conversation((
        Message("user", "<think>\nnot a trace\n</think>\n\nq"), Message("assistant", "a", reasoning="t\n\n"),
        Message("user", "q2"), Message("assistant", "b")), Location("t")))
    flags = trace_flags(sample.input_ids, tokenizer)
    assert tokenizer.decode([t for t, f in zip(sample.input_ids, flags) if f]) == "<think>\nt\n</think>\n\n"
