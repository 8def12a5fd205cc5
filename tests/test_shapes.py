"""Shapes: each record shape becomes messages, each kind of bad record gets its reason code, and auto-detection
picks the shape whose schema the records fit."""

from __future__ import annotations

import pytest

from sftconv.conversation import Message, RecordError
from sftconv.shapes import (
    AlpacaShape,
    FieldMapping,
    MappingError,
    OpenAIShape,
    PromptCompletionShape,
    ShapeNotFound,
    ShareGPTShape,
    TranscriptShape,
    detect_shape,
)

S, U, A = "system", "user", "assistant"


def reason_of(shape, record) -> tuple[str, str]:
    with pytest.raises(RecordError) as error:
        shape(record)
    return error.value.reason, error.value.detail


def test_openai_messages_and_train_flags():
    record = {"messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "hi", "name": "ignored"},
        {"role": "assistant", "content": "a", "weight": 0},
        {"role": "assistant", "content": "b", "weight": 1},
        {"role": "assistant", "content": "c", "train": False},
        {"role": "assistant", "content": "d", "loss_weight": 1.0},
        {"role": "assistant", "content": "e", "loss": False, "weight": None},
    ]}
    assert OpenAIShape()(record) == (
        Message(S, ""), Message(U, "hi"), Message(A, "a", False), Message(A, "b", True),
        Message(A, "c", False), Message(A, "d", True), Message(A, "e", False),
    )


def test_openai_text_parts_bare_lists_aliases_and_top_level_system():
    parts = {"messages": [{"role": "Human", "content": [{"type": "text", "value": "one"}, {"type": "text", "text": "two"}]},
                          {"role": "gpt", "content": [{"type": "text", "text": "ok"}]}], "system": "Be brief."}
    assert OpenAIShape()(parts) == (Message(S, "Be brief."), Message(U, "one\ntwo"), Message(A, "ok"))
    assert OpenAIShape()([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == (
        Message(U, "q"), Message(A, "a"))
    assert OpenAIShape({"Bot": "assistant"})({"messages": [{"role": "bot", "content": "x"}]}) == (Message(A, "x"),)


@pytest.mark.parametrize("record, reason, detail", [
    ("text", "not_an_object", "found str"),
    ({"conversations": []}, "missing_messages", "fields: conversations"),
    ({"messages": "hi"}, "messages_not_list", "found str"),
    ({"messages": []}, "messages_not_list", "found an empty list"),
    ({"messages": ["hi"]}, "message_not_object", "messages[0] is str"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "unknown_role", "messages[0].role is 'robot'"),
    ({"messages": [{"role": 1, "content": "x"}]}, "unknown_role", "messages[0].role is 1"),
    ({"messages": [{"role": "user", "content": None}]}, "content_not_string", "is null"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "non_text_content", "messages[0].content[0] is a 'image_url' part"),
    ({"messages": [{"role": "assistant", "content": "x", "weight": 0.5}]}, "bad_train_flag", "weight must be 0 or 1"),
    ({"messages": [{"role": "assistant", "content": "x", "weight": True}]}, "bad_train_flag", "weight must be 0 or 1"),
    ({"messages": [{"role": "assistant", "content": "x", "train": "no"}]}, "bad_train_flag", "train must be"),
])
def test_openai_bad_records(record, reason, detail):
    got_reason, got_detail = reason_of(OpenAIShape(), record)
    assert got_reason == reason and detail in got_detail


def test_sharegpt_turns_pairs_and_system():
    record = {"system": "sys", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "weight": 0},
                                                 {"from": "user", "value": "q2"}, {"from": "model", "value": "a2"}]}
    assert ShareGPTShape()(record) == (Message(S, "sys"), Message(U, "q"), Message(A, "a", False),
                                       Message(U, "q2"), Message(A, "a2"))
    pairs = {"conversation": [{"human": "q", "assistant": "a"}, {"assistant": "b", "human": "p"}]}
    assert ShareGPTShape()(pairs) == (Message(U, "q"), Message(A, "a"), Message(U, "p"), Message(A, "b"))
    assert ShareGPTShape()({"conversations": [{"from": "system", "value": "s"}, {"from": "bot", "value": "x"}]}) == (
        Message(S, "s"), Message(A, "x"))


@pytest.mark.parametrize("record, reason, detail", [
    ({"messages": [{"from": "human", "value": "q"}]}, "missing_messages", "no 'conversations' field (fields: messages)"),
    ({"conversations": [{"from": "narrator", "value": "q"}]}, "unknown_role", "conversations[0].from is 'narrator'"),
    ({"conversations": [{"speaker": "human", "text": "q"}]}, "unknown_role", "(fields: speaker, text)"),
    ({"conversations": [{"from": "human", "value": 3}]}, "content_not_string", "conversations[0].value is int"),
])
def test_sharegpt_bad_records(record, reason, detail):
    got_reason, got_detail = reason_of(ShareGPTShape(), record)
    assert got_reason == reason and detail in got_detail


def test_alpaca_joins_instruction_and_input_with_a_newline():
    shape = AlpacaShape()
    assert shape({"instruction": "Translate.", "input": "Bonjour", "output": "Hello"}) == (
        Message(U, "Translate.\nBonjour"), Message(A, "Hello"))
    assert shape({"instruction": "Say hi.", "input": " ", "output": "Hi"}) == (Message(U, "Say hi."), Message(A, "Hi"))
    assert shape({"instruction": "Q", "input": None, "response": "R", "text": "pre-rendered"}) == (
        Message(U, "Q"), Message(A, "R"))
    full = {"system": "sys", "history": [["h1", "a1"], ["h2", "a2"]], "instruction": "Q", "output": "R"}
    assert shape(full) == (Message(S, "sys"), Message(U, "h1"), Message(A, "a1"), Message(U, "h2"), Message(A, "a2"),
                           Message(U, "Q"), Message(A, "R"))
    assert shape({"system": "", "instruction": "Q", "output": "R"}) == (Message(U, "Q"), Message(A, "R"))


@pytest.mark.parametrize("record, reason, detail", [
    ({"instruction": "Q"}, "missing_field", "no 'output' or 'response' field (fields: instruction)"),
    ({"output": "R"}, "missing_field", "no 'instruction' field"),
    ({"instruction": "Q", "output": 3.3}, "content_not_string", "'output' is float"),
    ({"instruction": "Q", "output": "R", "history": [["only one"]]}, "bad_history", "history[0]"),
    ({"instruction": "Q", "output": "R", "history": "h"}, "bad_history", "'history' is str"),
])
def test_alpaca_bad_records(record, reason, detail):
    got_reason, got_detail = reason_of(AlpacaShape(), record)
    assert got_reason == reason and detail in got_detail


@pytest.mark.parametrize("record", [
    {"prompt": "P", "completion": "C"},
    {"query": "P", "response": "C", "history": []},
    {"input": "P", "completion": "C", "context": "ignored"},
])
def test_prompt_completion_pairs(record):
    assert PromptCompletionShape()(record) == (Message(U, "P"), Message(A, "C"))


def test_prompt_completion_system_history_and_missing_pair():
    assert PromptCompletionShape()({"system": "s", "query": "q", "response": "r", "history": [["a", "b"]]}) == (
        Message(S, "s"), Message(U, "a"), Message(A, "b"), Message(U, "q"), Message(A, "r"))
    reason, detail = reason_of(PromptCompletionShape(), {"prompt": "P", "response": "R"})
    assert reason == "missing_field" and "no prompt/completion, query/response or input/completion pair" in detail


def test_transcript_turns():
    text = "\n\nHuman: Hi there\n\nAssistant: Hello! Human: is a word here.\n\nHuman: Bye\n\nAssistant:"
    assert TranscriptShape()({"transcript": text}) == (
        Message(U, " Hi there"), Message(A, " Hello! Human: is a word here."), Message(U, " Bye"), Message(A, ""))
    assert TranscriptShape()({"transcript": "Human: a\n\nAssistant: b"}) == (Message(U, " a"), Message(A, " b"))
    assert reason_of(TranscriptShape(), {"transcript": "no turns"})[0] == "bad_transcript"
    assert "text before the first turn" in reason_of(TranscriptShape(), {"transcript": "Intro\n\nHuman: a"})[1]


def test_mapping_renames_fields_for_each_shape():
    mapping = FieldMapping(messages="dialog", role="speaker", content="text", roles={"agent": "assistant"})
    record = {"dialog": [{"speaker": "customer", "text": "q"}, {"speaker": "agent", "text": "a"}]}
    renamed = mapping.apply(record, OpenAIShape.fields)
    assert renamed == {"messages": [{"role": "customer", "content": "q"}, {"role": "agent", "content": "a"}]}
    assert mapping.apply(record, ShareGPTShape.fields) == {
        "conversations": [{"from": "customer", "value": "q"}, {"from": "agent", "value": "a"}]}
    assert record == {"dialog": [{"speaker": "customer", "text": "q"}, {"speaker": "agent", "text": "a"}]}  # untouched
    shape = OpenAIShape({**mapping.roles, "customer": "user"})
    assert shape(renamed) == (Message(U, "q"), Message(A, "a"))
    alpaca = FieldMapping(instruction="question", output="answer")
    assert alpaca.apply({"question": "q", "answer": "a"}, AlpacaShape.fields) == {"instruction": "q", "output": "a"}
    assert FieldMapping().apply(record, OpenAIShape.fields) is record


def test_mapping_files_and_merging(tmp_path):
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("messages: dialog\nrole: speaker\nroles:\n  bot: assistant\n")
    mapping = FieldMapping.from_file(yaml_file).merged(role="who", content="text", roles={"me": "user"})
    assert mapping == FieldMapping(messages="dialog", role="who", content="text", roles={"bot": "assistant", "me": "user"})
    assert mapping.to_json() == {"messages": "dialog", "role": "who", "content": "text",
                                 "roles": {"bot": "assistant", "me": "user"}}
    json_file = tmp_path / "map.json"
    json_file.write_text('{"prompt": "question", "completion": "answer"}')
    assert FieldMapping.from_file(json_file) == FieldMapping(prompt="question", completion="answer")
    json_file.write_text('{"mesages": "dialog"}')
    with pytest.raises(MappingError, match="Additional properties are not allowed \\('mesages' was unexpected\\)"):
        FieldMapping.from_file(json_file)
    yaml_file.write_text("roles: {bot: robot}\n")
    with pytest.raises(MappingError, match="roles/bot: 'robot' is not one of"):
        FieldMapping.from_file(yaml_file)
    with pytest.raises(MappingError, match="role alias x=narrator"):
        FieldMapping(roles={"x": "narrator"})


@pytest.mark.parametrize("records, shape", [
    ([{"messages": [{"role": "user", "content": "q"}]}], "openai"),
    ([[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]], "openai"),
    ([{"conversations": [{"from": "human", "value": "q"}]}, {"id": 1, "conversations": []}], "sharegpt"),
    ([{"conversation": [{"human": "q", "assistant": "a"}]}], "sharegpt"),
    ([{"instruction": "q", "input": "", "output": "a"}], "alpaca"),
    ([{"instruction": "q", "response": "a"}], "alpaca"),
    ([{"prompt": "q", "completion": "a"}], "prompt-completion"),
    ([{"query": "q", "response": "a", "history": []}], "prompt-completion"),
    ([{"input": "q", "completion": "a", "context": "c"}], "prompt-completion"),
    # Most records decide: a few broken ones do not change the file's shape.
    ([{"prompt": "q", "completion": "a"}] * 3 + [{"messages": [{"role": "user"}]}], "prompt-completion"),
])
def test_detect_shape(records, shape):
    assert detect_shape(records) == shape


def test_detect_shape_through_a_mapping_and_its_error():
    records = [{"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}]
    with pytest.raises(ShapeNotFound, match=r"no record shape fits \(fields seen: chosen, rejected\); rerun with --shape transcript "
                                           r"--transcript-field chosen \(1 of 1 sampled records fit\)\. .*--shape"):
        detect_shape(records)
    assert detect_shape(records, FieldMapping(transcript="chosen")) == "transcript"
    assert detect_shape([{"dialog": [{"speaker": "bot", "text": "x"}]}],
                        FieldMapping(messages="dialog", role="speaker", content="text")) == "openai"
    with pytest.raises(ShapeNotFound, match=r"fields seen: \(a JSON str\)"):
        detect_shape(["just text"])
