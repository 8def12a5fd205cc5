"""The JSON Schemas (draft 2020-12) in the project's `schemas/` folder, shipped inside the package."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files


@cache
def load_schema(name: str) -> dict:
    """The schema `schemas/{name}.json`: a record shape's name, `mapping` or `manifest`."""
    return json.loads(files("sftconv").joinpath("schemas", f"{name}.json").read_text(encoding="utf-8"))


@cache
def validator(name: str):
    """A `jsonschema` validator for `schemas/{name}.json`, built once."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))
