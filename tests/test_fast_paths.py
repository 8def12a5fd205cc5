"""The shortcuts taken for the common record agree with the full checks they skip, on random records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.conversation import Message, RecordError, ToolCall
from sftconv.markers import FOREIGN_MARKERS
from sftconv.shapes import OpenAIShape, TurnRules
from sftconv.shapes.rules import well_formed
from sftconv.validate.text import MARKER, first_marker, may_hold_marker, strings

ROLE_NAMES = ["system", "user", "assistant", "tool", "USER", "Gpt", "human", "function_call", "bot", "nobody"]
PIECES = ["hi", " ", "\n", "", "<|eot_id|>", "<|x|>", "<|", "|>", "<", "[", "INST]", "\ud800", "\x00", "é", "🙂",
          '"', "\\", "\u2028", *FOREIGN_MARKERS]
texts = st.lists(st.sampled_from(PIECES), max_size=4).map("".join) | st.text(max_size=8)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(texts | st.integers(), inner, max_size=4), max_leaves=16)


def walked_marker(data) -> str | None:
    """The first marker in any string of the record, found by searching every string."""
    return next((match.group() for _, text in strings(data, ()) if (match := MARKER.search(text))), None)


@settings(max_examples=500, deadline=None)
@given(values)
def test_the_json_pre_test_misses_no_marker(data):
    found = first_marker(data)
    expected = walked_marker(data)
    assert (found is None) == (expected is None)
    if expected is not None:
        assert may_hold_marker(data)
        assert expected in found.detail


def test_the_json_pre_test_passes_records_without_markers():
    assert not may_hold_marker({"messages": [{"role": "user", "content": "for (i = 0; i < n; i++) a[i] = 0;"}]})
    assert may_hold_marker({"messages": [{"role": "user", "content": "say [INST] now"}]})
    assert may_hold_marker({"<s>": "a marker in a key"})  # a key is not text: the walk decides, and finds nothing
    assert first_marker({"<s>": "a marker in a key"}) is None
    assert first_marker({"text": "\ud800 then <|eot_id|>"}).field == "text"  # not JSON: walked


plain_messages = st.fixed_dictionaries({"role": st.sampled_from(ROLE_NAMES) | scalars, "content": values})
messages = plain_messages | st.fixed_dictionaries(
    {"role": st.sampled_from(ROLE_NAMES)}, optional={"content": values, "weight": st.sampled_from([0, 1, 2, None]),
                                                     "tool_calls": st.just([{"function": {"name": "f"}}])})


def shaped_one_by_one(shape: OpenAIShape, data: dict) -> tuple[Message, ...] | tuple[str, str]:
    """The messages as the full per-message checks make them, or the first error's reason and detail."""
    try:
        return tuple(shape._message(index, message) for index, message in enumerate(data["messages"]))
    except RecordError as error:
        return error.reason, error.detail


@settings(max_examples=500, deadline=None)
@given(st.lists(messages, min_size=1, max_size=5))
def test_plain_openai_messages_are_read_as_the_full_checks_read_them(items):
    shape, data = OpenAIShape({"bot": "assistant"}), {"messages": items}
    try:
        result = shape(data)
    except RecordError as error:
        result = error.reason, error.detail
    assert result == shaped_one_by_one(shape, data)


turns = st.builds(Message, st.sampled_from(["system", "user", "assistant", "tool"]),
                  st.sampled_from(["", " ", "\n\t", "hi", " hi "]), st.sampled_from([None, True, False]),
                  st.sampled_from([(), (ToolCall("f", {}),)]))


@settings(max_examples=1000, deadline=None)
@given(st.lists(turns, max_size=6).map(tuple), st.booleans(), st.booleans())
def test_well_formed_conversations_are_what_the_rules_leave_as_they_are(conversation, merge, drop):
    rules = TurnRules(merge_consecutive=merge, drop_empty_turns=drop)
    try:
        applied = rules._applied(conversation)
    except RecordError as error:
        applied = error
    if well_formed(conversation):
        assert applied == conversation
    try:
        assert rules(conversation) == applied
    except RecordError as error:
        assert (error.reason, error.detail) == (applied.reason, applied.detail)
