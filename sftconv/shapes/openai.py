"""OpenAI chat records: `{"messages": [{"role": ..., "content": ...}, ...]}`, or the bare list of messages."""

from __future__ import annotations

from typing import Any

from ..conversation import (
    MESSAGE_NOT_OBJECT,
    MESSAGES_NOT_LIST,
    MISSING_MESSAGES,
    NOT_AN_OBJECT,
    SYSTEM,
    TOOL_CALLS_UNSUPPORTED,
    Message,
    RecordError,
)
from .base import Shape
from .turns import fields_seen, is_tool_role, optional_text, role_of, text_of, train_flag


class OpenAIShape(Shape):
    """Reads the OpenAI `messages` shape.

    Expects `{"messages": [{"role": "system"|"user"|"assistant", "content": str, "weight": 0|1}, ...]}`
    or just the list of messages (`[{"role": "user", ...}, ...]`, one record per JSONL line).
    `content` may also be a list of text parts (`[{"type": "text", "text": "..."}]`; `value` instead of
    `text` too). `weight` or `loss_weight` (0/1), or `train` or `loss` (booleans), override the mask
    policy for their message. Role names are matched through aliases (`human` is `user`, `gpt` is
    `assistant`...). A top-level `system` string becomes the system prompt. Other fields are ignored.
    A message with `tool_calls` (or `function_call`), and a `tool` or `function` turn, make the record
    `tool_calls_unsupported`.

    Args:
        roles: extra role aliases, such as `{"bot": "assistant"}`.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "openai"
    fields = {"messages": "messages", "role": "role", "content": "content", "system": "system"}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if isinstance(data, list):
            messages, system = data, None
        elif isinstance(data, dict):
            if "messages" not in data:
                raise RecordError(MISSING_MESSAGES, f"no 'messages' field (fields: {fields_seen(data)})")
            messages, system = data["messages"], optional_text(data, "system")
        else:
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        if not isinstance(messages, list) or not messages:
            found = "an empty list" if isinstance(messages, list) else type(messages).__name__
            raise RecordError(MESSAGES_NOT_LIST, f"'messages' must be a non-empty list, found {found}")
        for index, message in enumerate(messages):
            if isinstance(message, dict) and (message.get("tool_calls") or message.get("function_call")
                                              or is_tool_role(message.get("role"), self.roles)):
                raise RecordError(TOOL_CALLS_UNSUPPORTED, f"messages[{index}] is a tool call or result, "
                                  "which is not rendered yet")
        prompt = (Message(SYSTEM, system),) if system is not None else ()
        return prompt + tuple(self._message(i, m) for i, m in enumerate(messages))

    def _message(self, index: int, message: Any) -> Message:
        """One message, checked field by field."""
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RecordError(MESSAGE_NOT_OBJECT, f"{where} is a {type(message).__name__}, not an object")
        role = role_of(message.get("role"), self.roles, f"{where}.role")
        return Message(role, text_of(message.get("content"), f"{where}.content"), train_flag(message, where))
