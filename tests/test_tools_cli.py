"""Tool records through the commands: convert with --template llama3.1 on any day, inspect, validate's tool checks."""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import Conversation, Location, Message, ToolCall
from sftconv.lengths import LengthPolicy, Overflow
from sftconv.schema import validator
from sftconv.template import Llama31Template

from .conftest import write_jsonl
from .validate_support import counts, examples, run

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def call(name: str = "get_weather", arguments="{\"city\": \"Paris\"}", **extra) -> dict:
    return {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": name, "arguments": arguments}}],
            **extra}


RECORDS = [
    {"messages": [{"role": "user", "content": "Weather in Paris?"}, call(),
                  {"role": "tool", "content": "20C"}, {"role": "assistant", "content": "20C."}], "tools": [WEATHER]},
    {"messages": [{"role": "user", "content": "Gold?"},  # the legacy function_call and function role
                  {"role": "assistant", "content": None, "function_call": {"name": "brave_search",
                                                                           "arguments": {"query": "gold"}}},
                  {"role": "function", "name": "brave_search", "content": "$2,000"},
                  {"role": "assistant", "content": "$2,000."}]},
]


def convert(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def outputs(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class FakeClock:
    """Sets the clock (time and datetime) to one moment, for everything that reads it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch

    def set(self, moment: datetime.datetime) -> None:
        stamp = moment.timestamp()
        real_gmtime = time.gmtime

        class FrozenDateTime(datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return moment.astimezone(tz) if tz else moment

            @classmethod
            def utcnow(cls):
                return moment

            @classmethod
            def today(cls):
                return moment

        class FrozenDate(datetime.date):
            @classmethod
            def today(cls):
                return moment.date()

        self.monkeypatch.setattr(datetime, "datetime", FrozenDateTime)
        self.monkeypatch.setattr(datetime, "date", FrozenDate)
        self.monkeypatch.setattr(time, "time", lambda: stamp)
        self.monkeypatch.setattr(time, "time_ns", lambda: int(stamp * 1e9))
        self.monkeypatch.setattr(time, "localtime", lambda seconds=None: real_gmtime(stamp if seconds is None else seconds))
        self.monkeypatch.setattr(time, "gmtime", lambda seconds=None: real_gmtime(stamp if seconds is None else seconds))


def test_same_input_any_day_same_bytes(tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    assert convert(source, "-o", tmp_path / "warm-up", "--template", "llama3.1", "-q").exit_code == 0
    clock = FakeClock(monkeypatch)  # set once every library is loaded: pandas' C code cannot load with it
    runs = []
    for number, moment in enumerate([datetime.datetime(2025, 2, 14, 9, 30), datetime.datetime(2031, 12, 31, 23, 59)]):
        clock.set(moment)
        assert datetime.datetime.now() == moment and time.strftime("%Y", time.localtime()) == str(moment.year)
        result = convert(source, "-o", tmp_path / f"run{number}", "--template", "llama3.1", "-q")
        assert result.exit_code == 0, result.output
        runs.append(outputs(tmp_path / f"run{number}"))
    assert runs[0] == runs[1] == outputs(tmp_path / "warm-up") and "part-00000-shard-00000.parquet" in runs[0]


def test_the_date_string_is_written_and_recorded(tmp_path, tokenizer):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    for name, date in (("default", None), ("other", "21 September 2024")):
        result = convert(source, "-o", tmp_path / name, "--template", "llama3.1", "-q",
                         *(["--date-string", date] if date else []))
        assert result.exit_code == 0, result.output
    for name, date in (("default", "26 Jul 2024"), ("other", "21 September 2024")):
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        assert not list(validator("manifest").iter_errors(manifest))
        assert {k: manifest["options"][k] for k in ("template", "date_string", "tools_in", "train_tool_calls")} == {
            "template": "llama3.1", "date_string": date, "tools_in": "user", "train_tool_calls": True}
        rows = pq.read_table(tmp_path / name / "part-00000-shard-00000.parquet").to_pylist()
        assert all(f"Today Date: {date}\n\n" in tokenizer.decode(row["input_ids"]) for row in rows)


def test_options_and_counts_through_convert(tmp_path, tokenizer):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    result = convert(source, "-o", tmp_path / "a", "--template", "llama3.1", "--tools-in", "system",
                     "--no-train-tool-calls", "-q")
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "a" / "part-00000-shard-00000.parquet").to_pylist()
    first = tokenizer.decode(rows[0]["input_ids"])
    assert first.index('"name": "get_weather"') < first.index("<|start_header_id|>user")  # in the system turn
    trained = [tokenizer.decode([t for t, m in zip(r["input_ids"], r["loss_mask"]) if m]) for r in rows]
    assert trained == ["20C.<|eot_id|>", "$2,000.<|eot_id|>"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert (manifest["options"]["tools_in"], manifest["options"]["train_tool_calls"]) == ("system", False)
    assert manifest["counts"]["written"] == 2


@pytest.mark.parametrize("flags", [["--date-string", "1 Jan 2025"], ["--tools-in", "system"], ["--no-train-tool-calls"]])
def test_llama31_options_need_the_llama31_template(tmp_path, flags):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    result = convert(source, "-o", tmp_path / "out", *flags)
    assert result.exit_code == 2
    assert f"Error: {flags[0]} only apply to --template llama3.1" in result.stderr


def test_llama3_manifest_is_unchanged_by_the_new_options(tmp_path):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    assert convert(source, "-o", tmp_path / "out", "-q", "--allow-empty").exit_code == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["template"] == "llama3" and "date_string" not in manifest["options"]
    assert manifest["counts"]["rejected_by_reason"] == {"tool_calls_unsupported": 2}


def test_inspect_shows_tool_turns(tmp_path):
    source = write_jsonl(tmp_path / "tools.jsonl", RECORDS)
    runner = CliRunner()
    raw = runner.invoke(main, ["inspect", str(source), "--template", "llama3.1", "--plain", "--index", "1"])
    assert raw.exit_code == 0, raw.output
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n[[<|python_tag|>brave_search.call(query="gold")'
            '<|eom_id|>]]<|start_header_id|>ipython<|end_header_id|>\n\n$2,000<|eot_id|>') in raw.stdout
    assert "Tools: brave_search\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024" in raw.stdout
    table = runner.invoke(main, ["inspect", str(source), "--template", "llama3.1", "--index", "1", "--tokens"])
    assert table.exit_code == 0
    assert re.search(r"^ *\d+ +128010 +128010 +<\|python_tag\|>$", table.stdout, re.M)
    assert re.search(r"^ *\d+ +128008 +128008 +<\|eom_id\|>$", table.stdout, re.M)


def test_the_tool_example_converts_as_the_readme_shows(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    result = convert("examples/tool_calls.jsonl", "-o", tmp_path / "out", "--template", "llama3.1")
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert (counts["read"], counts["written"], counts["rejected_by_reason"]) == (5, 4, {"invalid_tool_arguments": 1})
    assert result.stdout.replace(str(tmp_path / "out"), "out/") in (root / "README.md").read_text()


def test_truncation_may_end_after_a_trained_tool_call(tokenizer):
    chat = (Message("user", "Weather?"), Message("assistant", "", None, (ToolCall("brave_search", {"query": "w"}),)),
            Message("tool", "sunny " * 50), Message("assistant", "Sunny."))
    sample = Llama31Template(tokenizer).render(Conversation(chat, Location("x")))
    end = sample.input_ids.index(tokenizer.eom_id) + 1
    kept = LengthPolicy(end + 10, Overflow.TRUNCATE, eot_id=tokenizer.eot_id, eom_id=tokenizer.eom_id).fit(sample)
    assert kept.input_ids == sample.input_ids[:end] and kept.loss_mask[-1] == 1
    assert LengthPolicy(end + 10, Overflow.TRUNCATE, eot_id=tokenizer.eot_id).fit(sample) is None  # <|eot_id|> only


def test_convert_truncates_after_a_tool_call(tmp_path):
    source = write_jsonl(tmp_path / "long.jsonl", [{"messages": [
        {"role": "user", "content": "Weather?"}, call("brave_search", '{"query": "weather"}'),
        {"role": "tool", "content": "sunny " * 500},
        {"role": "assistant", "content": "Sunny."}], "tools": [WEATHER]}])
    result = convert(source, "-o", tmp_path / "out", "--template", "llama3.1", "--max-seq-len", "300",
                     "--overflow", "truncate", "-q")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 1 and manifest["lengths"]["truncated"] == 1
    [row] = pq.read_table(tmp_path / "out" / "part-00000-shard-00000.parquet").to_pylist()
    assert row["input_ids"][-1] == 128008 and row["loss_mask"][-1] == 1


# validate: each tool check on a record that fails it, and its passing twin.
TOOL_CASES = {
    "tool_call_without_result": (
        [{"role": "user", "content": "q"}, call(), {"role": "user", "content": "well?"}, {"role": "assistant", "content": "a"}],
        "turn 1 makes 1 call(s) but 0 result(s) follow it before turn 2",
        [{"role": "user", "content": "q"}, call()]),  # ending on a call teaches the call
    "tool_result_without_call": (
        [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}],
        "turn 1 is a tool result, but no call is waiting for it",
        [{"role": "user", "content": "q"}, call(), {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}]),
    "undefined_tool": (
        [{"role": "user", "content": "q"}, call("get_time", "{}")],
        "calls get_time, which the record's tools do not define (it defines get_weather)",
        [{"role": "user", "content": "q"}, call("brave_search", '{"query": "time"}')]),  # built in: named on Tools:
    "invalid_tool_arguments": (
        [{"role": "user", "content": "q"}, call(arguments="city=Paris")],
        "turn 1: the arguments of the get_weather call are not a JSON object: 'city=Paris'",
        [{"role": "user", "content": "q"}, call(arguments="")]),
}


@pytest.mark.parametrize("template, unsupported", [("llama3.1", 0), ("llama3", 1)])
def test_validate_tool_checks(tmp_path, template, unsupported):
    bad = [{"messages": messages, "tools": [WEATHER]} for messages, _, _ in TOOL_CASES.values()]
    exit_code, report = run(write_jsonl(tmp_path / "bad.jsonl", bad), "--template", template)
    expected = {code: 1 for code in TOOL_CASES}
    if unsupported:  # llama3 rejects every record with a tool turn, and validate still names each problem
        expected["tool_calls_unsupported"] = len(bad)
    assert exit_code == 1 and counts(report) == expected
    for line, (code, (_, detail, _)) in enumerate(TOOL_CASES.items(), 1):
        [example] = examples(report, code)
        assert (example["line"], example["detail"]) == (line, detail)
        assert example["field"] == ("tools" if code == "undefined_tool" else None)
    severities = {issue["code"]: issue["severity"] for issue in report["issues"]}
    assert severities["invalid_tool_arguments"] == "error"
    assert {severities[code] for code in TOOL_CASES if code != "invalid_tool_arguments"} == {"warning"}
    good = [{"messages": messages, "tools": [WEATHER]} for _, _, messages in TOOL_CASES.values()]
    exit_code, report = run(write_jsonl(tmp_path / "good.jsonl", good), "--template", "llama3.1")
    assert (exit_code, report["issues"]) == (0, [])
