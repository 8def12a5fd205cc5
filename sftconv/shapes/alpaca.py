"""Alpaca records: `{"instruction": ..., "input": ..., "output": ...}`."""

from __future__ import annotations

from typing import Any

from ..conversation import MISSING_FIELD, NOT_AN_OBJECT, Message, RecordError
from .base import Shape
from .reasoning import RECORD_FIELD, record_trace
from .turns import exchange, fields_seen, optional_text, required_text

INPUT_SEPARATOR = "\n"  # instruction and input are joined as LLaMA-Factory and ms-swift join them


class AlpacaShape(Shape):
    """Reads the Alpaca shape.

    Expects `{"instruction": str, "input": str (optional), "output": str}`; `response` may stand for
    `output`. The user turn is the instruction, then a newline and the input when the input is not
    blank (`"Translate.\\nBonjour"`), which is how LLaMA-Factory and ms-swift build it. An optional
    `system` string is the system prompt, and an optional `history` (`[[question, answer], ...]`)
    comes before the instruction as earlier turns. The answer's reasoning trace is read from
    `reasoning_content` (or the field `--reasoning-field` names), or inline (`<think>...</think>` at
    its start). Other fields (such as a pre-rendered `text`) are ignored.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "alpaca"
    fields = {**{name: name for name in ("instruction", "input", "output", "system", "history")},
              "reasoning": RECORD_FIELD}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        instruction = required_text(data, "instruction")
        answer_key = "output" if data.get("output") is not None else "response"
        if data.get(answer_key) is None:
            if answer_key in data:
                raise RecordError(MISSING_FIELD, f"'{answer_key}' is null")
            raise RecordError(MISSING_FIELD, f"no 'output' or 'response' field (fields: {fields_seen(data)})")
        answer = required_text(data, answer_key)
        return exchange(data, with_input(instruction, optional_text(data, "input")), answer, record_trace(data))


def with_input(instruction: str, extra: str | None) -> str:
    """The user turn of an Alpaca record: the instruction, then a newline and the input where it is not blank."""
    return f"{instruction}{INPUT_SEPARATOR}{extra}" if extra is not None and extra.strip() else instruction
