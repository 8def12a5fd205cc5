"""Reasoning traces as records hold them: a message field, content parts, or a `<think>` block inline.

Every form is read into `Message.reasoning` (None: no trace; "": a trace present but empty), the
answer left in `content`. How a trace renders, and whether it is trained, is the template's business.
A form that cannot be read without guessing is rejected: a `<think>` block with no `</think>`, a
tag anywhere but at the start of an assistant's content, two traces that differ, a trace on a turn
that is not the assistant's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import (
    ASSISTANT,
    CLOSE_TAG,
    CONTENT_NOT_STRING,
    MALFORMED_REASONING,
    MISPLACED_REASONING,
    OPEN_TAG,
    Message,
    RecordError,
    ToolCall,
)
from .tools import calls_in_text
from .turns import PART_SEPARATOR

# Message fields that hold a trace: DeepSeek, vLLM before 2026 and xtuner; vLLM since 2026, OpenAI-style
# clients and Nemotron's data; TRL's gpt-oss data. `--reasoning-field NAME` reads NAME as `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
REASONING_PARTS = frozenset({"reasoning", "thinking"})  # content part types holding a trace (LLaMA-Factory v1...)
TEXT_PARTS = frozenset({"text", "reasoning", "thinking", "reasoning_text"})  # parts a trace field's list may hold
# The one record-level field read without --reasoning-field (Alpaca, prompt/completion): a record's
# `reasoning` or `thinking` is as often a switch (Llama-Nemotron's `"reasoning": "on"`) as a trace.
RECORD_FIELD = "reasoning_content"
TOOL_CALL_PART = "tool_call"  # a content part holding the JSON text of a call (LLaMA-Factory v1)


def field_trace(message: Mapping, where: str) -> str | None:
    """The trace in a message's reasoning fields: a string or a list of text parts; None if none.

    Raises:
        RecordError: `content_not_string` for another value, `malformed_reasoning` for two fields that differ.
    """
    found: tuple[str, str] | None = None
    for key in REASONING_FIELDS:
        value = message.get(key)
        if value is None:
            continue
        text = parts_text(value, f"{where}.{key}")
        if found is None:
            found = key, text
        elif found[1].strip() != text.strip():
            raise RecordError(MALFORMED_REASONING, f"{where} has two traces that differ, '{found[0]}' and '{key}'")
    return None if found is None else found[1]


def record_trace(data: Mapping) -> str | None:
    """The trace of a record with one answer: its `reasoning_content` (where `--reasoning-field` renames to).

    Raises:
        RecordError: `content_not_string` for a value that is not text.
    """
    value = data.get(RECORD_FIELD)
    return None if value is None else parts_text(value, f"'{RECORD_FIELD}'")


def parts_text(value: Any, where: str) -> str:
    """A trace given as a string or a list of text parts (strings, or objects with `text` or `value`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for index, part in enumerate(value):
            text = part if isinstance(part, str) else part.get("text", part.get("value")) if isinstance(part, dict) else None
            if not isinstance(text, str) or (isinstance(part, dict) and part.get("type", "text") not in TEXT_PARTS):
                raise RecordError(CONTENT_NOT_STRING, f"{where}[{index}] is not a text part")
            texts.append(text)
        return PART_SEPARATOR.join(texts)
    raise RecordError(CONTENT_NOT_STRING, f"{where} is {type(value).__name__}, not a string or a list of text parts")


def split_parts(content: Any, where: str) -> tuple[Any, str | None, tuple[ToolCall, ...]]:
    """Content with its trace parts (`reasoning`, `thinking`, in any position) and `tool_call` parts taken out.

    Returns the other parts (the content as it is when it has no such part), the trace (its parts
    joined as text parts are) or None, and the calls.

    Raises:
        RecordError: `content_not_string` for a trace part without text, `bad_tool_call` for a call part
            that is not the JSON of a call.
    """
    if not isinstance(content, list) or not any(
            isinstance(p, dict) and p.get("type") in (*REASONING_PARTS, TOOL_CALL_PART) for p in content):
        return content, None, ()
    rest, traces, calls = [], [], []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in REASONING_PARTS:
            traces.append(parts_text([part], f"{where}[{index}]"))
        elif kind == TOOL_CALL_PART:
            calls += calls_in_text(part.get("text", part.get("value")), f"{where}[{index}]")
        else:
            rest.append(part)
    return rest, PART_SEPARATOR.join(traces) if traces else None, tuple(calls)


def one_trace(first: str | None, second: str | None, where: str) -> str | None:
    """The trace of a message given in two places (a field and content parts): they must agree.

    Raises:
        RecordError: `malformed_reasoning` if both are given and differ.
    """
    if first is None or second is None:
        return second if first is None else first
    if first.strip() != second.strip():
        raise RecordError(MALFORMED_REASONING, f"{where} has two traces that differ (a field's and its content's)")
    return first


def inline_block(content: str, where: str) -> tuple[str | None, str]:
    """(trace, answer) of a content that starts with a `<think>` block; (None, content) when it has no tag.

    Raises:
        RecordError: `malformed_reasoning` for a block with no `</think>`, or a tag anywhere else.
    """
    if "think>" not in content or (OPEN_TAG not in content and CLOSE_TAG not in content):
        return None, content
    text = content.lstrip()
    if text.startswith(OPEN_TAG):
        end = text.find(CLOSE_TAG)
        if end < 0:
            raise RecordError(MALFORMED_REASONING, f"{where} opens a {OPEN_TAG} block and never closes it")
        trace, answer = text[len(OPEN_TAG):end], text[end + len(CLOSE_TAG):]
        for part, what in ((trace, "inside its <think> block"), (answer, "after its <think> block")):
            if OPEN_TAG in part or CLOSE_TAG in part:
                raise RecordError(MALFORMED_REASONING, f"{where} has another think tag {what}")
        return trace, answer
    tag = OPEN_TAG if OPEN_TAG in content else CLOSE_TAG
    raise RecordError(MALFORMED_REASONING, f"{where} has {tag} at character {content.find(tag)}, not a block at "
                                           "the start of the content")


def read_traces(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The messages with each assistant's inline `<think>` block moved into `reasoning`, every trace checked.

    A block inline and the same trace in a field are one trace, never wrapped twice.

    Raises:
        RecordError: `malformed_reasoning` (see `inline_block`; a trace holding a think tag; an inline
            block and a field trace that differ), `misplaced_reasoning` for a trace on another role's turn.
    """
    result = None
    for index, message in enumerate(messages):
        if message.role != ASSISTANT:
            if message.reasoning is not None:
                raise RecordError(MISPLACED_REASONING, f"turn {index} ({message.role}) has a reasoning trace; "
                                                       "only assistant turns reason")
            continue
        if message.reasoning is None and "think>" not in message.content:
            continue
        where = f"turn {index} (assistant)"
        trace, answer = inline_block(message.content, where)
        if message.reasoning is not None and (OPEN_TAG in message.reasoning or CLOSE_TAG in message.reasoning):
            raise RecordError(MALFORMED_REASONING, f"{where} has a think tag inside its trace")
        if trace is None:
            continue
        if result is None:
            result = list(messages)
        result[index] = Message(ASSISTANT, answer, message.train, message.tool_calls,
                                one_trace(message.reasoning, trace, where))
    return messages if result is None else tuple(result)
