"""Transcripts: one string holding the whole chat as `\\n\\nHuman: ...\\n\\nAssistant: ...` (Anthropic HH-RLHF)."""

from __future__ import annotations

import re
from typing import Any

from ..conversation import ASSISTANT, BAD_TRANSCRIPT, NOT_AN_OBJECT, USER, Message, RecordError
from .base import Shape
from .turns import required_text

SPEAKERS = {"Human": USER, "Assistant": ASSISTANT}
TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")  # a speaker label opens a paragraph, as HH-RLHF writes them


class TranscriptShape(Shape):
    """Reads a chat written out as one string, in the Anthropic HH-RLHF form.

    Expects `{"transcript": "\\n\\nHuman: Hi\\n\\nAssistant: Hello!"}`. The field is usually named
    otherwise (`chosen` in HH-RLHF): map it with `--transcript-field chosen`. A turn starts at
    `Human:` or `Assistant:` at the start of the text or after a blank line; the same words
    elsewhere are ordinary text.

    Raises:
        RecordError: `bad_transcript` if there is text before the first turn or no turn at all.
    """

    name = "transcript"
    fields = {"transcript": "transcript"}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        parts = TURN.split(required_text(data, "transcript"))
        if len(parts) == 1:
            raise RecordError(BAD_TRANSCRIPT, "no 'Human:' or 'Assistant:' turn in 'transcript'")
        if parts[0].strip():
            raise RecordError(BAD_TRANSCRIPT, f"text before the first turn: {parts[0][:60]!r}")
        return tuple(Message(SPEAKERS[speaker], text) for speaker, text in zip(parts[1::2], parts[2::2]))
