"""The tokenizer matches Meta's reference ids and never turns typed text into a control token."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

from sftconv.tokenizer import Tokenizer, special_token_names

SPECIAL_TEXT = st.sampled_from(special_token_names() + ["<|eot_id", "|>", "<|", "<|im_end|>", "</s>", "[INST]"])


@pytest.fixture(scope="module")
def meta() -> MetaTokenizer:
    return MetaTokenizer.get_instance()


def test_special_tokens_match_meta(tokenizer, meta):
    assert tokenizer.special_tokens == meta.special_tokens
    assert tokenizer.vocab_size == meta.n_words == 128_256
    assert (tokenizer.bos_id, tokenizer.eot_id) == (128_000, 128_009)


@pytest.mark.parametrize("text", [
    "Hello, world!", "  leading and trailing  ", "\r\n\r\n\t tabs", "数字 123456789 和 emoji 🎉🇫🇷",
    "def f(x):\n    return x ** 2\n", "a" * 30_000, " " * 5_000, "ﬁ ligature and café", "",
])
def test_encode_matches_meta(tokenizer, meta, text):
    assert tokenizer.encode(text) == meta.encode(text, bos=False, eos=False)
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), SPECIAL_TEXT), max_size=8).map("".join))
def test_special_token_text_is_ordinary_text(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(i < 128_000 for i in ids)
    assert tokenizer.decode(ids) == text


def test_other_tiktoken_file(tmp_path):
    """A tiny byte-level BPE file (256 ranks, one merge) loads, with specials placed after its ranks."""
    ranks = [bytes([b]) for b in range(256)] + [b"ab"]
    path = tmp_path / "tiny.model"
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate(ranks)))
    tiny = Tokenizer(path)
    assert tiny.encode("abc") == [256, ord("c")]
    assert tiny.bos_id == 257 and tiny.vocab_size == 257 + 256


def test_not_a_tokenizer_file(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "BPE"}}')
    with pytest.raises(ValueError, match="not Llama 3's tokenizer: its pre-tokenizer pattern is None"):
        Tokenizer(path)
    path = tmp_path / "tokenizer.model"
    path.write_text("not base64 at all\n")
    with pytest.raises(ValueError, match="not a tiktoken BPE file"):
        Tokenizer(path)
    path.write_text("YQ== 0\nYg== 0\n")
    with pytest.raises(ValueError, match="ranks repeat"):
        Tokenizer(path)


def test_the_command_line_offers_every_backend():
    from sftconv.cli import BACKENDS as OFFERED
    from sftconv.tokenizer_backends import BACKENDS

    assert OFFERED == BACKENDS
