"""Reasoning traces: read from every form, rendered exactly as the references render the same text, masked by policy.

The references (tests/references.py) render a message whose content is the whole text
`<think>\\n{trace}\\n</think>\\n\\n{answer}`; sftconv, given the trace apart, must give the same ids.
Masks are checked against an independent rendering: the Hugging Face tokenizer's character offsets
over the whole rendered text, each token labelled by the part of the text it falls in.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.conversation import (MALFORMED_REASONING, MISPLACED_REASONING, Conversation, Location, Message, Record,
                                  RecordError)
from sftconv.pipeline import InputShape
from sftconv.shapes import FieldMapping, OpenAIShape, TurnRules
from sftconv.template import Llama3Template, Llama31Template, MaskPolicy
from sftconv.template.llama3 import trained_flags
from sftconv.template.reasoning import KeepReasoning, ReasoningPolicy
from sftconv.tokenizer import special_token_names

from .references import hf_llama3_ids, hf_tokenizer, meta_llama3_ids
from .test_exactness import random_text

PIECES = ["<think>", "</think>", "think>", "<think", ">", ">\n\n", "\n\n", "\n", " ", "  \n", "\t", "\u00a0", "\u3000",
          "</", "<", "/>", "!", "?", ".", "中文", "é", "👍", "42", "a", "The", " answer", "'s", "\r\n", "\x1c", "\u200b"]
TEXT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=8).map("".join)
TRACE = TEXT.filter(lambda t: "<think>" not in t and "</think>" not in t)
ANSWER = TRACE.filter(lambda t: t.strip())
SPECIALS = special_token_names()


def inline(trace: str, answer: str) -> str:
    """The one documented form, as a reference gets it: the whole content."""
    return f"<think>\n{trace.strip()}\n</think>\n\n{answer.strip()}"


def shaped(record: dict) -> Conversation:
    """A record through the convert path's own shaping (shape, inline traces, turn rules)."""
    return InputShape(OpenAIShape(), FieldMapping(), TurnRules())(Record(Location("t"), record))


def chat(*messages: Message) -> Conversation:
    return Conversation(messages, Location("t"))


@settings(max_examples=400, deadline=None)
@given(TRACE, ANSWER, st.booleans())
def test_trace_renders_as_the_references_render_the_whole_text(tokenizer, trace, answer, batched):
    template = Llama3Template(tokenizer)
    conversation = chat(Message("user", "q"), Message("assistant", answer, reasoning=trace))
    ids = (template.render_batch([conversation, conversation])[1] if batched else template.render(conversation)).input_ids
    content = inline(trace, answer)
    assert ids == meta_llama3_ids([{"role": "user", "content": "q"}, {"role": "assistant", "content": content}])
    if not any(name in content for name in SPECIALS):  # HF reads special-token text as control tokens
        assert ids == hf_llama3_ids([{"role": "user", "content": "q"}, {"role": "assistant", "content": content}])


@settings(max_examples=300, deadline=None)
@given(TRACE, ANSWER, st.sampled_from(["reasoning_content", "reasoning", "thinking", "part", "parts"]))
def test_a_trace_in_a_field_gives_the_ids_of_the_same_trace_inline(tokenizer, trace, answer, form):
    template = Llama3Template(tokenizer)
    message = {"role": "assistant", "content": answer}
    if form == "part":
        message["content"] = [{"type": "text", "text": answer}, {"type": "reasoning", "value": trace}]
    elif form == "parts":
        message["content"] = [{"type": "thinking", "text": trace}, {"type": "text", "value": answer}]
    else:
        message[form] = trace
    given_apart = shaped({"messages": [{"role": "user", "content": "q"}, message]})
    given_inline = shaped({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": inline(trace, answer)}]})
    assert given_apart.messages[1].reasoning.strip() == given_inline.messages[1].reasoning.strip() == trace.strip()
    assert template.render(given_apart).input_ids == template.render(given_inline).input_ids


def test_an_inline_block_and_the_same_trace_in_a_field_are_one_trace(tokenizer):
    record = {"messages": [{"role": "user", "content": "q"},
                           {"role": "assistant", "content": "<think>t</think>a", "reasoning_content": " t "}]}
    sample = Llama3Template(tokenizer).render(shaped(record))
    assert tokenizer.decode(sample.input_ids).count("<think>") == 1


@pytest.mark.parametrize("content, detail", [
    ("<think>never closed", "never closes it"),
    ("an answer <think>mid</think>", "not a block at the start"),
    ("an answer</think>", "</think> at character 9"),
    ("<think>a</think>b<think>c</think>d", "another think tag after"),
])
def test_malformed_inline_blocks_are_rejected_not_guessed(content, detail):
    with pytest.raises(RecordError) as error:
        shaped({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]})
    assert error.value.reason == MALFORMED_REASONING and detail in error.value.detail


@pytest.mark.parametrize("message, reason", [
    ({"role": "assistant", "content": "a", "reasoning_content": "x</think>y"}, MALFORMED_REASONING),
    ({"role": "assistant", "content": "a", "reasoning_content": "x", "thinking": "y"}, MALFORMED_REASONING),
    ({"role": "assistant", "content": "<think>x</think>a", "reasoning": "y"}, MALFORMED_REASONING),
    ({"role": "assistant", "content": [{"type": "reasoning", "text": "x"}, "a"], "reasoning": "y"}, MALFORMED_REASONING),
])
def test_traces_that_cannot_be_read_without_guessing_are_rejected(message, reason):
    with pytest.raises(RecordError) as error:
        shaped({"messages": [{"role": "user", "content": "q"}, message]})
    assert error.value.reason == reason


def test_a_trace_on_a_user_turn_is_rejected():
    with pytest.raises(RecordError) as error:
        shaped({"messages": [{"role": "user", "content": "q", "reasoning_content": "t"},
                             {"role": "assistant", "content": "a"}]})
    assert error.value.reason == MISPLACED_REASONING


def test_user_text_that_mentions_tags_is_left_alone(tokenizer):
    conversation = shaped({"messages": [{"role": "user", "content": "what does </think> do?"},
                                        {"role": "assistant", "content": "It closes a block."}]})
    assert conversation.messages[0].content == "what does </think> do?"
    assert conversation.messages[1].reasoning is None


def test_an_empty_trace_renders_an_empty_block_and_a_trace_alone_ends_at_its_tag(tokenizer):
    template = Llama3Template(tokenizer)
    empty = template.render(chat(Message("user", "q"), Message("assistant", "a", reasoning="")))
    assert tokenizer.decode(empty.input_ids).endswith("<think>\n\n</think>\n\na<|eot_id|>")
    alone = template.render(shaped({"messages": [{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "<think>only</think>  "}]}))
    assert tokenizer.decode(alone.input_ids).endswith("<|end_header_id|>\n\n<think>\nonly\n</think><|eot_id|>")
    assert alone.input_ids == hf_llama3_ids([{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "<think>\nonly\n</think>"}])


def test_the_tags_are_ordinary_text(tokenizer):
    sample = Llama3Template(tokenizer).render(chat(Message("user", "q"), Message("assistant", "a", reasoning="t")))
    control = [t for t in sample.input_ids if t >= 128_000]
    assert control == [tokenizer.bos_id] + [128006, 128007, tokenizer.eot_id] * 2


# Masks under every policy, against an independent rendering.

def reference_mask(messages: list[Message], flags: list[bool], traces: list[str | None], train_headers: bool,
                   train_traces: bool) -> tuple[list[int], list[int]]:
    """Ids and mask from the whole rendered text tokenized by Hugging Face, each token labelled by its characters."""
    text, spans = "<|begin_of_text|>", [(0, len("<|begin_of_text|>"), False)]
    for message, trained, trace in zip(messages, flags, traces):
        header = f"<|start_header_id|>{message.role}<|end_header_id|>\n\n"
        spans.append((len(text), len(text) + len(header), trained and train_headers))
        text += header
        answer = message.content.strip()
        if trace is not None:
            block = f"<think>\n{trace.strip()}\n</think>" + ("\n\n" if answer else "")
            spans.append((len(text), len(text) + len(block), trained and train_traces))
            text += block
        spans.append((len(text), len(text) + len(answer) + len("<|eot_id|>"), trained))
        text += answer + "<|eot_id|>"
    encoding = hf_tokenizer()(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = []
    for start, end in encoding["offset_mapping"]:
        (trained,) = {t for s, e, t in spans if s <= start < e and end <= e}  # no token crosses two parts
        mask.append(int(trained))
    return encoding["input_ids"], mask


def expected_traces(messages: list[Message], keep: KeepReasoning, empty: bool) -> list[str | None]:
    """Which trace each message renders under a policy, worked out apart from the template's own code."""
    assistants = [i for i, m in enumerate(messages) if m.role == "assistant"]
    kept = {KeepReasoning.ALL: set(assistants), KeepReasoning.LAST: set(assistants[-1:]), KeepReasoning.NONE: set()}
    return [(m.reasoning if m.reasoning is not None else "" if empty else None) if i in kept[keep] else None
            for i, m in enumerate(messages)]


def random_traced_chat(rng: random.Random) -> list[Message]:
    messages = [Message("system", random_text(rng))] if rng.random() < 0.5 else []
    for _ in range(rng.randint(1, 3)):
        messages.append(Message("user", random_text(rng)))
        trace = None if rng.random() < 0.3 else "" if rng.random() < 0.1 else random_text(rng)
        train = None if rng.random() < 0.8 else rng.random() < 0.5
        messages.append(Message("assistant", random_text(rng), train, reasoning=trace))
    return [m for m in messages
            if not any(s in m.content + (m.reasoning or "") for s in SPECIALS) and not m.content.isspace()]


POLICIES = list(itertools.product(KeepReasoning, (True, False), (False, True), MaskPolicy))


@pytest.mark.parametrize("keep, train, empty, mask_policy", POLICIES,
                         ids=[f"{k.value}-{'train' if t else 'notrain'}-{'empty' if e else 'noempty'}-{m.value}"
                              for k, t, e, m in POLICIES])
def test_masks_under_each_policy_match_an_independent_rendering(tokenizer, keep, train, empty, mask_policy):
    policy = ReasoningPolicy(keep=keep, train=train, empty=empty)
    template = Llama3Template(tokenizer, mask_policy, reasoning=policy)
    rng = random.Random(f"{keep}{train}{empty}{mask_policy}")
    chats = [random_traced_chat(rng) for _ in range(40)]
    chats = [c for c in chats if any(m.role == "assistant" for m in c) and c[0].role != "assistant"]
    results = template.render_batch([Conversation(tuple(c), Location("t")) for c in chats])
    for messages, result in zip(chats, results):
        flags = trained_flags(tuple(messages), mask_policy)
        if not any(flags):
            continue
        ids, mask = reference_mask(messages, flags, expected_traces(messages, keep, empty),
                                   mask_policy is MaskPolicy.ALL, train)
        assert result.input_ids[1:] == ids[1:] and result.input_ids[0] == tokenizer.bos_id
        assert result.loss_mask == mask


def test_counts_add_up(tokenizer):
    policy = ReasoningPolicy(keep=KeepReasoning.LAST, train=False, empty=True)
    template = Llama3Template(tokenizer, reasoning=policy)
    messages = (Message("user", "q"), Message("assistant", "a", reasoning="first"), Message("user", "q2"),
                Message("assistant", "b"))
    sample = template.render(chat(*messages))
    counts = template.reasoning_counts
    assert (counts.turns, counts.filled, counts.dropped, counts.trained_tokens) == (1, 1, 1, 0)
    assert counts.tokens == len(tokenizer.encode("<think>\n\n</think>\n\n"))
    assert tokenizer.decode(sample.input_ids).count("<think>") == 1


@settings(max_examples=200, deadline=None)
@given(TRACE, ANSWER, st.booleans())
def test_llama31_renders_a_trace_as_the_same_text_inline(tokenizer, trace, answer, trained):
    """Llama 3.1 renders contents as llama3 does (tests/test_llama31_references.py); a trace must not change that."""
    template = Llama31Template(tokenizer, reasoning=ReasoningPolicy(train=trained))
    apart = template.render(chat(Message("user", "q"), Message("assistant", answer, reasoning=trace)))
    whole = template.render(chat(Message("user", "q"), Message("assistant", inline(trace, answer))))
    assert apart.input_ids == whole.input_ids
    block = len(tokenizer.encode(f"<think>\n{trace.strip()}\n</think>\n\n"))
    assert sum(whole.loss_mask) - sum(apart.loss_mask) == (0 if trained else block)


def test_merging_keeps_the_first_turns_trace_and_refuses_to_bury_the_second():
    rules = TurnRules(merge_consecutive=True)
    merged = rules((Message("user", "q"), Message("assistant", "a", reasoning="t"), Message("assistant", "b")))
    assert merged[1] == Message("assistant", "a\n\nb", reasoning="t")
    with pytest.raises(RecordError) as error:
        rules((Message("user", "q"), Message("assistant", "a"), Message("assistant", "b", reasoning="t")))
    assert "trace would land mid-answer" in error.value.detail
