"""Llama 3.1's view of a conversation's tools: which are built in, and the text each call renders as.

Llama 3.1 knows three built-in tools (`brave_search`, `wolfram_alpha`, `code_interpreter`), called
in their own syntax after `<|python_tag|>`; every other tool is a function defined in JSON and called
as `{"name": ..., "parameters": ...}`. The template renders with this, and validate checks calls with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..conversation import BAD_TOOLS, INVALID_TOOL_ARGUMENTS, Conversation, RecordError, ToolCall

CODE_INTERPRETER = "code_interpreter"
BUILTIN_TOOLS = ("brave_search", "wolfram_alpha", CODE_INTERPRETER)
PYTHON = "python"  # what functionary (and others) name the code interpreter in calls


def builtin_name(tool: dict) -> str | None:
    """The built-in tool a definition names (by its type or its function's name), or None for a function."""
    if tool.get("type") in BUILTIN_TOOLS:
        return tool["type"]
    name = (tool.get("function") or {}).get("name")
    return name if name in BUILTIN_TOOLS else None


@dataclass(frozen=True)
class Toolbox:
    """The tools of one conversation as Llama 3.1 renders them.

    `builtin` holds the built-in tools the conversation defines or calls, in that order; `functions`
    the other definitions, rendered as JSON; `defined` every tool name the definitions give.
    """

    builtin: tuple[str, ...]
    functions: tuple[dict, ...]
    defined: frozenset[str]

    @classmethod
    def of(cls, conversation: Conversation) -> Toolbox:
        """The conversation's tools.

        Raises:
            RecordError: `bad_tools` for a definition of a type Llama 3.1 has no rendering for
                (such as OpenAI's `file_search`).
        """
        builtin: dict[str, None] = {}
        functions = []
        for tool in conversation.tools:
            name = builtin_name(tool)
            if name is not None:
                builtin[name] = None
            elif tool.get("type") == "function":
                functions.append(tool)
            else:
                raise RecordError(BAD_TOOLS, f"a tool of type {tool.get('type')!r}, which Llama 3.1 cannot render "
                                             f"(it knows functions and {', '.join(BUILTIN_TOOLS)})")
        defined = frozenset({*builtin, *(f["function"]["name"] for f in functions)})
        for message in conversation.messages:
            for call in message.tool_calls:
                name = builtin_call(call, defined)
                if name is not None:
                    builtin[name] = None
        return cls(tuple(builtin), tuple(functions), defined)

    def builtin_of(self, call: ToolCall) -> str | None:
        """The built-in tool a call is to, or None for a function call."""
        return builtin_call(call, self.defined)

    def tool_of(self, call: ToolCall) -> str:
        """The name of the tool a call is to, as the definitions would name it."""
        return self.builtin_of(call) or call.name

    def call_text(self, call: ToolCall, where: str) -> str:
        """The text a call renders as, after `<|python_tag|>` for a built-in tool; `where` names its turn for errors.

        - code interpreter: the code itself (arguments given as code, or as `{"code": ...}`);
        - brave_search, wolfram_alpha: `brave_search.call(query="...")`, one `name="value"` per argument;
        - a function: `{"name": ..., "parameters": {...}}`, JSON with non-ASCII characters kept as they are.

        Raises:
            RecordError: `invalid_tool_arguments` if the arguments do not fit the tool.
        """
        tool, arguments = self.builtin_of(call), call.arguments
        if tool == CODE_INTERPRETER:
            code = arguments.get("code") if isinstance(arguments, dict) else arguments
            if not isinstance(code, str):
                raise RecordError(INVALID_TOOL_ARGUMENTS, f"{where}: the {call.name} call has no code: its arguments "
                                                          "are neither code nor an object with a 'code' string")
            return code
        if not isinstance(arguments, dict):
            hint = (" (code for the code interpreter? define {\"type\": \"code_interpreter\"} in the record's tools)"
                    if call.name == PYTHON else "")
            raise RecordError(INVALID_TOOL_ARGUMENTS, f"{where}: the arguments of the {call.name} call are not a JSON "
                                                      f"object: {arguments[:60]!r}{hint}")
        if tool is None:
            return json.dumps({"name": call.name, "parameters": arguments}, ensure_ascii=False)
        if not all(isinstance(value, str) for value in arguments.values()):
            raise RecordError(INVALID_TOOL_ARGUMENTS, f"{where}: the arguments of the {tool} call must be strings, "
                                                      f"found {json.dumps(arguments, ensure_ascii=False)[:60]}")
        pairs = ", ".join(f'{key}="{value}"' for key, value in arguments.items())
        return f"{tool}.call({pairs})"


def builtin_call(call: ToolCall, defined: frozenset[str]) -> str | None:
    """The built-in tool a call is to, or None for a function call.

    A call named `python` is to the code interpreter when the conversation defines that tool and no
    function named `python`.
    """
    if call.name in BUILTIN_TOOLS:
        return call.name
    aliased = call.name == PYTHON and CODE_INTERPRETER in defined and PYTHON not in defined
    return CODE_INTERPRETER if aliased else None
