"""Where a Llama 3 tokenizer comes from: a tiktoken file, a `tokenizer.json`, a model folder, or a model name
in the local Hugging Face cache; each gives the same BPE ranks and a special-token table.

A Hugging Face `tokenizer.json` is accepted only when it is Llama 3's BPE (the pre-tokenizer pattern,
byte-level ranks 0..127,999 equal to Meta's, merges that build them in rank order): the template is
Llama 3's, and another tokenizer would make wrong data. What that check derives is cached by the
file's sha256 under `cache_dir()`, so a model folder loads about as fast as Meta's file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import msgspec

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
LLAMA3_MERGES = 280_147  # the ways to split a Llama 3 token into two Llama 3 tokens (tokenizer_backends.derive_merges)
DEFAULT_TOKENIZER_NAME = "llama-models:llama3/tokenizer.model"
TOKENIZER_JSON, TIKTOKEN_FILES = "tokenizer.json", ("tokenizer.model", "original/tokenizer.model")


def default_tokenizer_path() -> Path:
    """The official Llama 3 tokenizer file that the `llama-models` package ships."""
    return Path(str(files("llama_models").joinpath("llama3", "tokenizer.model")))


def special_token_names() -> list[str]:
    """All 256 special-token strings in id order, reserved ones numbered as Meta numbers them."""
    reserved = NUM_SPECIAL_TOKENS - len(NAMED_SPECIAL_TOKENS)
    return [*NAMED_SPECIAL_TOKENS, *(f"<|reserved_special_token_{2 + i}|>" for i in range(reserved))]


def cache_dir() -> Path:
    """Where sftconv keeps what it derives (tokenizer data; mixes' source caches under `mix/`): $SFTCONV_CACHE_DIR,
    else $XDG_CACHE_HOME/sftconv, else ~/.cache/sftconv."""
    if os.environ.get("SFTCONV_CACHE_DIR"):
        return Path(os.environ["SFTCONV_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sftconv"


def write_cached(path: Path, data: bytes) -> None:
    """Write a cache file whole or not at all; a cache that cannot be written only costs time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError:
        pass


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


def dump_ranks(ranks: dict[bytes, int]) -> bytes:
    """Ranks in tiktoken's file format, in rank order."""
    ordered = sorted(ranks.items(), key=lambda item: item[1])
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for token, rank in ordered)


@dataclass(frozen=True)
class TokenizerSource:
    """A tokenizer as a file gave it: the BPE ranks, every special token by name, and where it came from."""

    name: str  # as the user gave it (a path or a model name), or DEFAULT_TOKENIZER_NAME
    path: Path  # the file the ranks were read from
    sha256: str  # of that file
    kind: str  # "tiktoken" or "tokenizer.json"
    ranks: dict[bytes, int]
    special_tokens: dict[str, int]
    chat_template: str | None = None  # a model folder's tokenizer_config.json `chat_template`, if it has one


def hub_cache() -> Path:
    """The local Hugging Face hub cache, where `huggingface-cli download` puts models."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def cached_model_folder(name: str) -> Path | None:
    """The snapshot folder of model `name` (`org/model`) in the local hub cache, if one holds a tokenizer."""
    repo = hub_cache() / f"models--{name.replace('/', '--')}"
    ref = repo / "refs" / "main"
    snapshots = [repo / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
    snapshots += sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((s for s in snapshots if tokenizer_file(s) is not None), None)


def tokenizer_file(folder: Path) -> Path | None:
    """A model folder's tokenizer: its tokenizer.json, else a tiktoken tokenizer.model."""
    for name in (TOKENIZER_JSON, *TIKTOKEN_FILES):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(given: str | Path) -> Path:
    """The file or model folder that `--tokenizer` names.

    Raises:
        FileNotFoundError: not a file, not a folder with a tokenizer, not a model in the local hub cache.
    """
    path = Path(given)
    if path.is_file():
        return path
    if path.is_dir():
        if tokenizer_file(path) is None:
            raise FileNotFoundError(f"{given} holds no {TOKENIZER_JSON} or {TIKTOKEN_FILES[0]}")
        return path
    name = str(given)
    if name.count("/") != 1 or name.startswith((".", "/", "~")) or path.suffix in (".json", ".model"):
        raise FileNotFoundError(f"no such file or folder: {given}")  # a path, not an org/model name
    folder = cached_model_folder(name)
    if folder is None:
        raise FileNotFoundError(
            f"{given} is not a file, a model folder, or a model in the local Hugging Face cache ({hub_cache()}); "
            f"sftconv never downloads: fetch it with `huggingface-cli download {given} --include 'tokenizer*'`, "
            "or pass the folder that holds its tokenizer.json")
    return folder


def load_source(given: str | Path | None) -> TokenizerSource:
    """Read the tokenizer that `--tokenizer` names (None: Meta's Llama 3 file).

    Raises:
        FileNotFoundError: see `locate`.
        ValueError: the file is unreadable as a tokenizer, or a Hugging Face tokenizer is not Llama 3's.
    """
    if given is None:
        path, name = default_tokenizer_path(), DEFAULT_TOKENIZER_NAME
    else:
        path, name = locate(given), str(given)
    chat_template = None
    if path.is_dir():
        chat_template = read_chat_template(path)
        path = tokenizer_file(path)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if path.suffix == ".json" or data.lstrip()[:1] == b"{":
        ranks, special = read_tokenizer_json(data, sha256)
        return TokenizerSource(name, path, sha256, TOKENIZER_JSON, ranks, special, chat_template)
    ranks = load_ranks(data)
    special = {token: len(ranks) + i for i, token in enumerate(special_token_names())}
    return TokenizerSource(name, path, sha256, "tiktoken", ranks, special, chat_template)


def read_chat_template(folder: Path) -> str | None:
    """The `chat_template` of a model folder's tokenizer_config.json (or chat_template.jinja), if any."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    if isinstance(template, list):  # named templates: the default one is what the model is served with
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return template if isinstance(template, str) else None


def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the character that stands for each byte in a tokenizer.json vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    chars = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(others)}
    return {c: b for b, c in chars.items()}


def byte_encoder() -> list[str]:
    """The character standing for each byte value, indexable by byte."""
    decoder = byte_decoder()
    return [c for c, _ in sorted(decoder.items(), key=lambda x: x[1])]


def read_tokenizer_json(data: bytes, sha256: str) -> tuple[dict[bytes, int], dict[str, int]]:
    """A Hugging Face tokenizer.json's ranks and special tokens, once it is known to be Llama 3's BPE.

    Raises:
        ValueError: not a tokenizer.json, or not Llama 3's tokenizer (the message says what differs).
    """
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise ValueError(f"not a tokenizer.json ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("model"), dict):
        raise ValueError("not a tokenizer.json: it has no `model`")
    special = added_tokens(document)
    vocabulary = len(document["model"].get("vocab") or ())
    if min(special.values(), default=vocabulary) < vocabulary:
        token = min(special, key=special.get)
        raise ValueError(f"not Llama 3's tokenizer: the added token {token!r} has id {special[token]}, "
                         f"inside the BPE ranks (0..{vocabulary - 1})")
    cached = cache_dir() / "ranks" / f"{sha256}.tiktoken"
    if cached.is_file():
        return load_ranks(cached.read_bytes()), special
    ranks = llama3_ranks(document)
    write_cached(cached, dump_ranks(ranks))
    return ranks, special


def added_tokens(document: dict) -> dict[str, int]:
    """Every added token (special or not) by name: renamed reserved tokens under their new names."""
    return {token["content"]: token["id"] for token in document.get("added_tokens") or ()}


def llama3_ranks(document: dict) -> dict[bytes, int]:
    """The ranks of a tokenizer.json checked to be Llama 3's, or ValueError naming the first difference."""
    model = document["model"]
    differs = "not Llama 3's tokenizer: "
    if model.get("type") != "BPE":
        raise ValueError(differs + f"its model is {model.get('type')}, Llama 3's is byte-level BPE")
    if document.get("normalizer") is not None:
        raise ValueError(differs + f"it normalizes text ({document['normalizer'].get('type')}); Llama 3 does not")
    pattern = split_pattern(document.get("pre_tokenizer"))
    if pattern != PAT_STR:
        raise ValueError(differs + f"its pre-tokenizer pattern is {pattern!r}, Llama 3's is {PAT_STR!r}")
    if model.get("byte_fallback") or model.get("dropout") or not model.get("ignore_merges", False):
        raise ValueError(differs + "its BPE options differ (byte_fallback, dropout, or ignore_merges not set)")
    decoder = byte_decoder()
    try:
        ranks = {bytes(decoder[c] for c in token): rank for token, rank in model["vocab"].items()}
    except KeyError as error:
        raise ValueError(differs + f"its vocabulary is not byte-level (character {error} stands for no byte)") from None
    meta = load_ranks(default_tokenizer_path().read_bytes())
    if ranks != meta:
        raise ValueError(differs + ranks_difference(ranks, meta))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges") or ()]
    if not builds_in_rank_order(merges, model["vocab"]):
        raise ValueError(differs + "its merges are not the ones that build Llama 3's ranks in rank order (every "
                         f"split of a token into two, {LLAMA3_MERGES:,} of them, in the order of what they build)")
    return ranks


def split_pattern(pre_tokenizer: dict | None) -> str | None:
    """The regex of a Split-then-ByteLevel pre-tokenizer, Llama 3's layout; None for any other layout."""
    steps = (pre_tokenizer or {}).get("pretokenizers") or []
    if [s.get("type") for s in steps] != ["Split", "ByteLevel"] or steps[1].get("use_regex"):
        return None
    split = steps[0]
    if split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    return (split.get("pattern") or {}).get("Regex")


def ranks_difference(ranks: dict[bytes, int], meta: dict[bytes, int]) -> str:
    """What differs between a vocabulary's ranks and Meta's, in words."""
    by_rank = {rank: token for token, rank in ranks.items()}
    for token, rank in sorted(meta.items(), key=lambda x: x[1]):
        if by_rank.get(rank) != token:
            return f"rank {rank} is {by_rank.get(rank)!r}, Llama 3's is {token!r}"
    return f"it has {len(ranks):,} BPE ranks, Llama 3 has {len(meta):,}"


def builds_in_rank_order(merges: list[tuple[str, str]], vocab: dict[str, int]) -> bool:
    """Whether the merges are every split of a Llama 3 token into two tokens, once each, ordered by the rank of
    what they build: the merges under which Hugging Face's BPE gives tiktoken's ids."""
    if len(merges) != LLAMA3_MERGES or len(set(merges)) != LLAMA3_MERGES:
        return False
    built = [vocab.get(left + right, -1) if left in vocab and right in vocab else -1 for left, right in merges]
    return built[0] >= 0 and all(0 <= a <= b for a, b in zip(built, built[1:]))
