"""The Llama 3.1 template's own choices: system lines, where definitions go, masks, and what it refuses.

The expected texts follow the Hugging Face hub chat template of Meta-Llama-3.1-8B-Instruct, read and
written out by hand for these small cases (test_llama31_references.py compares with Meta's code).
"""

from __future__ import annotations

import json

import pytest

from sftconv.conversation import Conversation, Location, Message, RecordError, ToolCall
from sftconv.template import Llama3Template, Llama31Template, MaskPolicy, ToolPlacement

from .test_template import trained_spans

HERE = Location("test.jsonl", line=1)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
LINES = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
CALL_FORMAT = ('Respond in the format {"name": function name, "parameters": dictionary of argument name and its '
               'value}.Do not use variables.\n\n')
WEATHER_JSON = json.dumps(WEATHER, indent=4) + "\n\n"
CHAT = (Message("system", " Be brief. "), Message("user", " Weather in Paris? "),
        Message("assistant", "", None, (ToolCall("get_weather", {"city": "Paris"}, "c1"),)),
        Message("tool", '{"temp": "20C"}'), Message("assistant", "20C in Paris."))


def render(tokenizer, messages, tools=(), **options):
    return Llama31Template(tokenizer, **options).render(Conversation(tuple(messages), HERE, tuple(tools)))


def text(tokenizer, messages, tools=(), **options) -> str:
    return tokenizer.decode(render(tokenizer, messages, tools, **options).input_ids)


def test_functions_in_the_first_user_message(tokenizer):
    assert text(tokenizer, CHAT, [WEATHER]) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Environment: ipython\n{LINES}Be brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, please respond with a JSON for a function call with its proper arguments "
        f"that best answers the given prompt.\n\n{CALL_FORMAT}{WEATHER_JSON}Weather in Paris?<|eot_id|>"
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}'
        "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n"
        '{"temp": "20C"}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n20C in Paris.<|eot_id|>')


def test_functions_in_the_system_turn(tokenizer):
    rendered = text(tokenizer, CHAT, [WEATHER], tools_in=ToolPlacement.SYSTEM)
    assert rendered.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Environment: ipython\n{LINES}"
        f"You have access to the following functions. To call a function, please respond with JSON for a function "
        f"call.{CALL_FORMAT}{WEATHER_JSON}Be brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>")
    assert rendered.endswith(text(tokenizer, CHAT, [WEATHER]).split("Weather in Paris?")[1])


@pytest.mark.parametrize("tools, lines", [
    ((), LINES),
    ([{"type": "brave_search"}, {"type": "wolfram_alpha"}, {"type": "code_interpreter"}],
     f"Environment: ipython\nTools: brave_search, wolfram_alpha\n\n{LINES}"),
    # The hub template would write an empty "Tools: \n\n" line here; Meta's generator writes none.
    ([{"type": "code_interpreter"}], f"Environment: ipython\n{LINES}"),
    # A function named as a built-in tool is that built-in tool: named, not written as JSON.
    ([{"type": "function", "function": {"name": "wolfram_alpha"}}], f"Environment: ipython\nTools: wolfram_alpha\n\n{LINES}"),
])
def test_system_lines(tokenizer, tools, lines):
    chat = (Message("user", "Hi"), Message("assistant", "Hello"))
    assert text(tokenizer, chat, tools).startswith(
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{lines}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")


def test_a_built_in_tool_called_without_a_definition_is_named_too(tokenizer):
    chat = (Message("user", "Gold price?"), Message("assistant", "", None, (ToolCall("brave_search", {"query": "gold"}),)))
    assert text(tokenizer, chat) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Environment: ipython\nTools: brave_search\n\n{LINES}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nGold price?<|eot_id|>"
        '<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>brave_search.call(query="gold")<|eom_id|>')


def test_the_date_is_an_option_and_nothing_else(tokenizer):
    chat = CHAT[1:2] + CHAT[4:]
    assert "Today Date: 21 September 2024\n\n" in text(tokenizer, chat, date_string="21 September 2024")
    assert text(tokenizer, chat) == text(tokenizer, chat, date_string="26 Jul 2024")


def test_content_beside_calls_and_parallel_calls(tokenizer):
    calls = (ToolCall("get_weather", {"city": "Zürich"}), ToolCall("get_weather", {"city": "Rome"}))
    chat = (Message("user", "Zürich and Rome?"), Message("assistant", " Checking both. ", None, calls))
    assert text(tokenizer, chat, [WEATHER]).endswith(
        '<|start_header_id|>assistant<|end_header_id|>\n\nChecking both.{"name": "get_weather", "parameters": '
        '{"city": "Zürich"}}{"name": "get_weather", "parameters": {"city": "Rome"}}<|eot_id|>')


def test_masks(tokenizer):
    chat = CHAT + (Message("user", "Thanks"), Message("assistant", "", None, (ToolCall("code_interpreter", "1+1"),)))
    tools = [WEATHER, {"type": "code_interpreter"}]
    call = '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eom_id|>'
    assert trained_spans(tokenizer, render(tokenizer, chat, tools)) == [
        call, "20C in Paris.<|eot_id|>", "<|python_tag|>1+1<|eom_id|>"]
    assert trained_spans(tokenizer, render(tokenizer, chat, tools, policy=MaskPolicy.LAST)) == [
        "<|python_tag|>1+1<|eom_id|>"]
    assert trained_spans(tokenizer, render(tokenizer, chat, tools, train_tool_calls=False)) == [
        "20C in Paris.<|eot_id|>"]
    # Everything under --train-on all, but for the BOS, the system lines, the definitions and the results.
    spans = trained_spans(tokenizer, render(tokenizer, chat, tools, policy=MaskPolicy.ALL))
    assert spans == [
        "<|start_header_id|>system<|end_header_id|>\n\n", "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n",
        "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" + call,
        "<|start_header_id|>assistant<|end_header_id|>\n\n20C in Paris.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>1+1<|eom_id|>"]


def test_the_data_flags_override_but_results_are_never_trained(tokenizer):
    call = Message("assistant", "", True, (ToolCall("get_weather", {"city": "Paris"}),))
    chat = (Message("user", "q"), call, Message("tool", "20C", train=True), Message("assistant", "20C.", train=False))
    assert trained_spans(tokenizer, render(tokenizer, chat, [WEATHER], train_tool_calls=False)) == [
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>']


def test_without_a_system_prompt_the_system_turn_is_never_trained(tokenizer):
    sample = render(tokenizer, CHAT[1:], [WEATHER], policy=MaskPolicy.ALL)
    assert tokenizer.decode(sample.input_ids[:sample.loss_mask.index(1)]) == (
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n{LINES}<|eot_id|>")
    assert trained_spans(tokenizer, sample)[:2] == [
        "<|start_header_id|>user<|end_header_id|>\n\n", "Weather in Paris?<|eot_id|><|start_header_id|>assistant"
        '<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>']


@pytest.mark.parametrize("call, tools, reason, detail", [
    (ToolCall("get_weather", "city=Paris"), [WEATHER], "invalid_tool_arguments",
     "turn 1: the arguments of the get_weather call are not a JSON object: 'city=Paris'"),
    (ToolCall("python", "print(1)"), [WEATHER], "invalid_tool_arguments",
     "(code for the code interpreter? define {\"type\": \"code_interpreter\"} in the record's tools)"),
    (ToolCall("code_interpreter", {"source": "x"}), [], "invalid_tool_arguments", "turn 1: the code_interpreter call has no code"),
    (ToolCall("brave_search", {"query": 3}), [], "invalid_tool_arguments",
     'turn 1: the arguments of the brave_search call must be strings, found {"query": 3}'),
    (ToolCall("get_weather", {}), [{"type": "file_search"}], "bad_tools",
     "a tool of type 'file_search', which Llama 3.1 cannot render"),
])
def test_what_llama31_cannot_render(tokenizer, call, tools, reason, detail):
    chat = (Message("user", "q"), Message("assistant", "", None, (call,)))
    [result] = Llama31Template(tokenizer).render_batch([Conversation(chat, HERE, tuple(tools))])
    assert isinstance(result, RecordError) and result.reason == reason and detail in result.detail


def test_python_is_the_code_interpreter_only_where_one_is_defined(tokenizer):
    chat = (Message("user", "q"), Message("assistant", "", None, (ToolCall("python", {"code": "1"}),)))
    assert text(tokenizer, chat, [{"type": "code_interpreter"}]).endswith("<|python_tag|>1<|eom_id|>")
    assert text(tokenizer, chat).endswith('{"name": "python", "parameters": {"code": "1"}}<|eot_id|>')


def test_definitions_need_a_user_turn_unless_they_go_in_the_system_turn(tokenizer):
    chat = Conversation((Message("assistant", "Hi"),), HERE, (WEATHER,))
    [result] = Llama31Template(tokenizer).render_batch([chat])
    assert result.reason == "no_user_turn" and "pass --tools-in system" in result.detail
    assert Llama31Template(tokenizer, tools_in=ToolPlacement.SYSTEM).render(chat).trained_tokens == 2  # Hi<|eot_id|>


def test_nothing_trained_is_an_error(tokenizer):
    chat = Conversation((Message("user", "q"), Message("assistant", "", None, (ToolCall("f", {}),))), HERE)
    [result] = Llama31Template(tokenizer, train_tool_calls=False).render_batch([chat])
    assert result.reason == "no_trained_tokens" and result.detail.endswith("--no-train-tool-calls")


def test_batch_equals_one_by_one_with_failures_in_place(tokenizer):
    template = Llama31Template(tokenizer)
    bad = Conversation((Message("user", "q"), Message("assistant", "", None, (ToolCall("f", "x"),))), HERE)
    chats = [Conversation(CHAT, HERE, (WEATHER,)), bad, Conversation(CHAT[1:2] + CHAT[4:], HERE)]
    results = template.render_batch(chats)
    assert results[0] == template.render(chats[0]) and results[2] == template.render(chats[2])
    assert isinstance(results[1], RecordError)


def test_llama3_refuses_tool_turns_and_ignores_definitions(tokenizer):
    template = Llama3Template(tokenizer)
    plain = (Message("user", "Hi"), Message("assistant", "Hello"))
    chats = [Conversation(CHAT, HERE, (WEATHER,)), Conversation(plain, HERE, (WEATHER,)), Conversation(CHAT[:2] + CHAT[3:], HERE)]
    called, defined, result = template.render_batch(chats)
    assert (called.reason, called.detail) == (
        "tool_calls_unsupported", "turn 2 calls a tool; Llama 3 has no tool turns: pass --template llama3.1")
    assert defined == template.render(Conversation(plain, HERE))
    assert (result.reason, result.detail) == (
        "tool_calls_unsupported", "turn 2 is a tool's result; Llama 3 has no tool turns: pass --template llama3.1")
