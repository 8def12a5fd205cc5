"""The OpenAI `messages` shape: good records become messages, each kind of bad one gets its reason code."""

from __future__ import annotations

import pytest

from sftconv.conversation import Message, RecordError
from sftconv.shapes import OpenAIShape


def test_messages_and_train_flags():
    record = {"messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "hi", "name": "ignored"},
        {"role": "assistant", "content": "a", "weight": 0},
        {"role": "assistant", "content": "b", "weight": 1},
        {"role": "assistant", "content": "c", "train": False},
    ]}
    assert OpenAIShape()(record) == (
        Message("system", ""), Message("user", "hi"), Message("assistant", "a", False),
        Message("assistant", "b", True), Message("assistant", "c", False),
    )


@pytest.mark.parametrize("record, reason, detail", [
    ([{"role": "user"}], "not_an_object", "found list"),
    ({"conversations": []}, "missing_messages", "fields: conversations"),
    ({"messages": "hi"}, "messages_not_list", "found str"),
    ({"messages": []}, "messages_not_list", "found an empty list"),
    ({"messages": ["hi"]}, "message_not_object", "messages[0] is a str"),
    ({"messages": [{"role": "human", "content": "x"}]}, "unknown_role", "messages[0].role is 'human'"),
    ({"messages": [{"role": 1, "content": "x"}]}, "unknown_role", "messages[0].role is 1"),
    ({"messages": [{"role": "user", "content": None}]}, "content_not_string", "is NoneType"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " \n"}]},
     "empty_content", "messages[1] (assistant) has no content"),
    ({"messages": [{"role": "assistant", "content": "x", "weight": 0.5}]}, "bad_train_flag", "weight must be 0 or 1"),
    ({"messages": [{"role": "assistant", "content": "x", "weight": True}]}, "bad_train_flag", "weight must be 0 or 1"),
    ({"messages": [{"role": "assistant", "content": "x", "train": "no"}]}, "bad_train_flag", "train must be"),
])
def test_bad_records(record, reason, detail):
    with pytest.raises(RecordError) as error:
        OpenAIShape()(record)
    assert error.value.reason == reason
    assert detail in error.value.detail
