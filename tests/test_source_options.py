"""The shape, mapping and turn options of `sftconv convert`, through the CLI: what they change and how misuse fails."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import Conversation, Location, Message
from sftconv.template import Llama3Template

from .conftest import write_jsonl

LOGS = [
    {"dialog": [{"speaker": "customer", "text": "My order is late."}, {"speaker": "bot", "text": "Sorry! Let me check."},
                {"speaker": "customer", "text": "Thanks."}, {"speaker": "customer", "text": "Any news?"},
                {"speaker": "bot", "text": "It ships today."}]},
    {"dialog": [{"speaker": "customer", "text": "Hi"}, {"speaker": "bot", "text": ""},
                {"speaker": "bot", "text": "Hello!"}]},
]


def invoke(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def run(*args) -> tuple[dict, list[dict]]:
    """Convert; return the manifest and the written rows."""
    result = invoke(*args, "-q")
    assert result.exit_code == 0, result.output
    out = args[args.index("-o") + 1]
    rows = [r for s in sorted(out.glob("part-*.parquet")) for r in pq.read_table(s).to_pylist()]
    return json.loads((out / "manifest.json").read_text()), rows


def rendered(tokenizer, *turns: tuple[str, str]) -> list[int]:
    messages = tuple(Message(role, content) for role, content in turns)
    return Llama3Template(tokenizer).render(Conversation(messages, Location("x"))).input_ids


def test_a_custom_chat_log_needs_only_a_mapping(tmp_path, tokenizer):
    source = write_jsonl(tmp_path / "logs.jsonl", LOGS)
    mapping = ["--messages-field", "dialog", "--role-field", "speaker", "--content-field", "text",
               "--role-alias", "customer=user", "--role-alias", "bot=assistant"]
    manifest, rows = run(source, "-o", tmp_path / "a", *mapping, "--allow-empty")
    assert manifest["shapes"] == {str(source): "openai"}
    assert manifest["counts"]["rejected_by_reason"] == {"consecutive_same_role": 1, "empty_content": 1}
    assert manifest["options"]["mapping"] == {"messages": "dialog", "role": "speaker", "content": "text",
                                              "roles": {"customer": "user", "bot": "assistant"}}
    manifest, rows = run(source, "-o", tmp_path / "b", *mapping, "--merge-consecutive", "--drop-empty-turns",
                         "--system", "You are a support agent.")
    assert manifest["counts"]["written"] == 2
    assert rows[0]["input_ids"] == rendered(
        tokenizer, ("system", "You are a support agent."), ("user", "My order is late."),
        ("assistant", "Sorry! Let me check."), ("user", "Thanks.\n\nAny news?"), ("assistant", "It ships today."))
    assert rows[1]["input_ids"] == rendered(tokenizer, ("system", "You are a support agent."), ("user", "Hi"),
                                            ("assistant", "Hello!"))


def test_the_same_mapping_from_a_yaml_file(tmp_path):
    source = write_jsonl(tmp_path / "logs.jsonl", LOGS)
    config = tmp_path / "mapping.yaml"
    config.write_text("messages: dialog\nrole: speaker\ncontent: text\nroles:\n  customer: user\n  bot: assistant\n")
    manifest, _ = run(source, "-o", tmp_path / "out", "--mapping", config, "--merge-consecutive", "--drop-empty-turns")
    assert manifest["counts"]["written"] == 2


def test_alpaca_and_prompt_completion_columns(tmp_path, tokenizer):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "4", "id": 1}])
    _, rows = run(qa, "-o", tmp_path / "a", "--prompt-field", "question", "--completion-field", "answer")
    assert rows[0]["input_ids"] == rendered(tokenizer, ("user", "2+2?"), ("assistant", "4"))
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"task": "Add.", "data": "2, 2", "result": "4"}])
    _, rows = run(tasks, "-o", tmp_path / "b", "--instruction-field", "task", "--input-field", "data",
                  "--output-field", "result")
    assert rows[0]["input_ids"] == rendered(tokenizer, ("user", "Add.\n2, 2"), ("assistant", "4"))


def test_replace_system_and_a_forced_shape(tmp_path, tokenizer):
    source = write_jsonl(tmp_path / "in.jsonl", [{"conversations": [
        {"from": "system", "value": "Old."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}])
    manifest, rows = run(source, "-o", tmp_path / "a", "--system", "New.", "--replace-system", "--shape", "sharegpt")
    assert rows[0]["input_ids"] == rendered(tokenizer, ("system", "New."), ("user", "Hi"), ("assistant", "Yo"))
    assert manifest["options"]["shape"] == "sharegpt" and manifest["options"]["replace_system"] is True
    _, rows = run(source, "-o", tmp_path / "b", "--system", "New.")
    assert rows[0]["input_ids"] == rendered(tokenizer, ("system", "Old."), ("user", "Hi"), ("assistant", "Yo"))
    manifest, _ = run(source, "-o", tmp_path / "c", "--shape", "alpaca", "--allow-empty")
    assert manifest["counts"]["rejected_by_reason"] == {"missing_field": 1}


@pytest.mark.parametrize("args, message", [
    (["--role-alias", "bot"], "Invalid value for '--role-alias': 'bot': expected NAME=ROLE with ROLE one of"),
    (["--role-alias", "bot=robot"], "Invalid value for '--role-alias': 'bot=robot'"),
    (["--replace-system"], "Error: --replace-system needs --system TEXT"),
    (["--shape", "chatml"], "Invalid value for '--shape'"),
    (["--mapping", "bad.yaml"], "Invalid value for '--mapping': bad.yaml: top level: 'dialog' is not of type 'object'"),
    (["--mapping", "missing.yaml"], "Invalid value for '--mapping': File 'missing.yaml' does not exist"),
])
def test_misuse_is_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "in.jsonl", LOGS)
    (tmp_path / "bad.yaml").write_text("dialog\n")
    result = invoke("in.jsonl", "-o", "out", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_unreadable_input_is_exit_1_naming_it(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    result = invoke(broken, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {broken}: not a readable Parquet file")
