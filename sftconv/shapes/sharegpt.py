"""ShareGPT records: `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}`."""

from __future__ import annotations

from typing import Any

from ..conversation import (
    ASSISTANT,
    BAD_TOOL_CALL,
    MESSAGE_NOT_OBJECT,
    SYSTEM,
    TOOL,
    UNKNOWN_ROLE,
    USER,
    Message,
    RecordError,
)
from .base import Shape
from .reasoning import field_trace, one_trace, split_parts
from .tools import calls_in_text, result_text, tool_definitions
from .turns import (TOOL_CALL, fields_seen, list_field, non_empty_list, optional_text, role_of, text_of, train_flag,
                    type_name)

LIST_FIELDS = ("conversations", "conversation")  # ms-swift writes the singular


class ShareGPTShape(Shape):
    """Reads the ShareGPT shape and its pair-list variant.

    Expects `{"system": str (optional), "conversations": [{"from": "human"|"gpt"|"system", "value": str}, ...]}`.
    `from` is matched through aliases: human/user, gpt/assistant/model/bot, system. The list may also
    be called `conversation`, and may hold `{"human": str, "assistant": str}` pairs instead (one user
    and one assistant turn each, as ms-swift writes them). A `weight`, `loss_weight`, `train` or `loss`
    field on a turn works as in the OpenAI shape.

    Tools, as LLaMA-Factory writes them (glaive): a `function_call` turn is the assistant calling a
    tool, its value the JSON text of `{"name": ..., "arguments": ...}` or of a list of them (parallel
    calls); an `observation` turn is a tool's result. The record's `tools` (a list, or its JSON text)
    are the definitions the calls may use.

    Reasoning: a turn's trace in `reasoning_content`, `reasoning` or `thinking` (or the field
    `--reasoning-field` names), in `reasoning`/`thinking` parts of its value, or inline (`<think>...</think>`).

    Args:
        roles: extra role aliases, such as `{"bot": "assistant"}`.

    Raises:
        RecordError: with the reason code of the first problem found.
    """

    name = "sharegpt"
    fields = {"messages": "conversations", "role": "from", "content": "value", "system": "system", "tools": "tools",
              "reasoning": "reasoning"}

    def __call__(self, data: Any) -> tuple[Message, ...]:
        key = list_field(data, LIST_FIELDS)
        turns = non_empty_list(data[key], key)
        system = optional_text(data, "system")
        messages = [Message(SYSTEM, system)] if system is not None else []
        for index, turn in enumerate(turns):
            messages += self._turn(f"{key}[{index}]", turn)
        return tuple(messages)

    def tools(self, data: Any) -> tuple[dict, ...]:
        return tool_definitions(data) if isinstance(data, dict) else ()

    def _turn(self, where: str, turn: Any) -> list[Message]:
        """One `{from, value}` turn, or the two messages of a `{human, assistant}` pair."""
        if not isinstance(turn, dict):
            raise RecordError(MESSAGE_NOT_OBJECT, f"{where} is {type_name(turn)}, not an object")
        if "from" in turn:
            role = role_of(turn["from"], self.roles, f"{where}.from")
            value, train = turn.get("value"), train_flag(turn, where)
            if role == TOOL_CALL:
                return [Message(ASSISTANT, "", train, calls_in_text(value, f"{where}.value"))]
            if role == TOOL:
                return [Message(TOOL, result_text(value, f"{where}.value"), train)]
            value, part_trace, calls = split_parts(value, f"{where}.value")
            if calls and role != ASSISTANT:
                raise RecordError(BAD_TOOL_CALL, f"{where} is a {role} turn with tool calls; only assistants call tools")
            trace = one_trace(field_trace(turn, where), part_trace, where)
            return [Message(role, text_of(value, f"{where}.value"), train, calls, trace)]
        by_role = {self.roles.get(k.lower()): k for k in turn if isinstance(k, str)}
        if USER in by_role and ASSISTANT in by_role:
            user, assistant = by_role[USER], by_role[ASSISTANT]
            return [Message(USER, text_of(turn[user], f"{where}.{user}")),
                    Message(ASSISTANT, text_of(turn[assistant], f"{where}.{assistant}"))]
        raise RecordError(UNKNOWN_ROLE, f"{where} has no 'from', nor a human/assistant pair "
                                        f"(fields: {fields_seen(turn)})")
