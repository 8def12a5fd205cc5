"""Prompt/completion records: `{"prompt": ..., "completion": ...}` and the same pair under other names."""

from __future__ import annotations

from typing import Any

from ..conversation import MISSING_FIELD, NOT_AN_OBJECT, Message, RecordError
from .base import Shape
from .reasoning import RECORD_FIELD, record_trace
from .turns import exchange, fields_seen, required_text

PAIRS = (("prompt", "completion"), ("query", "response"), ("input", "completion"))


class PromptCompletionShape(Shape):
    """Reads one prompt and its completion as a user turn and an assistant turn.

    Expects `{"prompt": str, "completion": str}`, or `query`/`response` (ms-swift), or
    `input`/`completion`; the first pair present wins. Optional `system` and `history`
    (`[[question, answer], ...]`) work as in the Alpaca shape. Both texts are kept as they are:
    a legacy separator or stop text (`\\n\\n###\\n\\n`, `<|endoftext|>`) stays ordinary text. The completion's
    reasoning trace is read from `reasoning_content` (or the field `--reasoning-field` names), or
    inline (`<think>...</think>` at its start).

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "prompt-completion"
    fields = {"prompt": "prompt", "completion": "completion", "system": "system", "history": "history",
              "reasoning": RECORD_FIELD}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        for prompt, completion in PAIRS:
            if data.get(prompt) is not None and data.get(completion) is not None:
                return exchange(data, required_text(data, prompt), required_text(data, completion),
                                record_trace(data))
        for prompt, completion in PAIRS:
            if prompt in data and completion in data:  # a pair with a null: say which field is null
                return exchange(data, required_text(data, prompt), required_text(data, completion),
                                record_trace(data))
        raise RecordError(MISSING_FIELD, "no prompt/completion, query/response or input/completion pair "
                                         f"(fields: {fields_seen(data)})")
