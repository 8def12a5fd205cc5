"""The types every stage shares: where a record came from, the conversation it holds, and why it failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
ROLES = (SYSTEM, USER, ASSISTANT)  # the roles of a plain chat
TOOL = "tool"  # a tool's result, sent back to the model (Llama 3.1 renders it as the `ipython` role)
# A reasoning trace's tags: how an inline trace is found in an assistant's content, and how the template writes one.
OPEN_TAG, CLOSE_TAG = "<think>", "</think>"

# Reason codes for rejected records: stable strings that scripts and the rejects file rely on.
INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
NOT_AN_OBJECT = "not_an_object"
MISSING_MESSAGES = "missing_messages"
MESSAGES_NOT_LIST = "messages_not_list"
MESSAGE_NOT_OBJECT = "message_not_object"
UNKNOWN_ROLE = "unknown_role"
CONTENT_NOT_STRING = "content_not_string"
EMPTY_CONTENT = "empty_content"
BAD_TRAIN_FLAG = "bad_train_flag"
NO_TRAINED_TOKENS = "no_trained_tokens"
INVALID_CSV = "invalid_csv"
MISSING_FIELD = "missing_field"
NON_TEXT_CONTENT = "non_text_content"
BAD_HISTORY = "bad_history"
BAD_TRANSCRIPT = "bad_transcript"
TOOL_CALLS_UNSUPPORTED = "tool_calls_unsupported"
BAD_TOOL_CALL = "bad_tool_call"
BAD_TOOLS = "bad_tools"
INVALID_TOOL_ARGUMENTS = "invalid_tool_arguments"
NO_USER_TURN = "no_user_turn"
INVALID_TEXT = "invalid_text"  # a lone surrogate: tiktoken would write U+FFFD in its place, silently
TEXT_TOO_LONG = "text_too_long"  # a message over MAX_TEXT_CHARS (shapes/turns.py)
SPECIAL_TEXT = "special_text"  # special-token text or another template's markers, with --special-text reject
MALFORMED_REASONING = "malformed_reasoning"  # a <think> block unclosed or mid-text, or two traces that differ
MISPLACED_REASONING = "misplaced_reasoning"  # a trace on a turn that is not the assistant's
# Role-order rules, checked on every conversation whatever its shape.
SYSTEM_NOT_FIRST = "system_not_first"
CONSECUTIVE_SAME_ROLE = "consecutive_same_role"
ASSISTANT_BEFORE_USER = "assistant_before_user"
NO_ASSISTANT_TURN = "no_assistant_turn"
# Preference rules (shapes/preference.py, pairs.py): a pair must have a prompt and two different, non-empty answers.
IDENTICAL_ANSWERS = "identical_answers"  # chosen and rejected render to the same tokens: nothing to prefer
PROMPTS_DIFFER = "prompts_differ"  # the two sides differ before their answers (one is the other's prefix, or a user turn differs)
EMPTY_ANSWER = "empty_answer"
NO_PROMPT = "no_prompt"  # no user turn before the answers
BAD_LABEL = "bad_label"  # a KTO label that is not true or false
UNDESIRABLE_ANSWER = "undesirable_answer"  # an SFT run meets a KTO record labelled false: never trained as good

# Reason code for samples a length policy drops: counted in the summary and manifest, not rejected.
TOO_LONG = "too_long"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record came from, so every error and reject can point at it."""

    source: str
    line: int | None = None
    row: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}"
        if self.row is not None:
            return f"{self.source}[row {self.row}]"
        return self.source


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call an assistant turn makes: `arguments` is a JSON object, or the text the data gave when it is not one."""

    name: str
    arguments: dict | str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One turn; `train` is the data's own per-message override of the mask policy (None: follow it).

    An assistant turn may call tools (`tool_calls`, after its content); a `tool` turn holds one result.
    `reasoning` is an assistant turn's trace (its thinking before the answer) as the data gave it, not
    yet rendered: None when the data has none, "" for a trace that is present but empty. The template
    alone decides how a trace renders and whether its tokens are trained.
    """

    role: str
    content: str
    train: bool | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The one contract between input and output: ordered messages, their origin, and the tools they may call.

    Each of `tools` is a tool definition in OpenAI's form, into which the shapes put every other form:
    `{"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}`, or
    `{"type": "code_interpreter"}` and the like for a tool that needs no definition.
    """

    messages: tuple[Message, ...]
    location: Location
    tools: tuple[dict, ...] = ()

    @property
    def has_tool_turns(self) -> bool:
        """Whether a turn calls a tool or holds a tool's result."""
        return any(m.tool_calls or m.role == TOOL for m in self.messages)


@dataclass(frozen=True, slots=True)
class Preference:
    """A preference sample: a shared prompt and two answers (a DPO pair), or one answer and a label (KTO).

    `chosen` and `rejected` are the turns after the prompt (most often one assistant message each).
    For KTO, `rejected` is empty and `label` says whether `chosen` is a desirable answer; for a
    pair, `label` is None. Each side renders as the conversation `prompt + side`, with the same
    template code as an SFT sample.
    """

    prompt: tuple[Message, ...]
    chosen: tuple[Message, ...]
    location: Location
    rejected: tuple[Message, ...] = ()
    label: bool | None = None
    tools: tuple[dict, ...] = ()

    def side(self, answer: tuple[Message, ...]) -> Conversation:
        """The prompt followed by one answer, as one conversation."""
        return Conversation((*self.prompt, *answer), self.location, self.tools)


@dataclass(frozen=True, slots=True)
class Record:
    """A raw record as a reader found it: decoded data, not yet known to be a conversation."""

    location: Location
    data: Any


class RecordError(Exception):
    """A record that cannot become a training sample; `reason` is one of the codes above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that was not written, with why; `raw` is the record or the unparseable text."""

    location: Location
    reason: str
    detail: str
    raw: Any = field(default=None, repr=False)

    def to_json(self) -> dict:
        """The rejects-file row: location first, so a person can jump to the line."""
        return {
            "location": str(self.location),
            "source": self.location.source,
            "line": self.location.line,
            "row": self.location.row,
            "reason": self.reason,
            "detail": self.detail,
            "record": self.raw,
        }
