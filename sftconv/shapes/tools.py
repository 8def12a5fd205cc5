"""Tools as records hold them: definitions (`tools`, the legacy `functions`), calls and results.

Every form is read into one: definitions into OpenAI's `{"type": "function", "function": {...}}`,
calls into `ToolCall`s, results into text. Which tools are Llama's built-in ones, and how each is
rendered, is the template's business; nothing here knows about tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..conversation import BAD_TOOL_CALL, BAD_TOOLS, CONTENT_NOT_STRING, RecordError, ToolCall
from .turns import text_of


def tool_definitions(data: Mapping) -> tuple[dict, ...]:
    """The record's tool definitions in OpenAI's form; () when it has none.

    `tools` may be a list or a JSON-encoded list (LLaMA-Factory writes a string); without `tools`,
    the legacy `functions` list is read. Each entry is `{"type": "function", "function": {...}}`,
    a bare function `{"name": ..., "description": ..., "parameters": ...}` (wrapped into the former),
    or a tool that needs no definition, such as `{"type": "code_interpreter"}` (kept as it is).

    Raises:
        RecordError: `bad_tools` if the field is not such a list.

    Example:
        >>> tool_definitions({"tools": '[{"name": "f", "parameters": {}}]'})
        ({'type': 'function', 'function': {'name': 'f', 'parameters': {}}},)
    """
    key = "tools" if data.get("tools") is not None else "functions"
    tools = data.get(key)
    if tools is None:
        return ()
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError as error:
            raise RecordError(BAD_TOOLS, f"'{key}' is a string but not JSON: {error}") from error
    if not isinstance(tools, list):
        raise RecordError(BAD_TOOLS, f"'{key}' is {type(tools).__name__}, not a list of tool definitions")
    return tuple(definition(tool, f"{key}[{index}]") for index, tool in enumerate(tools))


def definition(tool: Any, where: str) -> dict:
    """One tool definition in OpenAI's form."""
    if not isinstance(tool, dict):
        raise RecordError(BAD_TOOLS, f"{where} is {type(tool).__name__}, not a tool definition object")
    function = tool.get("function")
    if function is None and "name" in tool:  # a bare function, or the flat form of OpenAI's Responses API
        function = {key: value for key, value in tool.items() if key != "type"}
    if function is None:
        if isinstance(tool.get("type"), str) and tool["type"] != "function":
            return tool
        raise RecordError(BAD_TOOLS, f"{where} has no 'function' nor 'name' (fields: {', '.join(map(str, tool))})")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise RecordError(BAD_TOOLS, f"{where} has no function name")
    return {"type": "function", "function": function}


def openai_calls(message: Mapping, where: str) -> tuple[ToolCall, ...]:
    """An OpenAI message's calls: `tool_calls`, or the legacy single `function_call`.

    A `tool_calls` entry is `{"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}`;
    `id` and `type` may be missing, and so may the `function` wrapper (`{"name": ..., "arguments": ...}`).

    Raises:
        RecordError: `bad_tool_call` for a call without a name or a `tool_calls` that is not a list.
    """
    calls = message.get("tool_calls")
    if calls is None and message.get("function_call") is not None:
        return (call(message["function_call"], f"{where}.function_call"),)
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise RecordError(BAD_TOOL_CALL, f"{where}.tool_calls is {type(calls).__name__}, not a list")
    return tuple(call(entry, f"{where}.tool_calls[{index}]") for index, entry in enumerate(calls))


def calls_in_text(text: Any, where: str) -> tuple[ToolCall, ...]:
    """The calls of a ShareGPT `function_call` turn: JSON text of `{"name": ..., "arguments": ...}` or a list of them.

    Raises:
        RecordError: `bad_tool_call` if the text is not such JSON.
    """
    if not isinstance(text, str):
        raise RecordError(BAD_TOOL_CALL, f"{where} is {type(text).__name__}, not the JSON text of a call")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(BAD_TOOL_CALL, f"{where} is not the JSON of a call ({error}): {text[:60]!r}") from error
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise RecordError(BAD_TOOL_CALL, f"{where} is an empty list of calls")
    return tuple(call(entry, f"{where}[{index}]" if isinstance(value, list) else where)
                 for index, entry in enumerate(entries))


def call(entry: Any, where: str) -> ToolCall:
    """One call, with or without OpenAI's `function` wrapper."""
    if not isinstance(entry, dict):
        raise RecordError(BAD_TOOL_CALL, f"{where} is {type(entry).__name__}, not a call object")
    function = entry.get("function", entry)
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise RecordError(BAD_TOOL_CALL, f"{where} has no function name")
    call_id = entry.get("id")
    return ToolCall(name, arguments(function.get("arguments")), call_id if isinstance(call_id, str) else None)


def arguments(value: Any) -> dict | str:
    """A call's arguments: a JSON object (given as one or as its JSON text), or else the text as given.

    Missing or blank arguments are a call without arguments, `{}`. Text that is not a JSON object stays
    text, which the code interpreter takes as code and a JSON tool call rejects. Any other JSON value
    (a list, a number) is kept as its JSON text, so it is rejected the same way.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, dict) else value


def result_text(content: Any, where: str) -> str:
    """A tool result's text: a string, text parts, or any other JSON value (an object...) written as JSON.

    Raises:
        RecordError: `content_not_string` for a missing (null) result.
    """
    if content is None:
        raise RecordError(CONTENT_NOT_STRING, f"{where} is null; a tool result needs content")
    if isinstance(content, str):
        return content
    parts = isinstance(content, list) and all(
        isinstance(p, str) or (isinstance(p, dict) and p.get("type") == "text") for p in content)
    return text_of(content, where) if parts else json.dumps(content, ensure_ascii=False)
