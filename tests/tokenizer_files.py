"""Hugging Face tokenizer files made offline from Meta's file, as Hugging Face's converter makes them, and variants."""

from __future__ import annotations

import json
from pathlib import Path

from .references import LLAMA3_CHAT_TEMPLATE, hf_tokenizer


def llama3_json() -> dict:
    """Meta's Llama 3 tokenizer as a tokenizer.json document (TikTokenConverter, plus the 256 special tokens)."""
    return json.loads(hf_tokenizer().backend_tokenizer.to_str())


def write_json(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def model_folder(folder: Path, document: dict | None = None, chat_template: str | None = LLAMA3_CHAT_TEMPLATE) -> Path:
    """A model folder as `save_pretrained` leaves one: tokenizer.json and tokenizer_config.json."""
    write_json(folder / "tokenizer.json", document or llama3_json())
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 131072,
              **({"chat_template": chat_template} if chat_template else {})}
    write_json(folder / "tokenizer_config.json", config)
    return folder


def renamed_and_added(document: dict, renamed: dict[int, str], added: list[str]) -> dict:
    """A fine-tune's tokenizer: reserved special tokens renamed (by id) and tokens added after the last id."""
    document = json.loads(json.dumps(document))
    tokens = document["added_tokens"]
    for token in tokens:
        if token["id"] in renamed:
            token["content"] = renamed[token["id"]]
    next_id = max(t["id"] for t in tokens) + 1
    for offset, content in enumerate(added):
        tokens.append({"id": next_id + offset, "content": content, "single_word": False, "lstrip": False,
                       "rstrip": False, "normalized": False, "special": content.startswith("<|")})
    return document
