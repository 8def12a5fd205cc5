"""sftconv's ids equal the real references token for token, on thousands of varied, adversarial conversations.

References (tests/references.py): Hugging Face `apply_chat_template` with the Llama 3 Instruct chat
template, and Meta's `ChatFormat`. Meta does not trim contents, so it gets pre-trimmed contents; HF
trims itself, so it gets the raw ones. Content with special-token text is excluded from the HF
comparison only, because HF's tokenizer turns that text into control tokens (sftconv never does).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.conversation import Conversation, Location, Message
from sftconv.template import Llama3Template, MaskPolicy
from sftconv.tokenizer import special_token_names

from .references import hf_llama3_ids, meta_llama3_ids
from .test_template import trained_spans

FRAGMENTS = [
    "Hello", "world", "it's", "THEY'LL", "we'd", "naïve café", "Straße", "Ελληνικά", "русский текст",
    "日本語の文章", "中文句子。", "한국어", "العربية", "हिन्दी", "ไทย", "👍", "👨‍👩‍👧‍👦", "🇯🇵🇫🇷", "🎉🎉🎉",
    "0", "42", "3.14159", "1234567890123", "1,000,000", "-7e-3", "２０２４", "١٢٣",
    "def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "SELECT * FROM t;",
    "<div class=\"x\">&amp;</div>", "https://example.com/a?b=c&d=e", "C:\\Users\\me", "a_b-c.d/e",
    "!!!", "...", "?!", "«»", "—", "\"quoted\"", "'single'", "`tick`", "{}[]()", "#", "@user", "$HOME", "%",
]
SPACES = [" ", "  ", "\n", "\n\n", "\r\n", "\t", " " * 37, "\n" * 9, "\u00a0", "\u3000", " \n ", "\t\t\n"]


def random_code_point(rng: random.Random) -> str:
    """Any printable-or-not code point up to plane 2, but never a lone surrogate (not valid text)."""
    point = rng.randint(0x20, 0x2FFFF)
    return chr(point if not 0xD800 <= point <= 0xDFFF else point + 0x800)


def random_text(rng: random.Random) -> str:
    """Fragments joined by varied whitespace, sometimes with odd code points and padded ends."""
    parts = []
    for _ in range(rng.randint(1, 40)):
        parts.append(rng.choice(FRAGMENTS) if rng.random() < 0.9 else random_code_point(rng))
        parts.append(rng.choice(SPACES) if rng.random() < 0.3 else " ")
    text = "".join(parts)
    if rng.random() < 0.3:
        text = rng.choice(SPACES) + text + rng.choice(SPACES)
    return text


def random_conversation(rng: random.Random) -> list[dict]:
    """An optional (possibly empty) system prompt, then 1-4 user/assistant exchanges."""
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": "" if rng.random() < 0.2 else random_text(rng)})
    for _ in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": random_text(rng)})
        messages.append({"role": "assistant", "content": random_text(rng)})
    return [m for m in messages if not any(s in m["content"] for s in special_token_names())]


def ours(template: Llama3Template, messages: list[dict]):
    chat = tuple(Message(m["role"], m["content"]) for m in messages)
    return template.render(Conversation(chat, Location("test")))


@pytest.fixture(scope="module")
def corpus() -> list[list[dict]]:
    rng = random.Random(20240726)
    return [random_conversation(rng) for _ in range(3000)]


@pytest.fixture(scope="module")
def hf_ids(corpus) -> list[list[int]]:
    return [hf_llama3_ids(messages) for messages in corpus]


def test_matches_hugging_face_chat_template(tokenizer, corpus, hf_ids):
    template = Llama3Template(tokenizer)
    for messages, expected in zip(corpus, hf_ids):
        assert ours(template, messages).input_ids == expected, messages


def test_matches_meta_chat_format(tokenizer, corpus):
    template = Llama3Template(tokenizer)
    for messages in corpus:
        trimmed = [{**m, "content": m["content"].strip()} for m in messages]
        assert ours(template, messages).input_ids == meta_llama3_ids(trimmed), messages


def test_batch_rendering_matches_references(tokenizer, corpus, hf_ids):
    template = Llama3Template(tokenizer)
    chats = [Conversation(tuple(Message(m["role"], m["content"]) for m in ms), Location("t")) for ms in corpus]
    assert [sample.input_ids for sample in template.render_batch(chats)] == hf_ids


@pytest.mark.parametrize("policy", [MaskPolicy.ASSISTANT, MaskPolicy.LAST])
def test_trained_tokens_decode_to_the_answers(tokenizer, corpus, policy):
    template = Llama3Template(tokenizer, policy)
    for messages in corpus[:500]:
        sample = ours(template, messages)
        answers = [m["content"].strip() + "<|eot_id|>" for m in messages if m["role"] == "assistant"]
        expected = answers if policy is MaskPolicy.ASSISTANT else answers[-1:]
        assert trained_spans(tokenizer, sample) == expected
        assert len(sample.input_ids) == len(sample.loss_mask) == len(sample.labels)


SPECIAL_TEXT = st.sampled_from(special_token_names()[:20] + ["<|im_end|>", "</s>", "[INST]", "<|", "|>"])
CONTENT = st.lists(st.one_of(st.text(max_size=12), SPECIAL_TEXT), min_size=1, max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(CONTENT, CONTENT), min_size=1, max_size=3))
def test_special_token_text_never_becomes_a_control_token(tokenizer, exchanges):
    """Control ids appear only where the template put them: one BOS, and 3 per message."""
    messages = []
    for question, answer in exchanges:
        messages += [Message("user", question or "q"), Message("assistant", answer if answer.strip() else "a")]
    sample = Llama3Template(tokenizer).render(Conversation(tuple(messages), Location("t")))
    control = [t for t in sample.input_ids if t >= 128_000]
    assert control == [tokenizer.bos_id] + [128006, 128007, tokenizer.eot_id] * len(messages)
    assert tokenizer.decode(sample.input_ids).count("<|eot_id|>") >= len(messages)
