"""OpenAI chat fine-tuning records: `{"messages": [{"role": ..., "content": ...}, ...]}`."""

from __future__ import annotations

from typing import Any

from ..conversation import (
    BAD_TRAIN_FLAG,
    CONTENT_NOT_STRING,
    EMPTY_CONTENT,
    MESSAGE_NOT_OBJECT,
    MESSAGES_NOT_LIST,
    MISSING_MESSAGES,
    NOT_AN_OBJECT,
    ROLES,
    SYSTEM,
    UNKNOWN_ROLE,
    Message,
    RecordError,
)


def train_flag(message: dict) -> bool | None:
    """The message's own loss override: OpenAI's `weight` (0 or 1) or a boolean `train`."""
    if "weight" in message:
        weight = message["weight"]
        if weight not in (0, 1) or isinstance(weight, bool):
            raise RecordError(BAD_TRAIN_FLAG, f"weight must be 0 or 1, found {weight!r}")
        return weight == 1
    if "train" in message:
        if not isinstance(message["train"], bool):
            raise RecordError(BAD_TRAIN_FLAG, f"train must be true or false, found {message['train']!r}")
        return message["train"]
    return None


class OpenAIShape:
    """Reads the OpenAI `messages` shape.

    Expects `{"messages": [{"role": "system"|"user"|"assistant", "content": str, "weight": 0|1}, ...]}`;
    `weight` (or a boolean `train`) is optional and overrides the mask policy for its message.
    Empty user or assistant content is rejected; an empty system prompt is kept, as chat templates do.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "openai"

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        if "messages" not in data:
            raise RecordError(MISSING_MESSAGES, f"no 'messages' field (fields: {', '.join(map(str, data)) or 'none'})")
        messages = data["messages"]
        if not isinstance(messages, list) or not messages:
            found = "an empty list" if isinstance(messages, list) else type(messages).__name__
            raise RecordError(MESSAGES_NOT_LIST, f"'messages' must be a non-empty list, found {found}")
        return tuple(self._message(i, m) for i, m in enumerate(messages))

    def _message(self, index: int, message: Any) -> Message:
        """One message, checked field by field."""
        if not isinstance(message, dict):
            raise RecordError(MESSAGE_NOT_OBJECT, f"messages[{index}] is a {type(message).__name__}, not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RecordError(UNKNOWN_ROLE, f"messages[{index}].role is {role!r} (expected one of {', '.join(ROLES)})")
        if not isinstance(content, str):
            raise RecordError(CONTENT_NOT_STRING, f"messages[{index}].content is {type(content).__name__}, not a string")
        if role != SYSTEM and not content.strip():
            raise RecordError(EMPTY_CONTENT, f"messages[{index}] ({role}) has no content")
        return Message(role, content, train_flag(message))
