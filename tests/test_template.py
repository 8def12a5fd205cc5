"""Llama 3 rendering and loss masks: each template choice pinned, each policy's mask checked by decoding."""

from __future__ import annotations

import pytest

from sftconv.conversation import NO_TRAINED_TOKENS, Conversation, Location, Message, RecordError
from sftconv.template import IGNORE_INDEX, Llama3Template, MaskPolicy

HERE = Location("test.jsonl", line=1)
CHAT = (
    Message("system", "  Be brief.  "),
    Message("user", "What is 2+2?"),
    Message("assistant", "\n4\n"),
    Message("user", "And 3+3?"),
    Message("assistant", " 6 "),
)


def render(tokenizer, messages, policy=MaskPolicy.ASSISTANT):
    return Llama3Template(tokenizer, policy).render(Conversation(tuple(messages), HERE))


def trained_spans(tokenizer, sample) -> list[str]:
    """The decoded text of each maximal run of trained tokens."""
    spans, current = [], []
    for token, trained in zip(sample.input_ids, sample.loss_mask):
        if trained:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


def test_rendered_text(tokenizer):
    sample = render(tokenizer, CHAT)
    assert tokenizer.decode(sample.input_ids) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n6<|eot_id|>"
    )


def test_one_bos_no_generation_prompt(tokenizer):
    ids = render(tokenizer, CHAT).input_ids
    assert ids.count(tokenizer.bos_id) == 1 and ids[0] == tokenizer.bos_id
    assert ids[-1] == tokenizer.eot_id
    assert tokenizer.special_tokens["<|end_of_text|>"] not in ids


def test_header_ids_are_the_documented_constants(tokenizer):
    assert Llama3Template(tokenizer).header_ids("assistant") == [128006, 78191, 128007, 271]


@pytest.mark.parametrize("policy, expected", [
    (MaskPolicy.ASSISTANT, ["4<|eot_id|>", "6<|eot_id|>"]),
    (MaskPolicy.LAST, ["6<|eot_id|>"]),
])
def test_mask_trains_exactly_the_answers(tokenizer, policy, expected):
    sample = render(tokenizer, CHAT, policy)
    assert trained_spans(tokenizer, sample) == expected
    assert len(sample.loss_mask) == len(sample.input_ids) == len(sample.labels)


def test_mask_all_trains_everything_but_bos(tokenizer):
    sample = render(tokenizer, CHAT, MaskPolicy.ALL)
    assert sample.loss_mask == [0] + [1] * (len(sample.input_ids) - 1)


def test_labels_are_ids_or_ignore_index(tokenizer):
    sample = render(tokenizer, CHAT)
    for token, trained, label in zip(sample.input_ids, sample.loss_mask, sample.labels):
        assert label == (token if trained else IGNORE_INDEX)


def test_message_flag_overrides_policy(tokenizer):
    messages = [
        Message("user", "Q1"), Message("assistant", "bad answer", train=False),
        Message("user", "Q2", train=True), Message("assistant", "good answer"),
    ]
    assert trained_spans(tokenizer, render(tokenizer, messages)) == ["Q2<|eot_id|>", "good answer<|eot_id|>"]
    assert trained_spans(tokenizer, render(tokenizer, messages, MaskPolicy.LAST)) == [
        "Q2<|eot_id|>", "good answer<|eot_id|>"]


def test_no_trained_token_is_an_error_not_a_sample(tokenizer):
    template = Llama3Template(tokenizer)
    [result] = template.render_batch([Conversation((Message("user", "hello"),), HERE)])
    assert isinstance(result, RecordError) and result.reason == NO_TRAINED_TOKENS
    with pytest.raises(RecordError, match=NO_TRAINED_TOKENS):
        template.render(Conversation((Message("assistant", "x", train=False),), HERE))


def test_batch_equals_one_by_one(tokenizer):
    template = Llama3Template(tokenizer)
    chats = [Conversation(CHAT[: n + 1], HERE) for n in range(2, len(CHAT))]
    assert template.render_batch(chats) == [template.render(c) for c in chats]
