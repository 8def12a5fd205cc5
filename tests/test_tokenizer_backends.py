"""The fast backend gives tiktoken's ids on real and adversarial text, and a run stops when it does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.template.llama3 import MARKERS, SEPARATOR
from sftconv import tokenizer_backends
from sftconv.tokenizer import PAT_STR, Tokenizer
from sftconv.tokenizer_backends import BackendMismatch, FastokensBackend, fastokens_version

pytestmark = pytest.mark.skipif(fastokens_version() is None, reason="fastokens does not install on this platform")

ADVERSARIAL = [
    "a" * 200_000, " " * 50_000, "\r\n" * 20_000, "\r\r\n\n \t" * 5_000, "1" * 10_001, "🙂" * 5_000,
    "👩‍👩‍👧‍👦👨🏽‍💻🏳️‍🌈" * 500, "e" + "\u0301" * 3_000, "Z\u0351\u0352\u0353a\u0301lgo\u0308 " * 200,
    "<|eot_id|>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>" * 50,
    "x\ud800y", "\udc00", "'s'S'll'LL 'd", "ﬁ ﬂ Å Ω ℌ", "\u200b\u200c\u200d\ufeff" * 100, "\x00\x1f\x7f" * 10,
]
SPECIAL_TEXT = st.sampled_from(sorted(MARKERS) + ["<|", "|>", "<|eom_id|>", "\r\n", "\ud800", " " * 9, "日本"])


@pytest.fixture(scope="module")
def backends() -> tuple[Tokenizer, Tokenizer]:
    return Tokenizer(backend="fastokens"), Tokenizer(backend="tiktoken")


def shared_texts(folder) -> list[str]:
    """Every string of every record of the shared JSON Lines and JSON files: real, multilingual, code, tool calls."""
    texts = []

    def walk(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in sorted(folder.rglob("*.json*")):
        if path.suffix == ".gz":
            continue
        lines = path.read_text(encoding="utf-8", errors="replace")
        try:
            walk(json.loads(lines))
        except json.JSONDecodeError:
            for line in lines.splitlines():
                try:
                    walk(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return texts


def test_real_text(backends, shared_data):
    fast, reference = backends
    texts = shared_texts(shared_data)
    assert len(texts) > 10_000
    assert fast.encode_batch(texts) == reference.encode_batch(texts)
    # 64 KB chunks, where a cache of whole words matters least and runs of text are longest.
    joined = "".join(texts)
    chunks = [joined[i:i + 65_536] for i in range(0, len(joined), 65_536)]
    assert fast.encode_batch(chunks) == reference.encode_batch(chunks)


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_text(backends, text):
    fast, reference = backends
    assert fast.encode(text) == reference.encode(text)
    assert fast.encode_batch([text, text[:100]]) == reference.encode_batch([text, text[:100]])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), SPECIAL_TEXT), max_size=12).map("".join))
def test_marked_text(backends, text):
    """The templates' hot path: markers become ids, the rest is ordinary text, exactly as tiktoken does it."""
    fast, reference = backends
    expected = reference.encode_marked(text, MARKERS)
    assert expected.dtype == np.uint32
    assert fast.encode_marked(text, MARKERS).tolist() == expected.tolist()


def test_manifest_records_the_backend(backends):
    fast, reference = backends
    assert fast.to_json()["backend"] == f"fastokens {fastokens_version()}"
    assert reference.to_json()["backend"].startswith("tiktoken ")
    assert fast.fingerprint == reference.fingerprint  # the backend never decides the ids


def wrong_reference(tokenizer: Tokenizer, swap: tuple[bytes, bytes]) -> FastokensBackend:
    """A fast backend checked against a tiktoken that ranks two tokens the other way round (a stand-in for a bug)."""
    ranks = dict(tokenizer.source.ranks)
    ranks[swap[0]], ranks[swap[1]] = ranks[swap[1]], ranks[swap[0]]
    encoding = tiktoken.Encoding("wrong", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=tokenizer.special_tokens)
    backend = FastokensBackend(tokenizer._encoding, tokenizer.source.ranks, tokenizer.backend._fingerprint)
    backend._fast = tokenizer.backend.fast  # already self-checked against the right tiktoken
    backend.reference.encoding = encoding
    return backend


def test_a_mismatch_during_a_run_stops_it(backends):
    fast, _ = backends
    backend = wrong_reference(fast, (b" banana", b" Hello"))  # " banana" is in no probe: the self-check passes
    backend.check(["Hello, world"], "a test")  # the swap shows only where the texts hold those words
    text = f"{SEPARATOR} a banana" * 4
    with pytest.raises(BackendMismatch, match="fastokens .* and tiktoken give different ids for ' a banana' "
                                              r"\(a spot check during the run\).*--tokenizer-backend tiktoken"):
        for _ in range(8):  # each batch checks one of its texts, a different one each time
            backend.encode_marked(text, MARKERS)


def test_a_wrong_backend_fails_its_self_check(backends, monkeypatch):
    fast, _ = backends
    backend = wrong_reference(fast, (b"Hello", b" banana"))
    backend._fast = None
    monkeypatch.setattr(tokenizer_backends, "LOADED", {})  # loaded afresh in this process, so checked afresh
    with pytest.raises(BackendMismatch, match="its start-up self-check"):
        backend.encode("anything")


def test_shards_are_byte_identical_whichever_backend(tmp_path, shared_data):
    from click.testing import CliRunner

    from sftconv.cli import main

    inputs = [shared_data / "xtuner" / "mllm_sft_text_example_data.jsonl", shared_data / "GPTeacher" / "codegen-instruct.json",
              shared_data / "LLaMA-Factory" / "glaive_toolcall_en_demo.json"]
    manifests = {}
    for backend in ("tiktoken", "fastokens", "auto"):
        out = tmp_path / backend
        result = CliRunner().invoke(main, ["convert", *map(str, inputs), "-o", str(out), "-q", "--workers", "2",
                                           "--template", "llama3.1", "--tokenizer-backend", backend])
        assert result.exit_code == 0, result.output
        manifests[backend] = json.loads((out / "manifest.json").read_text())
    assert manifests["tiktoken"]["shards"] == manifests["fastokens"]["shards"]  # every file's sha256
    assert manifests["fastokens"]["tokenizer"]["backend"] == f"fastokens {fastokens_version()}"
    assert manifests["tiktoken"]["tokenizer"]["backend"].startswith("tiktoken ")
    # auto: a few MB of input do not repay fastokens' load, so tiktoken runs.
    assert manifests["auto"]["tokenizer"]["backend"] == manifests["tiktoken"]["tokenizer"]["backend"]


def test_auto_is_fastokens_for_large_or_unknown_inputs():
    from sftconv.tokenizer_backends import AUTO_FASTOKENS_BYTES, auto_backend

    assert auto_backend("auto", AUTO_FASTOKENS_BYTES) == auto_backend("auto", None) == "fastokens"
    assert auto_backend("auto", AUTO_FASTOKENS_BYTES - 1) == "tiktoken"
    assert auto_backend("tiktoken", None) == "tiktoken" and auto_backend("fastokens", 0) == "fastokens"


def test_a_background_load_is_waited_for_and_its_failure_raised_at_first_use(backends, monkeypatch):
    fast, slow = backends
    monkeypatch.setattr(tokenizer_backends, "LOADED", {})
    fresh = Tokenizer(backend="fastokens")
    fresh.backend.preload(wait=False)
    assert fresh.backend._loader is not None  # loading while this thread goes on
    assert fresh.encode_flat(ADVERSARIAL[:3])[0].tolist() == [t for text in ADVERSARIAL[:3] for t in slow.encode(text)]
    assert fresh.backend._loader is None
    monkeypatch.setattr(tokenizer_backends, "LOADED", {})
    backend = wrong_reference(fast, (b"Hello", b" banana"))
    backend._fast = None
    backend.preload(wait=False)
    with pytest.raises(BackendMismatch, match="its start-up self-check"):
        backend.encode("anything")
