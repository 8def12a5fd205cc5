"""How reasoning traces render inside an assistant turn, which turns keep theirs, and whether they are trained.

The one form, before the answer, as Llama 3 distillations (Llama-Nemotron, R1 distills) train it:

    <think>\\n{trace}\\n</think>\\n\\n{answer}

- trace and answer are each trimmed as content is (`str.strip`); an empty trace gives
  `<think>\\n\\n</think>`; with nothing after it (a turn that only reasons) the block ends at
  `</think>`, as the chat template's trim of the whole content leaves it; a tool call with no answer
  before it comes after the block's blank line, as an answer would;
- the tags are ordinary text, encoded with `encode_ordinary` like any content, never control tokens;
- the ids are those of the whole text encoded at once (what `apply_chat_template` gives for a
  message whose content is that text): the blank line closes the last pre-token of the block
  (the regex piece `>\\n\\n`), so the block and the answer encode apart to the same ids, which
  makes the mask boundary exact;
- a block's tokens ("trace tokens": tags, trace and blank line) are trained when the turn is and
  `train` is set; the answer keeps the turn's own mask.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum

from ..conversation import ASSISTANT, CLOSE_TAG, OPEN_TAG, Message

ANSWER_GAP = "\n\n"  # between the block and what follows it


class KeepReasoning(str, Enum):
    """Which assistant turns keep their trace: every one (TRL's training templates), the last one
    (what Qwen3 and DeepSeek-style templates render at inference), or none (dropped, and counted)."""

    ALL = "all"
    LAST = "last"
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class ReasoningPolicy:
    """What the template does with traces.

    Args:
        keep: which assistant turns keep their trace (default `KeepReasoning.ALL`).
        train: whether the tokens of a kept trace are trained where their turn is (default True).
        empty: give a kept turn with no trace an empty block, for data that mixes reasoning on and
            off (the Llama-Nemotron convention); default False.

    Example:
        >>> ReasoningPolicy(keep=KeepReasoning.LAST).traces((Message("assistant", "a", reasoning="t"),))
        ['t']
    """

    keep: KeepReasoning = KeepReasoning.ALL
    train: bool = True
    empty: bool = False

    def __post_init__(self):
        object.__setattr__(self, "keep", KeepReasoning(self.keep))

    @classmethod
    def first_given(cls, *choices: tuple[str | None, bool | None, bool | None]) -> ReasoningPolicy:
        """The policy from the first (keep, train, empty) value given for each setting: flags before a mapping
        file's keys, say; the default where none is."""
        given = [next((choice[i] for choice in choices if choice[i] is not None), None) for i in range(3)]
        return cls(**{key: value for key, value in zip(("keep", "train", "empty"), given) if value is not None})

    def applies(self, messages: tuple[Message, ...]) -> bool:
        """Whether any message renders a block or drops a trace (if not, the conversation renders as before)."""
        if self.empty and self.keep is not KeepReasoning.NONE:
            return any(m.role == ASSISTANT for m in messages)
        return any(m.reasoning is not None for m in messages)

    def traces(self, messages: tuple[Message, ...]) -> list[str | None]:
        """The trace each message renders, untrimmed (None: no block)."""
        last = max((i for i, m in enumerate(messages) if m.role == ASSISTANT), default=-1)
        kept = []
        for index, message in enumerate(messages):
            keep = message.role == ASSISTANT and (
                self.keep is KeepReasoning.ALL or (self.keep is KeepReasoning.LAST and index == last))
            kept.append(None if not keep else "" if message.reasoning is None and self.empty else message.reasoning)
        return kept

    def to_json(self) -> dict:
        return {"keep": self.keep.value, "train": self.train, "empty": self.empty}


def block(trace: str, followed: bool) -> str:
    """A trace's block as text; `followed`: an answer or a call comes after it, past a blank line."""
    return f"{OPEN_TAG}\n{trace.strip()}\n{CLOSE_TAG}" + (ANSWER_GAP if followed else "")


@dataclass
class ReasoningCounts:
    """Traces in the samples a template rendered: turns with a block (`filled` of them given an empty one
    by the policy), traces the policy dropped, and the block tokens, all and trained."""

    turns: int = 0
    filled: int = 0
    dropped: int = 0
    tokens: int = 0
    trained_tokens: int = 0

    def add(self, other: ReasoningCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def count(self, messages: tuple[Message, ...], traces: list[str | None]) -> None:
        """Count one rendered conversation's blocks and dropped traces (tokens are counted where encoded)."""
        for message, trace in zip(messages, traces):
            if trace is not None:
                self.turns += 1
                self.filled += message.reasoning is None
            elif message.reasoning is not None:
                self.dropped += 1
