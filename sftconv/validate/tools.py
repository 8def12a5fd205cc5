"""Checks on a record's tool turns: every call answered, every result asked for, every function defined.

Convert writes such records as the data has them, so these are warnings. Arguments that do not fit
their tool are an error (`invalid_tool_arguments`): the llama3.1 template rejects the record for it,
and under llama3, which rejects every tool turn, validate names the problem all the same.
"""

from __future__ import annotations

from ..conversation import (INVALID_TOOL_ARGUMENTS, TOOL, Conversation, Message, Preference, Record, RecordError,
                            Rejected)
from ..pipeline import Source
from ..template import Encoded
from ..template.tools import Toolbox
from .codes import TOOL_CALL_WITHOUT_RESULT, TOOL_RESULT_WITHOUT_CALL, UNDEFINED_TOOL
from .report import Finding


def record_tool_findings(source: Source, record: Record, result: Encoded | Rejected) -> list[Finding]:
    """The tool findings of a record the shape accepts (`result` is what convert made of it); none otherwise."""
    try:
        shaped = source.shape(record)
    except RecordError:
        return []
    rejected = result.reason if isinstance(result, Rejected) else None
    findings: list[Finding] = []
    for conversation in sides_of(shaped):
        if conversation.has_tool_turns:
            findings += [f for f in pairing_findings(conversation.messages) + definition_findings(conversation, rejected)
                         if f not in findings]  # a pair's two sides share their prompt's findings
    return findings


def sides_of(shaped: Conversation | Preference) -> list[Conversation]:
    """The conversations a shaped record renders: itself, or a preference sample's sides."""
    if isinstance(shaped, Conversation):
        return [shaped]
    return [shaped.side(answer) for answer in (shaped.chosen, shaped.rejected) if answer]


def pairing_findings(messages: tuple[Message, ...]) -> list[Finding]:
    """A call not followed by its results before the next turn, and a result with no call waiting for it.

    Results answer the calls of the turn before them in order, one each. A conversation may end with a
    call that has no result yet: that is a sample teaching the call.
    """
    findings: dict[str, Finding] = {}
    waiting, caller = 0, 0
    for index, message in enumerate(messages):
        if message.role == TOOL:
            if waiting:
                waiting -= 1
            else:
                findings.setdefault(TOOL_RESULT_WITHOUT_CALL, Finding(
                    TOOL_RESULT_WITHOUT_CALL, f"turn {index} is a tool result, but no call is waiting for it"))
            continue
        if waiting:
            calls = len(messages[caller].tool_calls)
            findings.setdefault(TOOL_CALL_WITHOUT_RESULT, Finding(
                TOOL_CALL_WITHOUT_RESULT, f"turn {caller} makes {calls} call(s) but {calls - waiting} result(s) "
                                          f"follow it before turn {index}"))
        waiting, caller = len(message.tool_calls), index
    return list(findings.values())


def definition_findings(conversation: Conversation, rejected: str | None) -> list[Finding]:
    """Calls to functions the record does not define, and the first call whose arguments do not fit its tool."""
    try:
        tools = Toolbox.of(conversation)
    except RecordError:
        return []  # a tool Llama 3.1 cannot render: the llama3.1 template rejects the record for it
    findings = []
    calls = [(index, call) for index, m in enumerate(conversation.messages) for call in m.tool_calls]
    undefined = sorted({call.name for _, call in calls if tools.builtin_of(call) is None} - tools.defined)
    if undefined:
        defined = f"it defines {', '.join(sorted(tools.defined))}" if tools.defined else "it defines none"
        findings.append(Finding(UNDEFINED_TOOL, f"calls {', '.join(undefined)}, which the record's tools do not "
                                                f"define ({defined})", "tools"))
    if rejected != INVALID_TOOL_ARGUMENTS:
        for index, call in calls:
            try:
                tools.call_text(call, f"turn {index}")
            except RecordError as error:
                findings.append(Finding(error.reason, error.detail))
                break
    return findings
