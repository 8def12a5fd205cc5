"""Transcripts: one string holding a whole chat, as HH-RLHF (`\\n\\nHuman: ...`) or the Llama 2 era wrote them."""

from __future__ import annotations

import re
from typing import Any

from ..conversation import ASSISTANT, BAD_TRANSCRIPT, NOT_AN_OBJECT, SYSTEM, USER, Message, RecordError
from .base import Shape
from .turns import required_text

SPEAKERS = {"Human": USER, "Assistant": ASSISTANT}
TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")  # a speaker label opens a paragraph, as HH-RLHF writes them
# Llama 2 era: each turn wrapped in SentencePiece's sequence marks, `<s>Human: ... </s><s>Assistant: ... </s>`.
TAGGED_TURN = re.compile(r"\s*<s>\s*(Human|Assistant):(.*?)</s>", re.S)
# Llama 2 chat: `<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nquestion [/INST] answer </s>`, once per exchange;
# the last answer may be missing (a prompt awaiting its answer) or lack its `</s>`.
LLAMA2_MARKS = re.compile(r"</?s>|\[/?INST\]|<</?SYS>>")  # the structure of a Llama 2 transcript, not its text
INST_EXCHANGE = re.compile(r"\s*(?:<s>)?\s*\[INST\](?:\s*<<SYS>>(.*?)<</SYS>>)?(.*?)\[/INST\]"
                           r"(.*?)(?:</s>|(?=\s*(?:<s>)?\s*\[INST\])|\s*$)", re.S)


class TranscriptShape(Shape):
    """Reads a chat written out as one string: the Anthropic HH-RLHF form, or a Llama 2 era form.

    Expects `{"transcript": "\\n\\nHuman: Hi\\n\\nAssistant: Hello!"}`. The field is usually named
    otherwise (`chosen` in HH-RLHF): map it with `--transcript-field chosen`. A turn starts at
    `Human:` or `Assistant:` at the start of the text or after a blank line; the same words
    elsewhere are ordinary text.

    Two Llama 2 era forms are read too, told by how the text starts: `<s>Human: Hi</s><s>Assistant:
    Hello!</s>` (each turn between `<s>` and `</s>`), and Llama 2 chat's `<s>[INST] <<SYS>>\\nBe brief.
    \\n<</SYS>>\\n\\nHi [/INST] Hello! </s><s>[INST] ... [/INST] ...` (the system prompt inside the first
    `[INST]`). The marks themselves are never message text.

    Raises:
        RecordError: `bad_transcript` if there is text before the first turn, text no turn holds, or no turn at all.
    """

    name = "transcript"
    fields = {"transcript": "transcript"}
    transcript_fields = ("transcript",)

    def __call__(self, data: Any) -> tuple[Message, ...]:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        text = required_text(data, "transcript")
        start = text.lstrip()
        if start.startswith("[INST]") or start.startswith("<s>") and start[3:].lstrip().startswith("[INST]"):
            return llama2_chat(text)
        if start.startswith("<s>"):
            return tagged_turns(text)
        parts = TURN.split(text)
        if len(parts) == 1:
            raise RecordError(BAD_TRANSCRIPT, "no 'Human:' or 'Assistant:' turn in 'transcript'")
        if parts[0].strip():
            raise RecordError(BAD_TRANSCRIPT, f"text before the first turn: {parts[0][:60]!r}")
        return tuple(Message(SPEAKERS[speaker], text) for speaker, text in zip(parts[1::2], parts[2::2]))


def without_llama2_marks(text: str) -> str:
    """A Llama 2 era transcript with the marks that are its structure blanked (so positions stay), for the
    special-text scan, which would otherwise count every such transcript as holding another template's markers."""
    start = text.lstrip()
    return LLAMA2_MARKS.sub(lambda mark: " " * len(mark[0]), text) if start.startswith(("<s>", "[INST]")) else text


def tagged_turns(text: str) -> tuple[Message, ...]:
    """`<s>Human: ...</s><s>Assistant: ...</s>`: every character is in a turn, or the record is rejected."""
    messages, position = [], 0
    while match := TAGGED_TURN.match(text, position):
        messages.append(Message(SPEAKERS[match[1]], match[2]))
        position = match.end()
    if text[position:].strip():
        raise RecordError(BAD_TRANSCRIPT, f"'transcript' has text outside a <s>Human:/Assistant: ...</s> turn at "
                                          f"character {position}: {text[position:position + 60]!r}")
    return tuple(messages)


def llama2_chat(text: str) -> tuple[Message, ...]:
    """`[INST] question [/INST] answer </s>` exchanges, the first holding an optional `<<SYS>>` system prompt."""
    messages, position = [], 0
    while position < len(text.rstrip()) and (match := INST_EXCHANGE.match(text, position)):
        system, question, answer = match.groups()
        if system is not None:
            if messages:
                raise RecordError(BAD_TRANSCRIPT, "'transcript' has a <<SYS>> system prompt after its first [INST]")
            messages.append(Message(SYSTEM, system))
        messages.append(Message(USER, question))
        if answer.strip():
            messages.append(Message(ASSISTANT, answer))
        position = match.end()
    if text[position:].strip():
        raise RecordError(BAD_TRANSCRIPT, f"'transcript' has text outside an [INST] ... [/INST] exchange at "
                                          f"character {position}: {text[position:position + 60]!r}")
    return tuple(messages)
