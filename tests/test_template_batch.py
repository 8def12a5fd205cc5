"""Rendering many conversations in one tokenizer call gives, sample for sample, what rendering each message alone gives."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.conversation import NO_TRAINED_TOKENS, Conversation, Location, Message
from sftconv.template import Llama3Template, MaskPolicy, Samples
from sftconv.template.llama3 import SEPARATOR
from sftconv.tokenizer import Tokenizer

HERE = Location("test.jsonl", line=1)

PIECES = ["Hello", " world", "\n\n", "  ", "\t", "\u3000", "\x1c", "日本語", "🙂", "<|eot_id|>", "<|start_header_id|>",
          SEPARATOR, "<|begin_of_text|>", "<|", "|>", "<|reserved_special_token_5|>", "\ud800", "\udc00x", "42", "'s",
          "user", "assistant<|end_header_id|>"]


def one_by_one(tokenizer, messages: tuple[Message, ...], policy: MaskPolicy) -> tuple[list[int], list[int]] | None:
    """The Llama 3 layout built message by message from `Tokenizer.encode` (None: nothing trained)."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    ids, mask = [tokenizer.bos_id], [0]
    for i, message in enumerate(messages):
        trained = message.train if message.train is not None else (
            policy is MaskPolicy.ALL or (i == last if policy is MaskPolicy.LAST else message.role == "assistant"))
        header = [tokenizer.special_tokens["<|start_header_id|>"], *tokenizer.encode(message.role),
                  tokenizer.special_tokens["<|end_header_id|>"], *tokenizer.encode("\n\n")]
        body = tokenizer.encode(message.content.strip())
        ids += [*header, *body, tokenizer.eot_id]
        mask += [int(trained and policy is MaskPolicy.ALL)] * len(header) + [int(trained)] * (len(body) + 1)
    return (ids, mask) if any(mask) else None


def random_chat(rng: random.Random) -> tuple[Message, ...]:
    def text() -> str:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8)))

    messages = [Message("system", text())] if rng.random() < 0.4 else []
    for _ in range(rng.randint(1, 3)):
        messages.append(Message("user", text(), rng.choice([None, None, True, False])))
        messages.append(Message("assistant", text(), rng.choice([None, None, None, False])))
    return tuple(messages)


@pytest.mark.parametrize("policy", list(MaskPolicy))
def test_one_call_equals_one_message_at_a_time(tokenizer, policy):
    rng = random.Random(policy.value)
    chats = [random_chat(rng) for _ in range(400)]
    samples, errors = Llama3Template(tokenizer, policy).render_samples([Conversation(c, HERE) for c in chats])
    expected = [one_by_one(tokenizer, chat, policy) for chat in chats]
    assert [e is None for e in expected] == [error is not None for error in errors]
    assert all(error.reason == NO_TRAINED_TOKENS for error in errors if error is not None)
    assert samples.split() == [e for e in expected if e is not None]
    assert samples.input_ids.dtype == np.int32 and samples.loss_mask.dtype == np.uint8
    assert any("<|" in m.content for chat in chats for m in chat)  # both paths were taken
    assert any(all("<|" not in m.content for m in chat) for chat in chats)


def test_empty_batch(tokenizer):
    samples, errors = Llama3Template(tokenizer).render_samples([])
    assert len(samples) == 0 and errors == [] and samples.split() == []


def test_samples_take_and_concat():
    samples = Samples.from_lists([([1, 2], [0, 1]), ([3], [1]), ([4, 5, 6], [0, 0, 1])])
    assert samples.take([2, 0]).split() == [([4, 5, 6], [0, 0, 1]), ([1, 2], [0, 1])]
    assert Samples.concat([samples.take([1]), samples]).split() == [([3], [1]), *samples.split()]
    assert samples.take([]).split() == []


@pytest.fixture(scope="module", params=["tiktoken", "fastokens"])
def each_backend(request) -> Tokenizer:
    from sftconv.tokenizer_backends import fastokens_version

    if request.param == "fastokens" and fastokens_version() is None:
        pytest.skip("fastokens does not install on this platform")
    return Tokenizer(backend=request.param)


@pytest.mark.parametrize("policy", list(MaskPolicy))
def test_each_backend_equals_one_message_at_a_time(each_backend, policy):
    """tiktoken renders one marked text, fastokens a list of contents: both give the message-by-message layout."""
    rng = random.Random(f"{policy.value} {each_backend.backend.name}")
    chats = [random_chat(rng) for _ in range(300)] + [(Message("user", "Hi"), Message("ipython", "x"),
                                                       Message("assistant", "  "))]
    samples, errors = Llama3Template(each_backend, policy).render_samples([Conversation(c, HERE) for c in chats])
    expected = [one_by_one(each_backend, chat, policy) for chat in chats]
    assert samples.split() == [e for e in expected if e is not None]
    assert [e is None for e in expected] == [error is not None for error in errors]


@pytest.mark.parametrize("policy", list(MaskPolicy))
def test_flat_and_marked_layouts_write_the_same_arrays(each_backend, policy, monkeypatch):
    """The two layouts of `render_samples`, forced in turn on one backend, give identical arrays (dtypes included)."""
    rng = random.Random(policy.value)
    chats = [Conversation(random_chat(rng), HERE) for _ in range(300)]
    template = Llama3Template(each_backend, policy)
    results = []
    for flat in (False, True):
        monkeypatch.setattr(type(each_backend.backend), "flat_batches", flat)
        results.append(template.render_samples(chats))
    (marked, marked_errors), (flat, flat_errors) = results
    assert [e is None for e in marked_errors] == [e is None for e in flat_errors]
    for name in ("input_ids", "loss_mask", "lengths"):
        a, b = getattr(marked, name), getattr(flat, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert len(marked) > 200


PIECE = st.one_of(st.sampled_from(PIECES), st.text(max_size=12))
CHAT = st.lists(st.tuples(st.sampled_from(["system", "user", "assistant", "ipython"]),
                          st.lists(PIECE, max_size=6).map("".join), st.sampled_from([None, True, False])),
                min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(chats=st.lists(CHAT, max_size=8), policy=st.sampled_from(list(MaskPolicy)))
def test_flat_layout_is_the_marked_layout_on_any_text(tokenizer, chats, policy):
    """Whatever the texts and flags, the list-of-contents layout gives the marked text's arrays."""
    conversations = [Conversation(tuple(Message(role, text, train) for role, text, train in chat), HERE)
                     for chat in chats]
    template = Llama3Template(tokenizer, policy)
    results = []
    for flat in (True, False):
        tokenizer.backend.flat_batches = flat  # on this backend only, for this call
        try:
            results.append(template.render_samples(conversations))
        finally:
            del tokenizer.backend.flat_batches
    (flat, flat_errors), (marked, marked_errors) = results
    assert [e is None for e in flat_errors] == [e is None for e in marked_errors]
    for name in ("input_ids", "loss_mask", "lengths"):
        a, b = getattr(flat, name), getattr(marked, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
