"""Checks on a record's reasoning traces beyond convert's rejects: traces the policy drops, think tags outside answers.

Convert rejects what it cannot read without guessing (`malformed_reasoning`: an unclosed block, a tag
mid-answer, two traces that differ; `misplaced_reasoning`: a trace on a user turn); validate reports
those as errors, as it reports every reject. What convert writes but a person may not mean is a
warning: a trace the `--keep-reasoning` policy leaves out, and a think tag in a prompt or a tool
result, which stays text there (a trace pasted into the wrong turn, or a template's leftovers).
"""

from __future__ import annotations

from ..conversation import ASSISTANT, CLOSE_TAG, OPEN_TAG, Preference, Record, RecordError
from ..pipeline import Source
from .codes import REASONING_DROPPED, THINK_TAG_OUTSIDE_ANSWER
from .report import Finding


def record_reasoning_findings(source: Source, record: Record) -> list[Finding]:
    """The reasoning findings of a record the shape accepts (of each side, for a preference); none otherwise."""
    try:
        shaped = source.shape(record)
    except RecordError:
        return []
    if not isinstance(shaped, Preference):
        return message_findings(source, shaped.messages)
    findings = []
    for answer in (shaped.chosen, shaped.rejected):
        findings += [f for f in message_findings(source, shaped.side(answer).messages) if f not in findings]
    return findings


def message_findings(source: Source, messages) -> list[Finding]:
    """The reasoning findings of one conversation's messages."""
    findings = []
    policy = source.template.reasoning
    if policy.applies(messages):
        dropped = [index for index, (message, trace) in enumerate(zip(messages, policy.traces(messages)))
                   if message.reasoning is not None and trace is None]
        if dropped:
            findings.append(Finding(REASONING_DROPPED, f"the trace of turn(s) {', '.join(map(str, dropped))} is "
                                                       f"left out under --keep-reasoning {policy.keep.value}"))
    tagged = next((index for index, m in enumerate(messages)
                   if m.role != ASSISTANT and (OPEN_TAG in m.content or CLOSE_TAG in m.content)), None)
    if tagged is not None:
        findings.append(Finding(THINK_TAG_OUTSIDE_ANSWER, f"turn {tagged} ({messages[tagged].role}) holds a think "
                                                          "tag, kept there as text; only an assistant's is a trace"))
    return findings
