"""JSONL reading: every line is a record or a located reject, and input paths expand predictably."""

from __future__ import annotations

import pytest

from sftconv.conversation import INVALID_JSON, INVALID_UTF8, Record, Rejected
from sftconv.readers import expand_inputs, read_records, reader_for


def test_jsonl_lines_are_located(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n{"a": 2\r\n[1, 2]\r\nnot json\n\xff\xfe\n{"a": 3}')
    items = list(read_records([path]))
    assert [(type(i).__name__, i.location.line) for i in items] == [
        ("Record", 1), ("Rejected", 4), ("Record", 5), ("Rejected", 6), ("Rejected", 7), ("Record", 8)]
    assert items[0] == Record(items[0].location, {"a": 1}) and items[2].data == [1, 2]
    assert [i.reason for i in items if isinstance(i, Rejected)] == [INVALID_JSON, INVALID_JSON, INVALID_UTF8]
    assert items[1].raw == '{"a": 2' and str(items[1].location) == f"{path}:4"


def test_line_separators_inside_strings_do_not_split_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"t": "x\u2028y\u0085z\rw"}\n', encoding="utf-8")
    [record] = read_records([path])
    assert record.data == {"t": "x\u2028y\u0085z\rw"}


def test_expand_inputs(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/b.jsonl", "d/a.jsonl", "d/sub/c.jsonl", "d/.hidden.jsonl", "e.jsonl"]:
        (tmp_path / name).write_text("")
    found = expand_inputs([str(tmp_path / "d"), str(tmp_path / "*.jsonl"), str(tmp_path / "d" / "a.jsonl")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["d/a.jsonl", "d/b.jsonl", "d/sub/c.jsonl", "e.jsonl"]
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*missing"):
        expand_inputs([str(tmp_path / "missing.jsonl")])
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "*.parquet")])


def test_unknown_file_type_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"no reader for this file type \(known: .jsonl"):
        reader_for(tmp_path / "data.xlsx")
