"""A Llama 3 tokenizer: one interface (plain text -> ids, the special-token table) over its sources and backends.

Sources (tokenizer_sources.py): a tiktoken file, a tokenizer.json, a model folder, a model name in the
local Hugging Face cache. Backends (tokenizer_backends.py): tiktoken, the reference, and fastokens,
an exact faster one. The template never knows which runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Set
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken

from .tokenizer_backends import make_backend, ranks_digest
from .tokenizer_sources import (  # noqa: F401 (re-exported: where the rest of sftconv has always found them)
    DEFAULT_TOKENIZER_NAME,
    NAMED_SPECIAL_TOKENS,
    NUM_SPECIAL_TOKENS,
    PAT_STR,
    load_source,
    special_token_names,
)

if TYPE_CHECKING:
    import numpy as np

# The special tokens templates place, whose ids the manifest records for `validate` (a fine-tune may add
# tokens after them, so they cannot be derived from the vocabulary size).
CONTROL_NAMES = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                 "<|python_tag|>")


class Tokenizer:
    """A Llama 3 tokenizer: the BPE ranks of its file, and the special tokens the file names (Meta's 256 for a
    tiktoken file).

    Args:
        path: a tiktoken file, a tokenizer.json, a model folder, or a model name in the local Hugging Face
            cache; None for Meta's Llama 3 file.
        backend: "auto" (fastokens where it is installed, else tiktoken), "fastokens" or "tiktoken".

    Raises:
        FileNotFoundError: nothing by that name (sftconv never downloads).
        ValueError: the file is not a tokenizer, not Llama 3's, or the backend cannot run.

    Example:
        >>> Tokenizer().encode("Hello, world")
        [9906, 11, 1917]
    """

    def __init__(self, path: str | Path | None = None, *, backend: str = "auto"):
        self._given, self._backend_choice = path, backend
        source = load_source(path)
        self.source = source
        self.path, self.name, self.sha256 = source.path, source.name, source.sha256
        self.special_tokens = dict(source.special_tokens)
        self.vocab_size = max(len(source.ranks), max(self.special_tokens.values(), default=-1) + 1)
        ranks_hash = ranks_digest(source.ranks)
        table = json.dumps(sorted((i, name) for name, i in self.special_tokens.items()), ensure_ascii=False)
        # What decides the ids: the ranks under Llama 3's pattern and the special-token table, whatever file held them.
        self.fingerprint = hashlib.sha256(f"{ranks_hash}\n{table}".encode()).hexdigest()
        self._encoding = tiktoken.Encoding(
            name=self.path.name, pat_str=PAT_STR, mergeable_ranks=source.ranks, special_tokens=self.special_tokens
        )
        self.backend = make_backend(backend, self._encoding, source.ranks, ranks_hash)

    def __reduce__(self):
        """Pickled as its name and backend, loaded again where it is unpickled (a worker process started by spawn)."""
        return _load, (self._given, self._backend_choice)

    def preload(self, *, wait: bool = True) -> None:
        """Load the backend now where it loads lazily (fastokens: about a second), so processes forked after this
        share it; where workers are spawned, not forked, they load it themselves and this is skipped.
        With `wait` False it loads in a thread while the caller goes on; its first use waits for it."""
        import multiprocessing

        if "fork" in multiprocessing.get_all_start_methods():
            self.backend.preload(wait=wait)

    def loading(self) -> bool:
        """Whether the backend is loading in a thread (`preload(wait=False)`), so the caller may do other work."""
        return self.backend.loading()

    @property
    def backend_name(self) -> str:
        """The backend and its version, as the manifest records it (e.g. `fastokens 0.3.5`)."""
        return f"{self.backend.name} {self.backend.version}"

    def to_json(self) -> dict:
        """The manifest's record of this tokenizer: the file, what decides the ids, the backend, the control ids."""
        return {"name": self.name, "sha256": self.sha256, "vocab_size": self.vocab_size,
                "fingerprint": self.fingerprint, "source": self.source.kind, "backend": self.backend_name,
                "control_ids": {name: i for name, i in self.special_tokens.items() if name in CONTROL_NAMES}}

    def require(self, names: list[str], purpose: str) -> None:
        """Raise ValueError naming the first of `names` that is not one of this tokenizer's special tokens."""
        for name in names:
            if name not in self.special_tokens:
                raise ValueError(f"the tokenizer {self.name} has no special token {name}, which {purpose} needs")

    @cached_property
    def bos_id(self) -> int:
        return self.special_tokens["<|begin_of_text|>"]

    @cached_property
    def eot_id(self) -> int:
        return self.special_tokens["<|eot_id|>"]

    @cached_property
    def eom_id(self) -> int:
        """`<|eom_id|>`, which ends a Llama 3.1 turn that waits for a tool's result."""
        return self.special_tokens["<|eom_id|>"]

    def encode(self, text: str) -> list[int]:
        """Ids of `text` as ordinary text.

        Special-token names are never parsed out of text: a user who types `<|eot_id|>` gets the ids
        of those characters, so data can never forge a turn boundary.
        """
        return self.backend.encode(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of many texts as ordinary text, in order."""
        return self.backend.encode_batch(texts)

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids (uint32) of many texts as ordinary text, end to end, and where each text's ids start (int64, one more
        offset than texts): what a backend with `flat_batches` encodes faster than one marked text."""
        return self.backend.encode_flat(texts)

    def encode_marked(self, text: str, markers: Set[str]) -> np.ndarray:
        """Ids (uint32) of text that the caller laid out: the special tokens named in `markers` become
        their ids, the text between them is ordinary text, encoded exactly as `encode` would encode each piece.

        Only for text whose ordinary parts are known not to contain those names: never for user text as such.
        A lone surrogate (JSON allows "\\ud800") is replaced as `encode` replaces it.
        """
        return self.backend.encode_marked(text, markers)

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens written as their names."""
        return self._encoding.decode(ids)

    def decode_tokens(self, ids: list[int]) -> list[str]:
        """Each id's own text, for showing token boundaries (partial UTF-8 shown as U+FFFD)."""
        return [b.decode("utf-8", errors="replace") for b in self._encoding.decode_tokens_bytes(ids)]

    def token_bytes(self, ids: list[int]) -> list[bytes]:
        """Each id's raw bytes: a character split across tokens is whole only when they are joined."""
        return self._encoding.decode_tokens_bytes(ids)


def _load(path: str | Path | None, backend: str) -> Tokenizer:
    """A Tokenizer from what `__reduce__` kept (keyword arguments cannot be pickled positionally)."""
    return Tokenizer(path, backend=backend)
