"""The JSON Schemas in schemas/: valid draft 2020-12, shipped with the package, and true of what sftconv reads and writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from sftconv.cli import main
from sftconv.schema import load_schema, validator
from sftconv.shapes import SHAPES
from sftconv.shapes.preference import PREFERENCE_SHAPES

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"


def test_every_schema_is_valid_and_shipped():
    names = sorted(p.stem for p in SCHEMAS.glob("*.json"))
    assert names == sorted([*SHAPES, *PREFERENCE_SHAPES, "manifest", "mapping", "recipe", "validate_report"])
    for name in names:
        schema = load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
        assert schema == json.loads((SCHEMAS / f"{name}.json").read_text())


@pytest.mark.parametrize("shape, record", [
    ("openai", {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                             {"role": "assistant", "content": "a", "weight": 1}]}),
    ("sharegpt", {"system": "s", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
    ("alpaca", {"instruction": "q", "input": None, "output": "a", "history": [["q0", "a0"]]}),
    ("prompt-completion", {"query": "q", "response": "a", "history": []}),
    ("transcript", {"transcript": "\n\nHuman: q\n\nAssistant: a"}),
])
def test_each_shape_schema_fits_its_own_records_only(shape, record):
    """Detection relies on this: a typical record of one shape fits no other shape's schema."""
    assert [name for name in SHAPES if validator(name).is_valid(record)] == [shape]


@pytest.mark.parametrize("shape, record", [
    ("sharegpt-pair", {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
                       "rejected": {"from": "gpt", "value": "b"}}),
    ("pair", {"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}),
    ("pair", {"chosen_messages": [{"role": "user", "content": "q"}], "rejected_messages": [{"role": "user", "content": "q"}]}),
    ("pair", {"question": "q", "response_j": "a", "response_k": "b"}),
    ("transcript-pair", {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}),
    ("kto", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": False}),
    ("kto", {"conversations": [{"from": "human", "value": "q"}], "kto_tag": True}),
])
def test_each_preference_schema_fits_its_own_records_only(shape, record):
    assert [name for name in PREFERENCE_SHAPES if validator(name).is_valid(record)] == [shape]


def test_a_run_writes_a_manifest_the_schema_accepts(tmp_path):
    assert CliRunner().invoke(main, ["convert", str(EXAMPLES), "-o", str(tmp_path), "-q"]).exit_code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(validator("manifest").iter_errors(manifest)) == []
    manifest["counts"]["read"] = -1
    del manifest["shapes"]
    assert sorted(e.message for e in validator("manifest").iter_errors(manifest)) == [
        "'shapes' is a required property", "-1 is less than the minimum of 0"]
