"""Helpers for the validate tests: run the command, check its JSON report against the schema, read the issues."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from click.testing import CliRunner

from sftconv.cli import main

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "validate_report.json"
GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


@cache
def schema_validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def run(*args) -> tuple[int, dict]:
    """`sftconv validate ARGS --format json`: the exit code and the report, which must match the schema."""
    result = CliRunner().invoke(main, ["validate", *map(str, args), "--format", "json", "-q"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    schema_validator().validate(report)
    assert report["exit_code"] == result.exit_code
    return result.exit_code, report


def counts(report: dict) -> dict[str, int]:
    """Reason code -> count."""
    return {issue["code"]: issue["count"] for issue in report["issues"]}


def examples(report: dict, code: str) -> list[dict]:
    """The examples kept for one code."""
    return next(issue["examples"] for issue in report["issues"] if issue["code"] == code)
