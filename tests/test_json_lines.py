"""The JSON Lines fast path (msgspec) reads every line exactly as json.loads does, and chunks change nothing."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.conversation import INVALID_JSON, INVALID_UTF8, Location, Record, Rejected
from sftconv.readers import jsonl
from sftconv.readers.jsonl import JsonlReader, parse_lines


def reference(lines: list[bytes], source: str) -> list:
    """The reader's rules with json.loads alone: the behaviour the fast path must keep, error texts included."""
    out = []
    for number, raw in enumerate(lines, 1):
        location = Location(source, line=number)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            out.append(Rejected(location, INVALID_UTF8, str(error), raw.decode("utf-8", "replace")))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            out.append(Record(location, json.loads(text, strict=False)))
        except json.JSONDecodeError as error:
            out.append(Rejected(location, INVALID_JSON, str(error), text.rstrip("\r\n")))
    return out


def same(items: list, expected: list) -> bool:
    """Equal records, compared by repr too, so 1 and 1.0, -0.0 and 0.0, and key order all count."""
    return items == expected and repr(items) == repr(expected)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
ODD_LINES = [
    b'{"a": "x\ty"}', b'{"a": "\\ud800"}', b'{"a": "\\ud83d\\ude00"}', b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}',
    b'{"a": -0.0}', b'{"a": 1, "a": 2, "b": 3}', b'{"a": 123456789012345678901234567890}', b'{"a": 1.0}',
    b'{"a": "caf\xe9"}', b'{"a": "\xed\xa0\x80"}', b"\xef\xbb\xbf{}", b'{"a": 1,}', b"{'a': 1}", b'{"a": 1} x',
    b"", b"   ", b"\t", b"\r", b'{"a": "\x00"}', b'"just a string"', b"[1, 2]", b"007", b'{"a": .5}', b"\x0c{}",
    b'{"a": [' * 100 + b"]" * 100 + b"}", b'{"\\u00e9": "\\/"}', b'{"a": 2.2250738585072011e-308}',
]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(JSON, max_size=6), ascii_only=st.booleans(), endings=st.sampled_from([b"\n", b"\r\n", b" \n"]),
       odd=st.lists(st.sampled_from(ODD_LINES), max_size=4), data=st.data())
def test_fast_path_reads_every_line_as_json_does(values, ascii_only, endings, odd, data):
    lines = [json.dumps(v, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") for v in values] + odd
    lines = data.draw(st.permutations(lines))
    raw = [line + endings for line in lines]
    assert same(list(parse_lines(raw, "x.jsonl")), reference(raw, "x.jsonl"))


def test_odd_lines_one_by_one():
    for line in ODD_LINES:
        for number in (1, 2):  # the first line also takes a byte-order mark
            raw = [b"{}\n"] * (number - 1) + [line + b"\n"]
            assert same(list(parse_lines(raw, "x.jsonl")), reference(raw, "x.jsonl")), line


def test_chunks_number_lines_as_one_pass_does(tmp_path, monkeypatch):
    lines = [b'{"n": %d}\n' % i if i % 7 else b"\n" if i % 2 else b"not json\n" for i in range(500)]
    lines[250] = b'{"long": "%s"}\n' % (b"x" * 5000)  # a line that spans many reads
    (tmp_path / "in.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(lines) + b'{"last": "no newline"}')
    whole = reference((tmp_path / "in.jsonl").read_bytes().splitlines(keepends=True), str(tmp_path / "in.jsonl"))
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 50)
    chunks = list(JsonlReader().chunks(tmp_path / "in.jsonl"))
    assert len(chunks) > 50
    assert same([item for chunk in chunks for item in chunk.records()], whole)
