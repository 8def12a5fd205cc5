"""Shared fixtures: the real Llama 3 tokenizer (loaded once) and the shared sample data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftconv.tokenizer import Tokenizer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.fixture
def shared_data() -> Path:
    """The team's real sample files; absent in a user's clone, where these tests skip and say why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared sample data is not here ({SHARED_DATA})")
    return SHARED_DATA


def write_jsonl(path: Path, records: list) -> Path:
    """Write records (or raw strings, written as they are) one per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
            handle.write("\n")
    return path
