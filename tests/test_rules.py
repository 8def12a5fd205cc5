"""Turn rules: the system prompt options, empty turns, and the order of roles, each broken rule a reason code."""

from __future__ import annotations

import pytest

from sftconv.conversation import Message, RecordError
from sftconv.shapes import TurnRules

S, U, A = "system", "user", "assistant"


def chat(*turns: str) -> tuple[Message, ...]:
    """Messages from "role:content" strings."""
    return tuple(Message(*turn.split(":", 1)) for turn in turns)


def reason(rules: TurnRules, messages) -> tuple[str, str]:
    with pytest.raises(RecordError) as error:
        rules(messages)
    return error.value.reason, error.value.detail


def test_good_conversations_pass_unchanged():
    for messages in [chat("user:q", "assistant:a"), chat("system:", "user:q", "assistant:a", "user:more")]:
        assert TurnRules()(messages) == messages


@pytest.mark.parametrize("turns, code, detail", [
    (["user:q", "system:s", "assistant:a"], "system_not_first", "turn 1 is a system turn"),
    (["user:q", "user:q2", "assistant:a"], "consecutive_same_role", "turns 0 and 1 are both user; pass --merge-consecutive"),
    (["user:q", "assistant:a", "assistant:b"], "consecutive_same_role", "turns 1 and 2 are both assistant"),
    (["system:s", "assistant:a"], "assistant_before_user", "the first turn after the system prompt is the assistant's"),
    (["assistant:a", "user:q"], "assistant_before_user", ""),
    (["system:s", "user:q"], "no_assistant_turn", "no assistant turn"),
    (["system:s"], "no_assistant_turn", ""),
    (["user:q", "assistant: \n "], "empty_content", "turn 1 (assistant) has no content"),
])
def test_each_broken_rule_has_its_code(turns, code, detail):
    got_code, got_detail = reason(TurnRules(), chat(*turns))
    assert got_code == code and detail in got_detail


def test_system_prompt_added_kept_or_replaced():
    plain, own = chat("user:q", "assistant:a"), chat("system:mine", "user:q", "assistant:a")
    assert TurnRules(system="new")(plain) == chat("system:new", "user:q", "assistant:a")
    assert TurnRules(system="new")(own) == own
    assert TurnRules(system="new", replace_system=True)(own) == chat("system:new", "user:q", "assistant:a")
    assert TurnRules(system="new", replace_system=True)(plain) == chat("system:new", "user:q", "assistant:a")


def test_merge_consecutive_joins_with_a_blank_line():
    rules = TurnRules(merge_consecutive=True)
    assert rules(chat("user:a", "user:b", "user:c", "assistant:x", "assistant:y")) == chat(
        "user:a\n\nb\n\nc", "assistant:x\n\ny")
    trained = (Message(U, "q"), Message(A, "x", False), Message(A, "y", False))
    assert rules(trained) == (Message(U, "q"), Message(A, "x\n\ny", False))
    assert reason(rules, (Message(U, "q"), Message(A, "x", False), Message(A, "y")))[0] == "bad_train_flag"
    assert reason(rules, chat("user:q", "system:s", "system:t", "assistant:a"))[0] == "system_not_first"


def test_drop_empty_turns_then_apply_the_order_rules():
    rules = TurnRules(drop_empty_turns=True)
    assert reason(rules, chat("user:q", "assistant:", "user:q2", "assistant:a"))[0] == "consecutive_same_role"
    both = TurnRules(drop_empty_turns=True, merge_consecutive=True)
    assert both(chat("user:q", "assistant:", "user:q2", "assistant:a")) == chat("user:q\n\nq2", "assistant:a")
    assert rules(chat("system:", "user:q", "assistant:a", "user: ")) == chat("system:", "user:q", "assistant:a")
    assert reason(rules, chat("user:q", "assistant:  "))[0] == "no_assistant_turn"
