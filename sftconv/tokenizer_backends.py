"""The engines that turn plain text into Llama 3 ids: tiktoken, the reference, and fastokens, an exact faster one.

fastokens (PyPI, Rust) is several times faster than tiktoken, most of all on many texts at once, and
gives the same ids: it is loaded from a tokenizer.json built here from the ranks (the way Hugging
Face's converter builds one; its `from_tiktoken` cannot load Llama 3), with no added tokens, so it
only ever sees ordinary text. Trust is earned, not assumed: a self-check against tiktoken on a probe
set when it loads, and a spot check on one text of every batch during a run; a mismatch stops the run.
It holds about 250 MB of word cache per process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Set
from importlib.metadata import PackageNotFoundError, version

import msgspec
import numpy as np
import tiktoken

from .tokenizer_sources import PAT_STR, byte_encoder, cache_dir, write_cached

BACKENDS = ("auto", "fastokens", "tiktoken")  # --tokenizer-backend; auto: fastokens where it is installed
# Below this much input, fastokens' load (about a second per process) costs more than it saves: auto is tiktoken.
AUTO_FASTOKENS_BYTES = 64 << 20

# Texts on which a new backend must give tiktoken's ids before it is used: scripts, digits, whitespace
# runs, emoji sequences, combining marks, typed special-token text and long runs of one character.
PROBES = (
    "Hello, world! It's 12345678 o'clock.", "  leading\tand trailing  ", "\r\n\r\n\t\r\r\n  \n", "",
    "数字 123456789 和 emoji 🎉🇫🇷 👩‍👩‍👧‍👦 👍🏽", "Ελληνικά, русский, עברית, العربية, हिन्दी, ไทย, 日本語のテキスト",
    "e\u0301\u0302\u0303 Z\u0351\u0352\u0353a\u0301lgo\u0308", "def f(x):\n    return x ** 2  # comment\n",
    "<|eot_id|><|begin_of_text|> <|start_header_id|>user<|end_header_id|>", "ﬁ ligature café naïve",
    "a" * 5000, " " * 3000, "\n" * 1000, "🙂" * 500, "1" * 999, "x\u200dy\u200d" * 100, "ab" * 2000,
)


LOADED: dict[str, object] = {}  # ranks digest -> a fastokens tokenizer that passed its self-check in this process


class BackendMismatch(RuntimeError):
    """The fast backend and tiktoken gave different ids for one text: the output could be wrong, so the run stops."""


def derive_merges(ranks: dict[bytes, int]) -> list[tuple[str, str]]:
    """BPE merges that build each rank from two smaller ones, in rank order, as byte-level strings.

    For each token every split into two tokens is a merge; merges are ordered by the rank of what they
    build, then by the ranks of their two parts (Hugging Face's converter makes the same list).
    """
    chars = byte_encoder()
    spelled = {}

    def spell(token: bytes) -> str:
        text = spelled.get(token)
        if text is None:
            text = spelled[token] = "".join([chars[b] for b in token])
        return text

    merges = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return [(spell(left), spell(right)) for _, _, _, left, right in merges]


def tokenizer_json(ranks: dict[bytes, int]) -> str:
    """A Hugging Face tokenizer.json for plain text under Llama 3's pattern and these ranks (no added tokens)."""
    chars = byte_encoder()
    vocab = {"".join([chars[b] for b in token]): rank for token, rank in ranks.items()}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": PAT_STR}, "behavior": "Isolated", "invert": False}, byte_level]},
        "post_processor": None, "decoder": {**byte_level, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [list(m) for m in derive_merges(ranks)]},
    }, ensure_ascii=False)


def fastokens_version() -> str | None:
    """The installed fastokens version, or None where it is not installed (then tiktoken runs)."""
    try:
        return version("fastokens")
    except PackageNotFoundError:
        return None


def without_surrogates(text: str) -> str:
    """A lone surrogate (JSON allows "\\ud800") replaced by U+FFFD, as tiktoken's `encode_ordinary` replaces it."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class TiktokenBackend:
    """tiktoken's own encoder: the reference every other backend is checked against."""

    name = "tiktoken"
    flat_batches = False  # one marked text (`encode_marked`) is its fastest form, not a list of texts

    def __init__(self, encoding: tiktoken.Encoding):
        self.encoding = encoding
        self.version = version("tiktoken")

    def preload(self, *, wait: bool = True) -> None:
        """Nothing to do: tiktoken is ready once built."""

    def loading(self) -> bool:
        return False

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encode = self.encoding.encode_ordinary
        return [encode(text) for text in texts]

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = self.encode_batch(texts)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(i) for i in ids], out=offsets[1:])
        return np.fromiter((t for i in ids for t in i), dtype=np.uint32, count=int(offsets[-1])), offsets

    def encode_marked(self, text: str, markers: Set[str]) -> np.ndarray:
        try:
            return self.encoding.encode_to_numpy(text, allowed_special=markers, disallowed_special=())
        except UnicodeEncodeError:
            # The markers around each piece are not surrogates, so no two pieces can pair up.
            return self.encoding.encode_to_numpy(without_surrogates(text), allowed_special=markers,
                                                 disallowed_special=())


class FastokensBackend:
    """fastokens, loaded on first use or `preload` (about a second, once per process), self-checked, then
    spot-checked on one text of every batch.

    Raises (on first use):
        BackendMismatch: the self-check found a probe on which it differs from tiktoken.
    """

    name = "fastokens"
    flat_batches = True  # a list of texts in one call is its fastest form

    def __init__(self, encoding: tiktoken.Encoding, ranks: dict[bytes, int], fingerprint: str):
        self.reference = TiktokenBackend(encoding)
        self.version = fastokens_version()
        self._ranks, self._fingerprint = ranks, fingerprint
        self._fast = None
        self._loader: threading.Thread | None = None  # loading in the background (`preload(wait=False)`)
        self._load_error: BaseException | None = None
        self._calls = 0
        self._splitters: dict[frozenset, tuple[re.Pattern, dict[str, int]]] = {}

    @property
    def fast(self):
        """The fastokens tokenizer, built (from a cached tokenizer.json) and self-checked in this process on first use.

        Kept for the process's life, shared by every Tokenizer of the same ranks: it takes about a second to load.
        """
        if self._loader is not None and self._loader is not threading.current_thread():
            self._loader.join()
            self._loader, error, self._load_error = None, self._load_error, None
            if error is not None:
                raise error
        if self._fast is None and self._fingerprint in LOADED:
            self._fast = LOADED[self._fingerprint]
        if self._fast is None:
            # sftconv runs one worker process per core: fastokens' own threads would only compete with them.
            os.environ.setdefault("RAYON_NUM_THREADS", "1")
            os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
            import fastokens

            path = cache_dir() / "fastokens" / f"{self._fingerprint}.json"
            if path.is_file():
                self._fast = fastokens.Tokenizer.from_file(str(path))
            else:
                document = tokenizer_json(self._ranks)
                write_cached(path, document.encode("utf-8"))
                self._fast = fastokens.Tokenizer.from_json_str(document)
            try:
                self.check(list(PROBES), "its start-up self-check")
            except BackendMismatch:
                self._fast = None  # never used unchecked
                raise
            LOADED[self._fingerprint] = self._fast
        return self._fast

    def preload(self, *, wait: bool = True) -> None:
        """Load and self-check fastokens now rather than at the first text; with `wait` False, in a thread while
        the caller goes on (the load releases the GIL), its first use waiting for it and raising what it raised."""
        if wait:
            self.fast
        elif self._fast is None and self._loader is None and self._fingerprint not in LOADED:
            self._loader = threading.Thread(target=self._load_quietly, name="fastokens-load", daemon=True)
            self._loader.start()

    def loading(self) -> bool:
        """Whether a `preload(wait=False)` thread is still loading."""
        loader = self._loader
        return loader is not None and loader.is_alive()

    def _load_quietly(self) -> None:
        try:
            self.fast
        except BaseException as error:  # raised again in the thread that first uses the backend
            self._load_error = error

    def check(self, texts: list[str], where: str) -> None:
        """Raise BackendMismatch unless fastokens gives tiktoken's ids for every text."""
        ids, offsets = self._flat(texts)
        for i, text in enumerate(texts):
            expected = self.reference.encode(text)
            if ids[offsets[i]:offsets[i + 1]].tolist() != expected:
                shown = text if len(text) < 80 else text[:77] + "..."
                raise BackendMismatch(
                    f"fastokens {self.version} and tiktoken give different ids for {shown!r} ({where}); the run "
                    "stops rather than write wrong ids: run again with --tokenizer-backend tiktoken, and report it")

    def _flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of many texts, flat, and where each text's ids start (one more offset than texts)."""
        try:
            ids, offsets = self.fast.encode_batch_flat(texts)
        except UnicodeEncodeError:
            ids, offsets = self.fast.encode_batch_flat([without_surrogates(t) for t in texts])
        return np.frombuffer(ids, dtype=np.uint32), np.frombuffer(offsets, dtype=np.uint64).astype(np.int64)

    def _spot_check(self, texts: list[str]) -> None:
        """Re-encode one text of this batch with tiktoken (a different one each batch); a mismatch stops the run."""
        if texts:
            self._calls += 1
            text = texts[self._calls % len(texts)]
            self.check([text], "a spot check during the run")

    def encode(self, text: str) -> list[int]:
        try:
            return self.fast.encode_ordinary(text).ids
        except UnicodeEncodeError:
            return self.fast.encode_ordinary(without_surrogates(text)).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        ids, offsets = self._flat(texts)
        self._spot_check(texts)
        return [ids[start:end].tolist() for start, end in zip(offsets[:-1], offsets[1:])]

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, offsets = self._flat(texts)
        self._spot_check(texts)
        return ids, offsets

    def encode_marked(self, text: str, markers: Set[str]) -> np.ndarray:
        """As tiktoken does it: the text is cut at each marker, the pieces encoded, the markers' ids put between."""
        markers = frozenset(markers)
        if markers not in self._splitters:
            names = sorted(markers, key=len, reverse=True)  # a name that starts another is tried first, as tiktoken does
            self._splitters[markers] = (re.compile("(" + "|".join(map(re.escape, names)) + ")"),
                                        {name: self.reference.encoding.encode_single_token(name) for name in names})
        splitter, special = self._splitters[markers]
        parts = splitter.split(text)
        pieces, found = parts[0::2], parts[1::2]
        ids, offsets = self._flat(pieces)
        self._spot_check(pieces)
        marker_ids = np.array([special[name] for name in found], dtype=np.uint32)
        return np.insert(ids, offsets[1:-1], marker_ids)


def auto_backend(choice: str, input_bytes: int | None) -> str:
    """What `auto` means for an input of this size (None: unknown, as for URLs): fastokens where it is installed
    and the input repays its load (about a second per process), else tiktoken; any other choice as it is."""
    if choice != "auto" or fastokens_version() is None:
        return choice
    return "fastokens" if input_bytes is None or input_bytes >= AUTO_FASTOKENS_BYTES else "tiktoken"


def make_backend(choice: str, encoding: tiktoken.Encoding, ranks: dict[bytes, int], fingerprint: str):
    """The backend `--tokenizer-backend` names; `auto` is fastokens where it is installed, else tiktoken.

    Raises:
        ValueError: an unknown choice, or fastokens asked for where it is not installed.
    """
    if choice not in BACKENDS:
        raise ValueError(f"unknown tokenizer backend {choice!r} (expected one of {', '.join(BACKENDS)})")
    if choice == "tiktoken" or (choice == "auto" and fastokens_version() is None):
        return TiktokenBackend(encoding)
    if fastokens_version() is None:
        raise ValueError("the fastokens backend is not installed: `pip install fastokens` (Linux and macOS wheels), "
                         "or pass --tokenizer-backend tiktoken")
    return FastokensBackend(encoding, ranks, fingerprint)


def ranks_digest(ranks: dict[bytes, int]) -> str:
    """A sha256 of the pattern and the tokens in rank order: what names the fast backend's cached tokenizer.json."""
    tokens = sorted(ranks, key=ranks.__getitem__)
    return hashlib.sha256(msgspec.msgpack.encode([PAT_STR, tokens])).hexdigest()
