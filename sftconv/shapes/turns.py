"""What the chat shapes share: role names and their aliases, message text, per-message loss flags."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..conversation import (
    ASSISTANT,
    BAD_HISTORY,
    BAD_TRAIN_FLAG,
    CONTENT_NOT_STRING,
    INVALID_TEXT,
    MESSAGES_NOT_LIST,
    MISSING_FIELD,
    MISSING_MESSAGES,
    NON_TEXT_CONTENT,
    NOT_AN_OBJECT,
    ROLES,
    SYSTEM,
    TEXT_TOO_LONG,
    TOOL,
    UNKNOWN_ROLE,
    USER,
    Conversation,
    Message,
    RecordError,
)

TOOL_CALL = "tool_call"  # a ShareGPT turn holding an assistant's call as JSON text; it becomes an assistant turn
ROLE_ALIASES: dict[str, str] = {
    "system": SYSTEM, "developer": SYSTEM,
    "user": USER, "human": USER,
    "assistant": ASSISTANT, "gpt": ASSISTANT, "model": ASSISTANT, "bot": ASSISTANT,
    "tool": TOOL, "function": TOOL, "observation": TOOL, "ipython": TOOL, "tool_response": TOOL,
    "function_call": TOOL_CALL, "tool_call": TOOL_CALL,
}
ALIAS_TARGETS = (SYSTEM, USER, ASSISTANT, TOOL, TOOL_CALL)
PART_SEPARATOR = "\n"  # between the text parts of one message, as vLLM joins them
# Longest message text, in characters: about a million tokens, far past any Llama 3 context. It bounds
# the tokenizer's work on one record: a run of one letter is a single pre-token, which tiktoken merges
# slowly (50 MB: 82 s and 2.5 GB of memory); at this limit, 3 s and 260 MB.
MAX_TEXT_CHARS = 4_000_000


def type_name(value: Any) -> str:
    """A value's type as messages name it: `null` for a JSON null (None), else the Python type (`list`, `int`...)."""
    return "null" if value is None else type(value).__name__


def role_table(aliases: Mapping[str, str] | None) -> dict[str, str]:
    """The built-in aliases with the user's on top, all keyed in lower case."""
    return {**ROLE_ALIASES, **{name.lower(): role for name, role in (aliases or {}).items()}}


def role_of(name: Any, table: Mapping[str, str], where: str) -> str:
    """The normalised role for a role name from the data (case does not matter): one of ALIAS_TARGETS.

    Raises:
        RecordError: `unknown_role`.
    """
    role = table.get(name.lower()) if isinstance(name, str) else None
    if role is None:
        raise RecordError(UNKNOWN_ROLE, f"{where} is {name!r} (expected one of {', '.join((*ROLES, TOOL))})")
    return role


def text_of(content: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (`{"type": "text", "text" | "value": ...}`).

    Raises:
        RecordError: `content_not_string` for anything else, `non_text_content` for an image, audio... part.
    """
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RecordError(CONTENT_NOT_STRING, f"{where} is {type_name(content)}, not a string")
    texts = []
    for index, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type", "text") if isinstance(part, dict) else type(part).__name__
        text = part.get("text", part.get("value")) if isinstance(part, dict) else None
        if kind != "text":
            raise RecordError(NON_TEXT_CONTENT, f"{where}[{index}] is a {kind!r} part; only text is rendered")
        if not isinstance(text, str):
            raise RecordError(CONTENT_NOT_STRING, f"{where}[{index}] has no 'text' string")
        texts.append(text)
    return PART_SEPARATOR.join(texts)


def train_flag(message: Mapping, where: str) -> bool | None:
    """The message's own loss override, or None to follow the mask policy.

    `weight` (OpenAI) or `loss_weight` (LLaMA-Factory) must be 0 or 1; `train` or `loss` (xtuner)
    must be a boolean. A field that is present but None (a Parquet or `datasets` null) is absent.

    Raises:
        RecordError: `bad_train_flag` for any other value.
    """
    for key in ("weight", "loss_weight"):
        value = message.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
            raise RecordError(BAD_TRAIN_FLAG, f"{where}.{key} must be 0 or 1, found {value!r}")
        return value == 1
    for key in ("train", "loss"):
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise RecordError(BAD_TRAIN_FLAG, f"{where}.{key} must be true or false, found {value!r}")
        return value
    return None


def optional_text(data: Mapping, key: str) -> str | None:
    """An optional string field such as `system` or `input`: None when absent, null or blank.

    Raises:
        RecordError: `content_not_string` if it is present and not a string.
    """
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(CONTENT_NOT_STRING, f"'{key}' is {type(value).__name__}, not a string")
    return value if value.strip() else None


def fields_seen(data: Any) -> str:
    """The record's field names, for messages that say what was found."""
    if isinstance(data, dict):
        return ", ".join(map(str, data)) or "none"
    return f"none: a JSON {type(data).__name__}"


def list_field(data: Any, keys: tuple[str, ...]) -> str:
    """The first of `keys` that the record has: the field holding its list of turns.

    Raises:
        RecordError: `not_an_object` if the record is not an object, `missing_messages` if it has none of `keys`.
    """
    if not isinstance(data, dict):
        raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
    key = next((k for k in keys if k in data), None)
    if key is None:
        raise RecordError(MISSING_MESSAGES, f"no '{keys[0]}' field (fields: {fields_seen(data)})")
    return key


def non_empty_list(turns: Any, key: str) -> list:
    """The list of turns found under `key`.

    Raises:
        RecordError: `messages_not_list` if it is not a list, or an empty one.
    """
    if not isinstance(turns, list) or not turns:
        found = "an empty list" if isinstance(turns, list) else type_name(turns)
        raise RecordError(MESSAGES_NOT_LIST, f"'{key}' must be a non-empty list, found {found}")
    return turns


def exchange(data: Mapping, prompt: str, answer: str, reasoning: str | None = None) -> tuple[Message, ...]:
    """An instruction-style record as messages: its `system`, its `history` pairs, then prompt and answer
    (with `reasoning`, the answer's trace, if any).

    Raises:
        RecordError: `bad_history` if `history` is not a list of [question, answer] string pairs.
    """
    system = optional_text(data, "system")
    messages = [Message(SYSTEM, system)] if system is not None else []
    history = data.get("history")
    if history is not None and not isinstance(history, list):
        raise RecordError(BAD_HISTORY, f"'history' is {type(history).__name__}, not a list of [question, answer] pairs")
    for index, pair in enumerate(history or ()):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise RecordError(BAD_HISTORY, f"history[{index}] is not a [question, answer] pair of strings")
        messages += [Message(USER, pair[0]), Message(ASSISTANT, pair[1])]
    return (*messages, Message(USER, prompt), Message(ASSISTANT, answer, reasoning=reasoning))


def required_text(data: Mapping, key: str) -> str:
    """A string field the shape cannot do without.

    Raises:
        RecordError: `missing_field` if absent or null (saying which), `content_not_string` if not a string.
    """
    value = data.get(key)
    if value is None:
        raise RecordError(MISSING_FIELD, f"'{key}' is null" if key in data else
                          f"no '{key}' field (fields: {fields_seen(data)})")
    if not isinstance(value, str):
        raise RecordError(CONTENT_NOT_STRING, f"'{key}' is {type(value).__name__}, not a string")
    return value


def checked_texts(conversation: Conversation) -> Conversation:
    """The conversation unchanged, once every text it renders is known to encode exactly and in bounded time.

    Every shape's conversations pass here, after the turn rules, so the check holds whatever the
    record's shape: message texts, reasoning traces, tool calls (name and arguments) and tool definitions.

    Raises:
        RecordError: `invalid_text` for a lone surrogate (UTF-8 cannot hold one, and tiktoken would
            silently write U+FFFD in its place), `text_too_long` for a text over MAX_TEXT_CHARS.
    """
    for index, message in enumerate(conversation.messages):
        if message.content.isascii() and len(message.content) <= MAX_TEXT_CHARS and not message.tool_calls \
                and message.reasoning is None:
            continue  # the common case, checked without naming the message
        where = f"turn {index} ({message.role})"
        check_text(message.content, where)
        if message.reasoning is not None:
            check_text(message.reasoning, f"{where}, its reasoning trace")
        for call in message.tool_calls:
            check_text(call.name, f"{where}, tool call {call.name!r}")
            arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments,
                                                                                          ensure_ascii=False)
            check_text(arguments, f"{where}, the arguments of tool call {call.name!r}")
    if conversation.tools:
        check_text(json.dumps(conversation.tools, ensure_ascii=False), "the tool definitions")
    return conversation


def check_text(text: str, where: str) -> None:
    """Raise `text_too_long` or `invalid_text` for one text; ASCII, the common case, is checked by length alone."""
    if len(text) > MAX_TEXT_CHARS:
        raise RecordError(TEXT_TOO_LONG, f"{where} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise RecordError(INVALID_TEXT, f"{where} holds a lone surrogate U+{ord(text[error.start]):04X} at "
                                            f"character {error.start}; fix the text (it cannot be encoded exactly)"
                              ) from None
