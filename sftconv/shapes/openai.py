"""OpenAI chat records: `{"messages": [{"role": ..., "content": ...}, ...]}`, or the bare list of messages."""

from __future__ import annotations

from typing import Any

from ..conversation import (
    ASSISTANT,
    BAD_TOOL_CALL,
    MESSAGE_NOT_OBJECT,
    ROLES,
    SYSTEM,
    TOOL,
    Message,
    RecordError,
)
from .base import Shape
from .reasoning import field_trace, one_trace, split_parts
from .tools import calls_in_text, openai_calls, result_text, tool_definitions
from .turns import TOOL_CALL, list_field, non_empty_list, optional_text, role_of, text_of, train_flag, type_name


class OpenAIShape(Shape):
    """Reads the OpenAI `messages` shape.

    Expects `{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": str, "weight": 0|1}, ...]}`
    or just the list of messages (`[{"role": "user", ...}, ...]`, one record per JSONL line).
    `content` may also be a list of text parts (`[{"type": "text", "text": "..."}]`; `value` instead of
    `text` too). `weight` or `loss_weight` (0/1), or `train` or `loss` (booleans), override the mask
    policy for their message. Role names are matched through aliases (`human` is `user`, `gpt` is
    `assistant`...). A top-level `system` string becomes the system prompt. Other fields are ignored.

    Tools: an assistant message may call tools with `tool_calls` (`[{"id", "type", "function":
    {"name", "arguments"}}]`, arguments as a JSON string or an object, `id` and `type` optional) or
    the legacy `function_call`; its `content` may then be null. A `tool` (or legacy `function`) message
    holds one result, as text or any JSON value. The record's `tools` (a list, or its JSON text) or
    legacy `functions` are the definitions the calls may use; a content part of type `tool_call` holds
    the JSON text of a call (LLaMA-Factory v1).

    Reasoning (see `shapes.reasoning`): an assistant's trace in `reasoning_content`, `reasoning` or
    `thinking` (a string or text parts), in content parts of type `reasoning` or `thinking`, or
    inline as a `<think>...</think>` block at the start of its content.

    Args:
        roles: extra role aliases, such as `{"bot": "assistant"}`.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "openai"
    fields = {"messages": "messages", "role": "role", "content": "content", "system": "system", "tools": "tools",
              "reasoning": "reasoning"}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if isinstance(data, list):
            messages, system = data, None
        else:
            messages, system = data[list_field(data, ("messages",))], optional_text(data, "system")
        roles = self.roles
        result = [Message(SYSTEM, system)] if system is not None else []
        for index, message in enumerate(non_empty_list(messages, "messages")):
            # Most messages are `{"role": ..., "content": "..."}` and nothing else: such a message is
            # taken as it is, which is what `_message` would make of it, without its checks.
            if type(message) is dict and len(message) == 2 and type(content := message.get("content")) is str:
                role = message.get("role")
                role = roles.get(role.lower()) if type(role) is str else None
                if role in ROLES:
                    result.append(Message(role, content))
                    continue
            result.append(self._message(index, message))
        return tuple(result)

    def tools(self, data: Any) -> tuple[dict, ...]:
        return tool_definitions(data) if isinstance(data, dict) else ()

    def _message(self, index: int, message: Any) -> Message:
        """One message, checked field by field."""
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RecordError(MESSAGE_NOT_OBJECT, f"{where} is {type_name(message)}, not an object")
        role = role_of(message.get("role"), self.roles, f"{where}.role")
        train = train_flag(message, where)
        content = message.get("content")
        if role == TOOL_CALL:
            return Message(ASSISTANT, "", train, calls_in_text(content, f"{where}.content"))
        if role == TOOL:
            return Message(TOOL, result_text(content, f"{where}.content"), train)
        content, part_trace, part_calls = split_parts(content, f"{where}.content")
        calls = openai_calls(message, where) + part_calls
        if calls and role != ASSISTANT:
            raise RecordError(BAD_TOOL_CALL, f"{where} is a {role} message with tool calls; only assistants call tools")
        text = "" if calls and content is None else text_of(content, f"{where}.content")
        return Message(role, text, train, calls, one_trace(field_trace(message, where), part_trace, where))
