"""Tool calls, results and definitions in records: every form the shapes read, and each bad one's reason code."""

from __future__ import annotations

import pytest

from sftconv.conversation import Message, RecordError, ToolCall
from sftconv.shapes import FieldMapping, OpenAIShape, ShareGPTShape, TurnRules
from sftconv.shapes.tools import arguments

S, U, A, T = "system", "user", "assistant", "tool"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def reason_of(call, *args) -> tuple[str, str]:
    with pytest.raises(RecordError) as error:
        call(*args)
    return error.value.reason, error.value.detail


def test_openai_tool_calls_in_every_form():
    record = {"messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},  # no id, no type, a dict
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "20C"},
        {"role": "tool", "content": {"temp": "25C"}},  # a JSON result is written as JSON
        {"role": "assistant", "content": "Paris 20C, Rome 25C.", "function_call": None},
    ]}
    assert OpenAIShape()(record) == (
        Message(U, "Weather in Paris and Rome?"),
        Message(A, "", None, (ToolCall("get_weather", {"city": "Paris"}, "c1"), ToolCall("get_weather", {"city": "Rome"}))),
        Message(T, "20C"), Message(T, '{"temp": "25C"}'), Message(A, "Paris 20C, Rome 25C."))


def test_openai_legacy_function_call_and_function_role():
    record = {"messages": [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": "Let me look.", "function_call": {"name": "now", "arguments": ""}},
        {"role": "function", "name": "now", "content": "12:00"},
        {"role": "assistant", "content": "Noon."},
    ], "functions": [{"name": "now", "description": "The time.", "parameters": {}}]}
    shape = OpenAIShape()
    assert shape(record)[1:3] == (Message(A, "Let me look.", None, (ToolCall("now", {}),)), Message(T, "12:00"))
    assert shape.tools(record) == ({"type": "function", "function": {"name": "now", "description": "The time.",
                                                                     "parameters": {}}},)


@pytest.mark.parametrize("tools", [
    [WEATHER],
    '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]',
    [{"name": "get_weather", "parameters": {"type": "object"}}],  # bare, as glaive writes them
    [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],  # flat, as the Responses API
])
def test_tool_definitions_in_every_form_become_openai_ones(tools):
    assert OpenAIShape().tools({"messages": [], "tools": tools}) == (WEATHER,)


def test_tools_that_need_no_definition_are_kept_and_no_tools_is_none():
    shape = OpenAIShape()
    assert shape.tools({"tools": [{"type": "code_interpreter"}, WEATHER]}) == ({"type": "code_interpreter"}, WEATHER)
    for data in ({"messages": []}, {"tools": None}, {"tools": ""}, {"tools": []}, [{"role": "user"}]):
        assert shape.tools(data) == ()


@pytest.mark.parametrize("tools, detail", [
    ("not json", "'tools' is a string but not JSON"),
    ({"name": "f"}, "'tools' is dict, not a list"),
    (["f"], "tools[0] is str, not a tool definition object"),
    ([{"description": "x"}], "tools[0] has no 'function' nor 'name' (fields: description)"),
    ([{"type": "function", "function": {"name": ""}}], "tools[0] has no function name"),
])
def test_bad_tool_definitions(tools, detail):
    reason, got = reason_of(OpenAIShape().tools, {"tools": tools})
    assert reason == "bad_tools" and got.startswith(detail)


@pytest.mark.parametrize("message, detail", [
    ({"role": "assistant", "content": None, "tool_calls": {"name": "f"}}, "messages[1].tool_calls is dict, not a list"),
    ({"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]},
     "messages[1].tool_calls[0] has no function name"),
    ({"role": "assistant", "content": None, "tool_calls": ["f"]}, "messages[1].tool_calls[0] is str, not a call object"),
    ({"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]},
     "messages[1] is a user message with tool calls; only assistants call tools"),
])
def test_bad_openai_calls(message, detail):
    record = {"messages": [{"role": "user", "content": "q"}, message]}
    assert reason_of(OpenAIShape(), record) == ("bad_tool_call", detail)


def test_a_null_result_or_a_null_content_without_calls_is_not_text():
    for message in ({"role": "tool", "content": None}, {"role": "assistant", "content": None, "tool_calls": []}):
        assert reason_of(OpenAIShape(), {"messages": [message]})[0] == "content_not_string"


def test_arguments_are_an_object_or_the_text_as_given():
    assert arguments('{"a": 1}') == {"a": 1} and arguments({"a": 1}) == {"a": 1}
    assert arguments(None) == arguments("") == arguments("  ") == {}
    assert arguments("print(1)") == "print(1)"  # code for the code interpreter, or a reject later
    assert arguments("[1, 2]") == "[1, 2]" and arguments([1, "é"]) == '[1, "é"]' and arguments("5") == "5"


def test_sharegpt_function_call_and_observation_turns():
    record = {
        "conversations": [
            {"from": "human", "value": "Find chicken recipes."},
            {"from": "function_call", "value": '{"name": "search", "arguments": {"q": "chicken"}}'},
            {"from": "observation", "value": '{"recipes": []}'},
            {"from": "gpt", "value": "None found."},
            {"from": "human", "value": "Paris and Rome?"},
            {"from": "function_call", "value": '[{"name": "w", "arguments": "{\\"c\\": \\"Paris\\"}"}, {"name": "w"}]'},
            {"from": "observation", "value": "20"}, {"from": "observation", "value": "25"},
            {"from": "gpt", "value": "20 and 25."},
        ],
        "tools": '[{"name": "search", "description": "Search recipes", "parameters": {}}]',
    }
    shape = ShareGPTShape()
    assert shape(record) == (
        Message(U, "Find chicken recipes."), Message(A, "", None, (ToolCall("search", {"q": "chicken"}),)),
        Message(T, '{"recipes": []}'), Message(A, "None found."), Message(U, "Paris and Rome?"),
        Message(A, "", None, (ToolCall("w", {"c": "Paris"}), ToolCall("w", {}))),
        Message(T, "20"), Message(T, "25"), Message(A, "20 and 25."))
    assert shape.tools(record) == (
        {"type": "function", "function": {"name": "search", "description": "Search recipes", "parameters": {}}},)
    assert TurnRules()(shape(record)) == shape(record)


@pytest.mark.parametrize("value, detail", [
    ("search(q)", "conversations[1].value is not the JSON of a call (Expecting value: line 1 column 1 (char 0))"),
    ("[]", "conversations[1].value is an empty list of calls"),
    ('{"arguments": {}}', "conversations[1].value has no function name"),
    ('[{"name": "a"}, 3]', "conversations[1].value[1] is int, not a call object"),
    (["x"], "conversations[1].value is list, not the JSON text of a call"),
])
def test_bad_sharegpt_calls(value, detail):
    record = {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": value}]}
    reason, got = reason_of(ShareGPTShape(), record)
    assert reason == "bad_tool_call" and got.startswith(detail)


def test_role_aliases_may_name_calls_and_results():
    record = {"conversations": [{"from": "human", "value": "q"}, {"from": "call", "value": '{"name": "f"}'},
                                {"from": "result", "value": "ok"}, {"from": "gpt", "value": "a"}]}
    shape = ShareGPTShape({"call": "tool_call", "result": "tool"})
    assert [m.role for m in shape(record)] == [U, A, T, A]


def test_turn_rules_around_tool_turns():
    call = Message(A, "", None, (ToolCall("f", {}),))
    chat = (Message(U, "q"), call, Message(T, ""), Message(T, "second"), Message(A, "a"))
    assert TurnRules()(chat) == chat  # empty call turn and empty result kept, two results in a row allowed
    assert TurnRules(drop_empty_turns=True, merge_consecutive=True)(chat) == chat
    reason, detail = reason_of(TurnRules(merge_consecutive=True), (Message(U, "q"), call, Message(A, "a")))
    assert reason == "consecutive_same_role" and "turn 1 calls tools but no result follows it" in detail
    merged = TurnRules(merge_consecutive=True)((Message(U, "q"), Message(A, "Let me see."), call, Message(T, "r")))
    assert merged == (Message(U, "q"), Message(A, "Let me see.\n\n", None, call.tool_calls), Message(T, "r"))


def test_the_tools_field_can_be_mapped():
    mapping = FieldMapping(tools="available_functions")
    record = mapping.apply({"messages": [], "available_functions": [WEATHER]}, OpenAIShape.fields)
    assert OpenAIShape().tools(record) == (WEATHER,)
    assert mapping.to_json() == {"tools": "available_functions"}
