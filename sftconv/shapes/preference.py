"""Preference shapes: one raw record -> a Preference, a prompt with two answers (DPO) or one answer and a label (KTO).

Each shape reads the record's parts as messages; `PairShaper` then applies the turn rules to each side
and splits the two sides where they start to differ, so every shape gets the same preference rules.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..conversation import (
    ASSISTANT,
    BAD_LABEL,
    EMPTY_ANSWER,
    IDENTICAL_ANSWERS,
    MISSING_FIELD,
    NO_ASSISTANT_TURN,
    NO_PROMPT,
    NOT_AN_OBJECT,
    PROMPTS_DIFFER,
    SYSTEM,
    USER,
    Conversation,
    Location,
    Message,
    Preference,
    Record,
    RecordError,
)
from .base import Shape
from .openai import OpenAIShape
from .rules import is_blank
from .sharegpt import ShareGPTShape
from .reasoning import read_traces
from .shaper import Shaper
from .tools import tool_definitions
from .transcript import TranscriptShape
from .turns import checked_texts, fields_seen, non_empty_list, optional_text

NOWHERE = Location("")  # a shape's Preference before the pipeline gives it the record's location
LABEL_FIELDS = ("label", "kto_tag")  # TRL and LLaMA-Factory name a KTO label so


class Turns:
    """Reads a value as messages (a list of them, one message object, or a text in the role it stands for) with the
    OpenAI and ShareGPT shapes' own message readers."""

    def __init__(self, roles: dict[str, str] | None = None):
        self.openai = OpenAIShape(roles)
        self.sharegpt = ShareGPTShape(roles)

    def __call__(self, value: Any, key: str, text_role: str) -> tuple[Message, ...]:
        if isinstance(value, str):
            return (Message(text_role, value),)
        if isinstance(value, dict):
            return tuple(self.sharegpt._turn(key, value)) if "from" in value else (self.openai._message(0, value),)
        messages = []
        for index, item in enumerate(non_empty_list(value, key)):
            messages += self.sharegpt._turn(f"{key}[{index}]", item) if isinstance(item, dict) and "from" in item \
                else [self.openai._message(index, item)]
        return tuple(messages)


class PreferenceShape(Shape):
    """A shape whose records are preference samples: `__call__` returns a Preference (its location not yet set).

    Args:
        roles: extra role aliases, such as `{"bot": "assistant"}`.
    """

    def __init__(self, roles: dict[str, str] | None = None):
        super().__init__(roles)
        self.turns = Turns(roles)

    def __call__(self, data: Any) -> Preference:
        raise NotImplementedError


class PairShape(PreferenceShape):
    """Reads a prompt and two answers, as TRL's preference format and UltraFeedback-binarized write them.

    Expects `{"prompt": str | messages, "chosen": str | message | messages, "rejected": ...}`; a text
    prompt is a user turn and a text answer an assistant turn; messages are OpenAI `{role, content}`
    or ShareGPT `{from, value}` objects. Without `prompt`, `chosen` and `rejected` are two whole
    conversations (TRL's implicit prompt, torchtune; LLaMA-Factory v1's `chosen_messages` and
    `rejected_messages`), and their shared first turns are the prompt; so are answers that repeat
    the prompt (UltraFeedback). `question`/`response_j`/`response_k` (Stack Exchange paired) read
    as prompt/chosen/rejected. An optional `system` text and `tools` work as in the OpenAI shape.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "pair"
    fields = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected", "system": "system", "tools": "tools"}
    NAMES = (("prompt", "chosen", "rejected"), (None, "chosen_messages", "rejected_messages"),
             ("question", "response_j", "response_k"))

    def __call__(self, data: Any) -> Preference:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        names = next((n for n in self.NAMES if data.get(n[1]) is not None and data.get(n[2]) is not None), None)
        if names is None:
            raise RecordError(MISSING_FIELD, "no chosen/rejected, chosen_messages/rejected_messages or "
                                             f"response_j/response_k pair (fields: {fields_seen(data)})")
        prompt_key, chosen_key, rejected_key = names
        turns = self.turns
        system = optional_text(data, "system")
        prompt = (Message(SYSTEM, system),) if system is not None else ()
        asked = turns(data[prompt_key], prompt_key, USER) if prompt_key and data.get(prompt_key) is not None else ()
        chosen, rejected = (without_start(turns(data[key], key, ASSISTANT), asked) for key in (chosen_key, rejected_key))
        return Preference((*prompt, *asked), chosen, NOWHERE, rejected, tools=tool_definitions(data))


class ShareGPTPairShape(PreferenceShape):
    """Reads LLaMA-Factory's ShareGPT pairwise records.

    Expects `{"conversations": [{"from": "human", "value": ...}, ...], "chosen": {"from": "gpt", "value": ...},
    "rejected": {...}}`, with optional `system` and `tools` as in the ShareGPT shape; `chosen` and
    `rejected` may also be texts or lists of turns.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "sharegpt-pair"
    fields = {"messages": "conversations", "role": "from", "content": "value", "system": "system", "tools": "tools",
              "chosen": "chosen", "rejected": "rejected"}

    def __call__(self, data: Any) -> Preference:
        sharegpt = self.turns.sharegpt
        prompt = sharegpt(data)
        sides = [self.turns(require(data, key), key, ASSISTANT) for key in ("chosen", "rejected")]
        return Preference(prompt, sides[0], NOWHERE, sides[1], tools=sharegpt.tools(data))


class TranscriptPairShape(PreferenceShape):
    """Reads two whole chats written as `\\n\\nHuman: ...\\n\\nAssistant: ...` transcripts (Anthropic HH-RLHF).

    Expects `{"chosen": transcript, "rejected": transcript}`; the turns both share are the prompt.

    Raises:
        RecordError: `bad_transcript` for text before the first turn, or with the reason of another problem.
    """

    name = "transcript-pair"
    fields = {"chosen": "chosen", "rejected": "rejected"}
    transcript_fields = ("chosen", "rejected")

    def __call__(self, data: Any) -> Preference:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        transcript = TranscriptShape()
        chosen, rejected = (transcript({"transcript": require(data, key)}) for key in ("chosen", "rejected"))
        return Preference((), chosen, NOWHERE, rejected)


class KtoShape(PreferenceShape):
    """Reads one conversation and whether its last answer is desirable: KTO's unpaired preference data.

    Expects a boolean `label` (TRL, LLaMA-Factory's demo) or `kto_tag` (LLaMA-Factory's ShareGPT) beside
    an OpenAI `messages` list or a ShareGPT `conversations` list, whose last turn is the answer and
    every turn before it the prompt; or beside TRL's `prompt` and `completion` (texts or messages).

    Raises:
        RecordError: `bad_label` for a label that is not true or false, or the reason of another problem.
    """

    name = "kto"
    fields = {"messages": "messages", "role": "role", "content": "content", "system": "system", "tools": "tools",
              "prompt": "prompt", "completion": "completion", "label": "label"}

    def __call__(self, data: Any) -> Preference:
        if not isinstance(data, dict):
            raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
        label = kto_label(data)
        if label is None:
            raise RecordError(MISSING_FIELD, f"no 'label' or 'kto_tag' field (fields: {fields_seen(data)})")
        turns = self.turns
        if "conversations" not in data and "messages" not in data:
            return Preference(turns(require(data, "prompt"), "prompt", USER),
                              turns(require(data, "completion"), "completion", ASSISTANT), NOWHERE, label=label,
                              tools=tool_definitions(data))
        shape = turns.sharegpt if "conversations" in data else turns.openai
        messages = shape(data)
        return Preference(messages[:-1], messages[-1:], NOWHERE, label=label, tools=shape.tools(data))


def kto_label(data: Any, key: str | None = None) -> bool | None:
    """A record's KTO label: None if it has none, else True or False.

    Raises:
        RecordError: `bad_label` if the field holds anything but a boolean.
    """
    if not isinstance(data, dict):
        return None
    key = key or next((k for k in LABEL_FIELDS if data.get(k) is not None), None)
    if key is None or data.get(key) is None:
        return None
    if not isinstance(data[key], bool):
        raise RecordError(BAD_LABEL, f"'{key}' must be true or false, found {data[key]!r}")
    return data[key]


def require(data: Any, key: str) -> Any:
    """A field the shape cannot do without.

    Raises:
        RecordError: `not_an_object`, or `missing_field` if absent or null.
    """
    if not isinstance(data, dict):
        raise RecordError(NOT_AN_OBJECT, f"expected a JSON object, found {type(data).__name__}")
    if data.get(key) is None:
        raise RecordError(MISSING_FIELD, f"no '{key}' field (fields: {fields_seen(data)})")
    return data[key]


class PairShaper(Shaper):
    """How one input's records become Preferences: field names renamed, the shape, the turn rules on each side,
    then the sides split where they first differ.

    The sides' shared first turns join the prompt; what is left of each side is its answer, which
    must start with an assistant turn. Rejects (`Preference` rules): `empty_answer`, `identical_answers`,
    `prompts_differ` (one side is all prompt, or the sides differ at a user turn), `no_prompt`.
    """

    consumes = frozenset({*LABEL_FIELDS, "chosen", "rejected"})  # whatever names the shape reads them under

    def __call__(self, record: Record) -> Preference:
        data = self.mapping.apply(record.data, self.shape.fields)
        found = self.read_with(self.shape, data)
        answers = (found.chosen,) if found.label is not None else (found.chosen, found.rejected)
        sides = [read_traces((*found.prompt, *answer)) for answer in answers]
        for name, side in zip(("chosen", "rejected"), sides):
            if is_blank(side[-1].content) and not side[-1].tool_calls:
                raise RecordError(EMPTY_ANSWER, f"the {name} answer is empty")
        split(sides)  # the data's own turns first: a pair is rejected for what it is before any turn rule
        sides = [self.rules(side) for side in sides]
        prompt, chosen, rejected = split(sides)
        for side in sides:
            checked_texts(Conversation(side, record.location, found.tools))
        return Preference(prompt, chosen, record.location, rejected, found.label, found.tools)


def split(sides: list[tuple[Message, ...]]) -> tuple[tuple, tuple, tuple]:
    """Prompt, chosen and rejected answers of two sides, or of one KTO side (its last turn the answer).

    Raises:
        RecordError: `no_prompt`, `no_assistant_turn`, or a reason of `split_sides`.
    """
    prompt, chosen, rejected = split_sides(*sides) if len(sides) == 2 else (sides[0][:-1], sides[0][-1:], ())
    if not any(m.role == USER for m in prompt):
        raise RecordError(NO_PROMPT, "no user turn before the answers")
    if chosen[0].role != ASSISTANT:
        raise RecordError(NO_ASSISTANT_TURN, f"the last turn is the {chosen[0].role}'s, not an answer")
    return prompt, chosen, rejected


def split_sides(chosen: tuple[Message, ...], rejected: tuple[Message, ...]) -> tuple[tuple, tuple, tuple]:
    """The turns two sides share from the start (the prompt), and each side's answer after them.

    Raises:
        RecordError: `identical_answers`, or `prompts_differ` when one side is all prompt or an answer
            starts with a user turn.
    """
    shared = 0
    for mine, theirs in zip(chosen, rejected):
        if same(mine, theirs):
            shared += 1
        else:
            break
    if shared == len(chosen) == len(rejected):
        raise RecordError(IDENTICAL_ANSWERS, "chosen and rejected are the same")
    if shared in (len(chosen), len(rejected)):
        side = "chosen" if shared == len(chosen) else "rejected"
        raise RecordError(PROMPTS_DIFFER, f"the {side} side is the other's start: no answer of its own")
    for name, answer in (("chosen", chosen[shared:]), ("rejected", rejected[shared:])):
        if answer[0].role != ASSISTANT:
            raise RecordError(PROMPTS_DIFFER, f"the sides differ at turn {shared}, a {answer[0].role} turn of "
                                              f"{name}: their prompts differ")
    return chosen[:shared], chosen[shared:], rejected[shared:]


def without_start(side: tuple[Message, ...], start: tuple[Message, ...]) -> tuple[Message, ...]:
    """A side without the prompt it repeats (UltraFeedback writes whole conversations beside the prompt)."""
    if start and len(side) > len(start) and all(map(same, side, start)):
        return side[len(start):]
    return side


def same(one: Message, other: Message) -> bool:
    """Whether two turns render alike: the template trims contents."""
    return replace(one, content=one.content.strip()) == replace(other, content=other.content.strip())


PREFERENCE_SHAPES: dict[str, type[PreferenceShape]] = {
    shape.name: shape for shape in (ShareGPTPairShape, PairShape, TranscriptPairShape, KtoShape)
}
