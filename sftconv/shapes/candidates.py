"""When no shape fits: which of a record's fields could play which part, as the flags that would say so.

Three layouts are recognised from field names and values alone: a list of role/content-like
objects (a chat under another name), a question-like and an answer-like text field (a
prompt/completion pair under other names), and a text holding `Human:`/`Assistant:` turns (a
transcript). Each candidate is the exact set of field flags that would read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .mapping import field_paths, lookup
from .turns import ROLE_ALIASES

# Field names that hold the asking and the answering text of a pair, most telling first.
PROMPT_NAMES = ("prompt", "question", "query", "instruction", "input", "problem", "request", "inputs", "q",
                "user", "human", "source")
ANSWER_NAMES = ("completion", "answer", "response", "output", "solution", "reply", "outputs", "target", "a",
                "assistant", "gpt", "bot")
CONTENT_NAMES = ("content", "value", "text", "message", "utterance", "body", "msg")
TRANSCRIPT_MARKS = ("Human:", "Assistant:")
LLAMA2_MARK = "[/INST]"


@dataclass(frozen=True)
class Candidate:
    """A shape and the mapping that would read a record as it: `fields` are mapping key -> the user's field."""

    shape: str
    fields: tuple[tuple[str, str], ...]

    @property
    def flags(self) -> str:
        """The command-line flags: `--shape openai --messages-field dialog ...`."""
        return " ".join([f"--shape {self.shape}", *(f"--{key}-field {name}" for key, name in self.fields)])

    def fits(self, record: Any) -> bool:
        """Whether the record holds each field this candidate reads, with a value of the right kind."""
        fields = dict(self.fields)
        if self.shape == "openai":
            return chat_fields(record, fields) == self.fields[1:]
        return bool((text_pair if self.shape == "prompt-completion" else transcript)(record, fields))


def candidates(sample: list) -> list[Candidate]:
    """Every candidate some sampled record fits, those fitting the most records first (ties: chat, pair, transcript)."""
    found: dict[Candidate, int] = {}
    for record in sample:
        for candidate in record_candidates(record):
            found[candidate] = found.get(candidate, 0) + 1
    return sorted(found, key=lambda c: -found[c])


def record_candidates(record: Any) -> list[Candidate]:
    """The candidates one record fits."""
    if not isinstance(record, dict):
        return []
    paths = field_paths(record)
    result = []
    for path in paths:
        value = lookup(record, path)
        if isinstance(value, list) and (turn := chat_fields(record, {"messages": path})):
            result.append(Candidate("openai", (("messages", path), *turn)))
    prompts = [p for name in PROMPT_NAMES for p in paths if p.rsplit(".", 1)[-1].lower() == name
               and isinstance(lookup(record, p), str)]
    answers = [p for name in ANSWER_NAMES for p in paths if p.rsplit(".", 1)[-1].lower() == name
               and isinstance(lookup(record, p), str)]
    if prompts and answers and prompts[0] != answers[0]:
        result.append(Candidate("prompt-completion", (("prompt", prompts[0]), ("completion", answers[0]))))
    for path in paths:
        if transcript(record, {"transcript": path}):
            result.append(Candidate("transcript", (("transcript", path),)))
            break  # HH-RLHF's chosen comes before rejected: train the chosen side
    return result


def chat_fields(record: Any, fields: dict) -> tuple[tuple[str, str], ...] | None:
    """The role and content fields of the turns in `fields["messages"]`, if it is a list of role/content objects."""
    turns = lookup(record, fields["messages"])
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return None
    keys = [key for key in turns[0] if all(isinstance(t.get(key), str) for t in turns)]
    role = next((k for k in keys if all(t[k].lower() in ROLE_ALIASES for t in turns)), None)
    texts = [k for k in keys if k != role]
    content = next((k for name in CONTENT_NAMES for k in texts if k.lower() == name), texts[0] if texts else None)
    if role is None or content is None:
        return None
    return (("role", role), ("content", content))


def text_pair(record: Any, fields: dict) -> bool | None:
    """True when the record's mapped prompt and completion are both strings."""
    return all(isinstance(lookup(record, fields[key]), str) for key in ("prompt", "completion")) or None


def transcript(record: Any, fields: dict) -> bool | None:
    """True when the mapped field is a string holding both `Human:` and `Assistant:` turns, or Llama 2's `[/INST]`."""
    text = lookup(record, fields["transcript"])
    return (isinstance(text, str) and (all(mark in text for mark in TRANSCRIPT_MARKS) or LLAMA2_MARK in text)) or None


def auto_layout(chosen: list[Candidate | None], shapes: dict, mapping) -> Candidate | None:
    """The layout to read the inputs no shape fits with, when it is safe to choose one for the user; else None.

    Safe: the user named no field (`mapping`, a FieldMapping, is empty), no input with records got a
    shape (`shapes`: input -> shape name or None), and every unfit input's one fitting candidate
    (`chosen`, from `ShapeNotFound.chosen`) is the same.
    """
    if mapping.to_json() or any(shapes.values()) or None in chosen or len(set(chosen)) != 1:
        return None
    return chosen[0]
