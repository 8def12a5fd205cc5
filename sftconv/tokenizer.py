"""Load a tiktoken-format Llama 3 BPE file and encode plain text with it."""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Set
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken

if TYPE_CHECKING:
    import numpy as np

# Llama 3's split regex, as in Meta's reference tokenizer (llama_models/llama3/tokenizer.py).
PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NAMED_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
)
NUM_SPECIAL_TOKENS = 256
DEFAULT_TOKENIZER_NAME = "llama-models:llama3/tokenizer.model"


def default_tokenizer_path() -> Path:
    """The official Llama 3 tokenizer file that the `llama-models` package ships."""
    return Path(str(files("llama_models").joinpath("llama3", "tokenizer.model")))


def special_token_names() -> list[str]:
    """All 256 special-token strings in id order, reserved ones numbered as Meta numbers them."""
    reserved = NUM_SPECIAL_TOKENS - len(NAMED_SPECIAL_TOKENS)
    return [*NAMED_SPECIAL_TOKENS, *(f"<|reserved_special_token_{2 + i}|>" for i in range(reserved))]


def load_ranks(data: bytes) -> dict[bytes, int]:
    """Parse a tiktoken BPE file: one `base64(token) rank` pair per line, ranks 0..n-1.

    Raises:
        ValueError: the data is not in that format.
    """
    fields = data.split()
    try:
        if len(fields) % 2:
            raise ValueError("odd number of fields")
        ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2])))
    except (ValueError, binascii.Error) as error:
        raise ValueError(f"not a tiktoken BPE file ({error}); expected lines of 'base64-token rank'") from error
    if len(ranks) * 2 != len(fields) or set(ranks.values()) != set(range(len(ranks))):
        raise ValueError("not a tiktoken BPE file: tokens or ranks repeat, or ranks are not 0..n-1")
    return ranks


class Tokenizer:
    """A Llama 3 tokenizer: the file's BPE ranks plus Meta's 256 special tokens after them.

    Args:
        path: a tiktoken-format BPE file; None for the official Llama 3 file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not in tiktoken BPE format.

    Example:
        >>> Tokenizer().encode("Hello, world")
        [9906, 11, 1917]
    """

    def __init__(self, path: str | Path | None = None):
        self._given = path
        self.path = Path(path) if path is not None else default_tokenizer_path()
        self.name = str(path) if path is not None else DEFAULT_TOKENIZER_NAME
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        ranks = load_ranks(data)
        self.special_tokens = {name: len(ranks) + i for i, name in enumerate(special_token_names())}
        self.vocab_size = len(ranks) + NUM_SPECIAL_TOKENS
        self._encoding = tiktoken.Encoding(
            name=self.path.name, pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens=self.special_tokens
        )

    def __reduce__(self):
        """Pickled as its file, loaded again where it is unpickled (a worker process started by spawn)."""
        return type(self), (self._given,)

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

        `encode_ordinary` never parses special tokens out of text: a user who types `<|eot_id|>`
        gets the ids of those characters, so data can never forge a turn boundary.
        """
        return self._encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of many texts as ordinary text, in order."""
        encode = self._encoding.encode_ordinary
        return [encode(text) for text in texts]

    def encode_marked(self, text: str, markers: Set[str]) -> np.ndarray:
        """Ids (uint32) of text that the caller laid out: the special tokens named in `markers` become
        their ids, the text between them is ordinary text, encoded exactly as `encode` would encode each piece.

        Only for text whose ordinary parts are known not to contain those names: never for user text as such.
        """
        try:
            return self._encoding.encode_to_numpy(text, allowed_special=markers, disallowed_special=())
        except UnicodeEncodeError:
            # A lone surrogate (JSON allows "\\ud800"): replaced as `encode` replaces it. The markers
            # around each piece are not surrogates, so no two pieces can pair up.
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._encoding.encode_to_numpy(text, allowed_special=markers, disallowed_special=())

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens written as their names."""
        return self._encoding.decode(ids)

    def decode_tokens(self, ids: list[int]) -> list[str]:
        """Each id's own text, for showing token boundaries (partial UTF-8 shown as U+FFFD)."""
        return [b.decode("utf-8", errors="replace") for b in self._encoding.decode_tokens_bytes(ids)]

    def token_bytes(self, ids: list[int]) -> list[bytes]:
        """Each id's raw bytes: a character split across tokens is whole only when they are joined."""
        return self._encoding.decode_tokens_bytes(ids)
