"""Rules every conversation meets, whatever its shape: the system prompt, no empty turns, the order of roles."""

from __future__ import annotations

from dataclasses import dataclass

from ..conversation import (
    ASSISTANT,
    ASSISTANT_BEFORE_USER,
    BAD_TRAIN_FLAG,
    CONSECUTIVE_SAME_ROLE,
    EMPTY_CONTENT,
    NO_ASSISTANT_TURN,
    SYSTEM,
    SYSTEM_NOT_FIRST,
    TOOL,
    USER,
    Message,
    RecordError,
)

MERGE_SEPARATOR = "\n\n"  # between the contents of merged consecutive turns


@dataclass(frozen=True, kw_only=True)
class TurnRules:
    """Checks (and, where asked, repairs) a shape's messages before they are rendered.

    In order: user and assistant turns that are empty after trimming are rejected (`empty_content`)
    or, with `drop_empty_turns`, dropped (an empty system prompt is kept, as chat templates render it,
    and so are an assistant turn that calls tools or holds a reasoning trace, and a tool's empty
    result);
    `system` is added as the system prompt where there is none, and with `replace_system` replaces
    the record's own; a system turn anywhere but first is rejected (`system_not_first`); two turns of
    the same role in a row are rejected (`consecutive_same_role`) or, with `merge_consecutive`,
    joined by a blank line (tool results may follow each other, one per parallel call; a turn that
    calls tools is never joined to the next, whose text would come before the calls, nor is a turn with a
    reasoning trace joined to the one before, where its trace would land mid-answer); the first
    turn after the system prompt must be the user's (`assistant_before_user`); and there must be an
    assistant turn (`no_assistant_turn`).
    A conversation may end with a user turn: it is context, and is never trained.

    Args:
        system: a system prompt for conversations that have none (default None: add nothing).
        replace_system: use `system` even where a conversation has its own (default False).
        merge_consecutive: join same-role turns in a row instead of rejecting the record (default False).
        drop_empty_turns: drop empty user/assistant turns instead of rejecting the record (default False).

    Example:
        >>> TurnRules(system="Be brief.")((Message("user", "Hi"), Message("assistant", "Hello")))
        (Message(role='system', content='Be brief.', train=None), Message(role='user', ...), ...)
    """

    system: str | None = None
    replace_system: bool = False
    merge_consecutive: bool = False
    drop_empty_turns: bool = False

    def __call__(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        if self.system is None and well_formed(messages):
            return messages  # the common case, told in one pass: nothing to repair and nothing to reject
        return self._applied(messages)

    def _applied(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """The rules one by one, in the order the class docstring gives."""
        messages = self._without_empty(messages)
        messages = self._with_system(messages)
        for index, message in enumerate(messages[1:], 1):
            if message.role == SYSTEM:
                raise RecordError(SYSTEM_NOT_FIRST, f"turn {index} is a system turn; only the first turn may be")
        messages = self._alternating(messages)
        turns = [m for m in messages if m.role != SYSTEM]
        if turns and turns[0].role == ASSISTANT:
            raise RecordError(ASSISTANT_BEFORE_USER, "the first turn after the system prompt is the assistant's; "
                                                     "it must be the user's")
        if not any(m.role == ASSISTANT for m in turns):
            raise RecordError(NO_ASSISTANT_TURN, "no assistant turn, so nothing to learn from")
        return messages

    def _without_empty(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """The messages without empty user/assistant turns, or a rejection naming the first one."""
        kept = []
        for index, message in enumerate(messages):
            if message.role in (USER, ASSISTANT) and not (message.tool_calls or message.reasoning) \
                    and is_blank(message.content):
                if not self.drop_empty_turns:
                    raise RecordError(EMPTY_CONTENT, f"turn {index} ({message.role}) has no content")
                continue
            kept.append(message)
        return tuple(kept)

    def _with_system(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """The messages with the configured system prompt added or put in place of the record's own."""
        if self.system is None:
            return messages
        if messages and messages[0].role == SYSTEM:
            return (Message(SYSTEM, self.system), *messages[1:]) if self.replace_system else messages
        return (Message(SYSTEM, self.system), *messages)

    def _alternating(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """The messages with no two same-role turns in a row: merged if asked, else a rejection."""
        merged: list[Message] = []
        for index, message in enumerate(messages):
            previous = merged[-1] if merged else None
            if previous is None or previous.role != message.role or message.role in (SYSTEM, TOOL):
                merged.append(message)
                continue
            if not self.merge_consecutive:
                raise RecordError(CONSECUTIVE_SAME_ROLE, f"turns {index - 1} and {index} are both {message.role}; "
                                                         "pass --merge-consecutive to join them")
            if previous.tool_calls:
                raise RecordError(CONSECUTIVE_SAME_ROLE, f"turns {index - 1} and {index} are both {message.role} "
                                  f"and cannot be merged: turn {index - 1} calls tools but no result follows it")
            if previous.train != message.train:
                raise RecordError(BAD_TRAIN_FLAG, f"turns {index - 1} and {index} cannot be merged: "
                                                  "their train flags differ")
            if message.reasoning is not None:
                raise RecordError(CONSECUTIVE_SAME_ROLE, f"turns {index - 1} and {index} are both {message.role} "
                                  f"and cannot be merged: turn {index}'s reasoning trace would land mid-answer")
            merged[-1] = Message(message.role, previous.content + MERGE_SEPARATOR + message.content, message.train,
                                 message.tool_calls, previous.reasoning)
        return tuple(merged)


def well_formed(messages: tuple[Message, ...]) -> bool:
    """Whether the messages pass every rule as they are: no empty user or assistant turn, a system turn
    only first, no two same-role turns in a row but tool results, a user turn first after the system
    prompt, and an assistant turn."""
    previous, answered = None, False
    for message in messages:
        role = message.role
        if role == SYSTEM:
            if previous is not None:
                return False
        elif previous is None or previous == SYSTEM:
            if role == ASSISTANT:
                return False
        elif role == previous and role != TOOL:
            return False
        if role in (USER, ASSISTANT) and not (message.tool_calls or message.reasoning) and is_blank(message.content):
            return False
        answered = answered or role == ASSISTANT
        previous = role
    return answered


def is_blank(text: str) -> bool:
    """`not text.strip()`, without copying the text."""
    return not text or text.isspace()
