"""The report: exact percentiles, per-unit counting, the verdict's rules, and the schema that pins its JSON."""

from __future__ import annotations

import copy
from math import ceil

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import ValidationError

from sftconv.conversation import Location
from sftconv.validate import Distribution, Finding, Report, severity

from .conftest import write_jsonl
from .validate_support import GOOD, run, schema_validator


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=200))
def test_percentiles_are_nearest_rank(values):
    dist = Distribution()
    for value in values:
        dist.add(value)
    ordered = sorted(values)
    for p in (1, 50, 95, 99, 100):
        assert dist.percentile(p) == ordered[max(1, ceil(p / 100 * len(values))) - 1]
    summary = dist.to_json()
    assert (summary["min"], summary["max"], summary["count"]) == (ordered[0], ordered[-1], len(values))
    assert len(dist.counts) == len(set(values))  # memory grows with distinct values, not with values


def test_empty_distribution():
    assert Distribution().to_json() == {"count": 0, "min": None, "median": None, "p95": None, "max": None, "mean": None}


def test_each_code_counts_once_per_unit_and_keeps_the_first_examples():
    report = Report("raw", ["x"], "record", max_examples=2)
    for line in range(1, 6):
        report.add(Location("x", line=line), [Finding("control_character", "a", "f"),
                                              Finding("control_character", "b", "g")])
    report.checked = 5
    [issue] = report.issues.values()
    assert issue.count == 5 and [(loc.line, f.detail) for loc, f in issue.examples] == [(1, "a"), (2, "a")]
    assert (report.with_errors, report.with_warnings, report.exit_code) == (0, 5, 0)


def test_severity_rule():
    assert severity("duplicate") == "warning" and severity("unlisted_shard") == "warning"
    assert severity("invalid_json") == "error" and severity("bad_role_order") == "error"  # any reject reason


@pytest.mark.parametrize("findings, file_finding, strict, rate, code", [
    ([], None, False, 0.0, 0),
    (["too_long"], None, False, 0.0, 1),
    (["too_long"], None, False, 0.1, 0),
    (["too_long"], None, False, 0.09, 1),
    (["duplicate"], None, False, 0.0, 0),
    (["duplicate"], None, True, 0.0, 1),
    (["duplicate"], None, True, 0.1, 0),
    ([], "shard_missing", False, 1.0, 1),
    ([], "empty_file", False, 0.0, 0),
    ([], "empty_file", True, 1.0, 1),
])
def test_verdict(findings, file_finding, strict, rate, code):
    report = Report("raw", ["x"], "record", strict=strict, max_error_rate=rate, checked=10)
    report.add(Location("x", line=1), [Finding(c, "d") for c in findings])
    if file_finding:
        report.add_file(Location("x"), Finding(file_finding, "d"))
    assert report.exit_code == code and report.verdict().startswith("OK" if code == 0 else "FAILED")
    schema_validator().validate({**report.to_json(), "stats": {}})


def test_schema_rejects_what_it_does_not_define(tmp_path):
    _, report = run(write_jsonl(tmp_path / "in.jsonl", [GOOD, "broken"]))
    for path, value in [(["ok"], "yes"), (["issues", 0, "severity"], "fatal"), (["stats", "tokens"], -1),
                        (["issues", 0, "examples", 0, "line"], 0), (["unit"], "file")]:
        broken = copy.deepcopy(report)
        target = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ValidationError):
            schema_validator().validate(broken)
    del report["stats"]["turns_per_conversation"]
    with pytest.raises(ValidationError):
        schema_validator().validate(report)
