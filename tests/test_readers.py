"""Readers: every container gives located records or located rejects, compressed or not, and inputs expand predictably."""

from __future__ import annotations

import gzip
import json

import pytest

from sftconv.conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from sftconv.readers import ReaderError, expand_inputs, read_records, reader_for

from .conftest import cache_hub_dataset, write_jsonl

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def located(items) -> list[tuple]:
    """(kind, line, row) of each item, to compare locations at a glance."""
    return [(type(i).__name__, i.location.line, i.location.row) for i in items]


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
    path.write_text('\ufeff{"t": "x\u2028y\u0085z\rw"}\n', encoding="utf-8")
    [record] = read_records([path])
    assert record.data == {"t": "x\u2028y\u0085z\rw"}


def test_json_single_object(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('\n\n  {"conversations": [\n    {"from": "human", "value": "q"}\n  ]}\n')
    assert list(read_records([path])) == [
        Record(Location(str(path), line=3), {"conversations": [{"from": "human", "value": "q"}]})]


def test_json_array_elements_are_located_by_line_and_row(tmp_path):
    path = tmp_path / "many.json"
    path.write_text('[\n  {"a": 1},\n  {"a": [2,\n  3]}, "x",\n  null\n]\n')
    items = list(read_records([path]))
    assert [(i.location.line, i.location.row, i.data) for i in items] == [
        (2, 0, {"a": 1}), (3, 1, {"a": [2, 3]}), (4, 2, "x"), (5, 3, None)]
    assert str(items[1].location) == f"{path}:3"
    path.write_text("[ ]")
    assert list(read_records([path])) == []
    path.write_text(" \n")
    assert list(read_records([path])) == []


def test_json_lines_under_a_json_name(tmp_path):
    path = write_jsonl(tmp_path / "really_lines.json", [CHAT, "{broken", CHAT])
    assert located(read_records([path])) == [("Record", 1, None), ("Rejected", 2, None), ("Record", 3, None)]


@pytest.mark.parametrize("text, kept, line, message", [
    ('[\n {"a": 1},\n {"a": 2,,},\n {"a": 3}\n]', 1, 3, "Expecting property name"),
    ('[\n {"a": 1}\n {"a": 2}\n]', 1, 3, "Expecting ',' or ']'"),
    ('{"a":\n 1}\n]', 1, 3, "Extra data"),
    ('[{"a": 1}', 1, 1, "Expecting ',' or ']'"),
])
def test_broken_json_keeps_what_came_before_and_rejects_the_rest(tmp_path, text, kept, line, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    *records, rejected = read_records([path])
    assert all(isinstance(r, Record) for r in records) and len(records) == kept
    assert (rejected.reason, rejected.location.line) == (INVALID_JSON, line)
    assert message in rejected.detail and "the rest of the file cannot be read" in rejected.detail


def test_nesting_too_deep_to_decode_is_a_reject_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    lines = write_jsonl(tmp_path / "a.jsonl", [deep, {"a": 1}])
    rejected, record = read_records([lines])
    assert (rejected.reason, rejected.detail, rejected.location.line) == (INVALID_JSON, "JSON nested too deeply to decode", 1)
    assert record.data == {"a": 1}
    document = tmp_path / "a.json"
    document.write_text(f'[{{"a": 1}},\n{deep}]')
    record, rejected = read_records([document])
    assert record.data == {"a": 1} and rejected.reason == INVALID_JSON
    assert rejected.detail.startswith("JSON nested too deeply to decode at line 2 column 1")


def test_json_that_is_not_utf8_is_one_reject(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"a": "café"}]'.encode("latin-1"))
    [rejected] = read_records([path])
    assert rejected.reason == INVALID_UTF8 and rejected.location == Location(str(path))


def compress(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.compress(data)
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("codec, suffix", [("gzip", ".gz"), ("zstd", ".zst"), ("zstd", ".zstd")])
@pytest.mark.parametrize("kind, payload", [
    ("jsonl", "\n".join(json.dumps(CHAT) for _ in range(3)) + "\n"),
    ("json", json.dumps([CHAT] * 3, indent=2)),
    ("csv", "instruction,output\nq,a\nq,a\nq,a\n"),
])
def test_compressed_inputs_by_name_and_by_content(tmp_path, codec, suffix, kind, payload):
    data = compress(payload.encode(), codec)
    named = tmp_path / f"data.{kind}{suffix}"
    named.write_bytes(data)
    unnamed = tmp_path / f"plain_name.{kind}"  # compressed, though the name does not say so
    unnamed.write_bytes(data)
    for path in (named, unnamed):
        records = list(read_records([path]))
        assert len(records) == 3 and all(isinstance(r, Record) for r in records)
        assert records[0].data in (CHAT, {"instruction": "q", "output": "a"})


def test_corrupt_compressed_input_names_the_file(tmp_path):
    truncated = tmp_path / "cut.jsonl.gz"
    lines = "".join(json.dumps({"n": n * n}) + "\n" for n in range(10_000)).encode()
    truncated.write_bytes(gzip.compress(lines)[:5000])
    with pytest.raises(ReaderError, match=f"{truncated}: cannot be read"):
        list(read_records([truncated]))
    plain = tmp_path / "not_really.jsonl.gz"
    plain.write_text('{"a": 1}\n')
    with pytest.raises(ReaderError, match="not_really.jsonl.gz: cannot be read: Not a gzipped file"):
        list(read_records([plain]))


def test_csv_keeps_strings_and_locates_rows_by_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('\ufeffsystem,instruction,input,output\n00000,11111,22222,3.3\n,"multi\nline",,ok\n'
                    'x,too,many,cells,here\n\n,a,b,c\n', encoding="utf-8")
    items = list(read_records([path]))
    assert located(items) == [("Record", 2, None), ("Record", 3, None), ("Rejected", 5, None), ("Record", 7, None)]
    assert items[0].data == {"system": "00000", "instruction": "11111", "input": "22222", "output": "3.3"}
    assert items[1].data == {"system": "", "instruction": "multi\nline", "input": "", "output": "ok"}
    assert (items[2].reason, items[2].detail) == ("invalid_csv", "5 cells, but the header has 4")


def test_parquet_rows_and_nested_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [CHAT, {"messages": [{"role": "user", "content": "q", "weight": 0}]}]
    path = tmp_path / "chats.parquet"
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=1)
    items = list(read_records([path]))
    assert [(i.location.row, i.location.line) for i in items] == [(0, None), (1, None)]
    assert str(items[1].location) == f"{path}[row 1]"
    # A struct field absent from a message reads back as None; the shapes treat None as absent.
    assert items[0].data == {"messages": [{"role": "user", "content": "Hi", "weight": None},
                                          {"role": "assistant", "content": "Hello", "weight": None}]}
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ReaderError, match="broken.parquet: not a readable Parquet file"):
        list(read_records([broken]))


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list([CHAT, CHAT]).save_to_disk(tmp_path / "one")
    DatasetDict({"train": Dataset.from_list([CHAT] * 3), "test": Dataset.from_list([CHAT])}).save_to_disk(tmp_path / "two")
    one = list(read_records([tmp_path / "one"]))
    assert [i.location for i in one] == [Location(str(tmp_path / "one"), row=0), Location(str(tmp_path / "one"), row=1)]
    assert one[0].data == CHAT
    assert len(list(read_records([tmp_path / "two"], split="train"))) == 3
    assert len(list(read_records([tmp_path / "two"], split="test"))) == 1
    with pytest.raises(ReaderError, match="has several splits \\(train, test\\); choose one with --split"):
        list(read_records([tmp_path / "two"]))
    with pytest.raises(ReaderError, match="has no split 'dev' \\(splits: train, test\\)"):
        list(read_records([tmp_path / "two"], split="dev"))


def test_dataset_name_from_the_local_cache_only(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    offline = datasets.config.HF_HUB_OFFLINE
    cache_hub_dataset(tmp_path / "cache", "team/toy_chat", {"train": [CHAT] * 3, "test": [CHAT]})
    items = list(read_records(["hf:team/toy_chat"], split="train"))
    assert [i.location for i in items] == [Location("hf:team/toy_chat", row=r) for r in range(3)]
    assert items[0].data == CHAT
    with pytest.raises(ReaderError, match="several splits"):
        list(read_records(["hf:team/toy_chat"]))
    with pytest.raises(ReaderError, match="hf:team/absent: not found in the local datasets cache .*sftconv does not "
                                          "download"):
        list(read_records(["hf:team/absent"]))
    assert datasets.config.HF_HUB_OFFLINE == offline  # sftconv's offline switch is put back after reading


def test_expand_inputs(tmp_path):
    from datasets import Dataset

    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/b.jsonl", "d/a.jsonl", "d/sub/c.jsonl.gz", "d/.hidden.jsonl", "d/README.md", "e.jsonl"]:
        (tmp_path / name).write_text("")
    Dataset.from_list([CHAT]).save_to_disk(tmp_path / "d" / "saved")
    found = expand_inputs([str(tmp_path / "d"), str(tmp_path / "*.jsonl"), str(tmp_path / "d" / "a.jsonl"),
                           "hf:team/toy_chat"])
    assert [p if isinstance(p, str) else p.relative_to(tmp_path).as_posix() for p in found] == [
        "d/a.jsonl", "d/b.jsonl", "d/saved", "d/sub/c.jsonl.gz", "e.jsonl", "hf:team/toy_chat"]
    assert expand_inputs([str(tmp_path / "d" / "saved")]) == [tmp_path / "d" / "saved"]
    with pytest.raises(FileNotFoundError, match="no such file or folder: .*missing"):
        expand_inputs([str(tmp_path / "missing.jsonl")])
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "*.parquet")])
    with pytest.raises(FileNotFoundError, match=r"team/chats \(for a Hugging Face dataset name, write hf:team/chats\)"):
        expand_inputs(["team/chats"])


def test_unknown_file_type_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"no reader for this file type \(known: .jsonl, .ndjson, .json, .csv, .parquet"):
        reader_for(tmp_path / "data.xlsx")
    assert reader_for(tmp_path / "data.JSONL.ZST").name == "jsonl"
    assert reader_for(tmp_path / "data.json.gz").name == "json"
