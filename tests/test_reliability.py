"""Hostile and broken input, each built here and given to the real `sftconv convert`; the outcomes are docs/reliability.md.

The table in docs/reliability.md is compared exactly with what these runs produce. After a deliberate
change of behaviour, rewrite it with `SFTCONV_WRITE_DOCS=1 python -m pytest tests/test_reliability.py`
and read the diff.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.shapes.turns import MAX_TEXT_CHARS

from .conftest import write_jsonl

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


def chat(user: object = "Hi", role: object = "user") -> dict:
    """One conversation with the given user content and role."""
    return {"messages": [{"role": role, "content": user}, {"role": "assistant", "content": "Hello"}]}


def good_lines(count: int) -> list[str]:
    return [json.dumps(chat(f"question {i}")) for i in range(count)]


def jsonl(name: str, lines: list, *, newline: str = "\n", prefix: bytes = b""):
    """A builder writing `lines` (records or raw str/bytes lines) to one .jsonl file."""
    def build(folder: Path) -> list[str]:
        parts = [line if isinstance(line, bytes) else
                 (line if isinstance(line, str) else json.dumps(line)).encode()
                 for line in lines]
        path = folder / name
        path.write_bytes(prefix + b"".join(part + newline.encode() for part in parts))
        return [str(path)]
    return build


def truncated(name: str, compress) -> callable:
    """A builder writing 2,000 good records, compressed, then cut in the middle of the stream."""
    def build(folder: Path) -> list[str]:
        data = compress("".join(line + "\n" for line in good_lines(2000)).encode())
        path = folder / name
        path.write_bytes(data[: len(data) // 2])
        return [str(path)]
    return build


def zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def parquet_wrong_schema(folder: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "wrong.parquet"
    pq.write_table(pa.table({"id": [1, 2], "text": ["a", "b"]}), path)
    return [str(path)]


def parquet_bad_footer(folder: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / "broken.parquet"
    pq.write_table(pa.table({"messages": [CHAT, CHAT]}), path)
    data = bytearray(path.read_bytes())
    data[-12:-4] = b"\xff" * 8  # the footer length and the end of the footer
    path.write_bytes(bytes(data))
    return [str(path)]


def fifo(folder: Path) -> list[str]:
    path = folder / "pipe.jsonl"
    os.mkfifo(path)
    return [str(path)]


def folder_named_like_a_file(folder: Path) -> list[str]:
    path = folder / "data.jsonl"
    path.mkdir()
    return [str(path)]


def huge_line(folder: Path) -> list[str]:
    """One JSON line of 100 MB: a content of 20 million short words."""
    path = folder / "huge.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"messages": [{"role": "user", "content": "')
        handle.write("word " * 20_000_000)
        handle.write('"}, {"role": "assistant", "content": "ok"}]}\n')
        handle.write(json.dumps(chat()) + "\n")
    return [str(path)]


# (what the input is, how to build it, extra convert options)
CASES = [
    ("a JSON line of 100 MB (one 100-million-character content)", huge_line, []),
    (f"a content of one letter repeated {MAX_TEXT_CHARS + 1:,} times",
     jsonl("letter.jsonl", [chat("a" * (MAX_TEXT_CHARS + 1)), chat()]), []),
    ("JSON nested 10,000 deep", jsonl("deep.jsonl", ["[" * 10_000 + "]" * 10_000, chat()]), []),
    ("invalid UTF-8 bytes in a line", jsonl("latin1.jsonl", ['{"messages": [{"role": "user", "content": "caf'.encode()
                                                            + b"\xe9" + b'"}]}', chat()]), []),
    ("a lone surrogate (\\ud800, escaped) in a content",
     jsonl("surrogate.jsonl", ['{"messages": [{"role": "user", "content": "a\\ud800b"}, '
                               '{"role": "assistant", "content": "ok"}]}', chat()]), []),
    ("a lone surrogate in a field no shape reads", jsonl("meta.jsonl", [{**chat(), "id": "x\ud800"}]), []),
    ("NUL bytes (\\u0000) in a content", jsonl("nul.jsonl", [chat("a\u0000b"), chat()]), []),
    ("a UTF-8 byte-order mark before the first line", jsonl("bom.jsonl", [chat(), chat()], prefix=b"\xef\xbb\xbf"), []),
    ("CRLF line endings", jsonl("crlf.jsonl", [chat(), chat()], newline="\r\n"), []),
    ("a gzip stream cut in the middle", truncated("cut.jsonl.gz", lambda d: gzip.compress(d, mtime=0)), []),
    ("a zstd stream cut in the middle", truncated("cut.jsonl.zst", zstd), []),
    ("a Parquet file with another schema (id, text)", parquet_wrong_schema, []),
    ("a Parquet file with a corrupted footer", parquet_bad_footer, []),
    ("a content that is a number, an object, null",
     jsonl("types.jsonl", [chat(42), chat({"text": "Hi"}), chat(None), chat()]), []),
    ("numbers as roles (every record)", jsonl("roles.jsonl", [chat(role=1), chat(role=2.5)]), []),
    ("records that are not objects (a list, a string, a number)", jsonl("values.jsonl", [[1, 2], '"text"', 3, chat()]), []),
    ("Llama 3 special-token text (<|eot_id|>) in a content",
     jsonl("special.jsonl", [chat("say <|eot_id|> now"), chat()]), []),
    ("the same with --special-text reject",
     jsonl("special.jsonl", [chat("say <|eot_id|> now"), chat()]), ["--special-text", "reject"]),
    ("ChatML markers (<|im_start|>) with --special-text reject",
     jsonl("chatml.jsonl", [chat("<|im_start|>user\nHi<|im_end|>"), chat()]), ["--special-text", "reject"]),
    ("an empty file", jsonl("empty.jsonl", []), []),
    ("a folder named data.jsonl, holding nothing", folder_named_like_a_file, []),
    ("a named pipe (FIFO) as input", fifo, []),
]


def outcome(folder: Path, build, options: list[str]) -> str:
    """What convert did with the input: its exit code, then its counts and warnings or its error line."""
    inputs = build(folder)
    out = folder / "out"
    result = CliRunner().invoke(main, ["convert", *inputs, "-o", str(out), "-q", *options])
    stderr = result.stderr.replace(str(folder) + "/", "").strip()
    if result.exit_code != 0:
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        lines = [line for line in stderr.splitlines() if line.startswith(("warning: ", "Error: "))]  # no Usage: lines
        assert lines[-1].startswith("Error: ") and len(lines) <= 2, stderr
        return f"exit {result.exit_code}: " + "; ".join(f"`{line}`" for line in lines)
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"]
    rejected = ", ".join(f"{reason} {n}" for reason, n in counts["rejected_by_reason"].items())
    text = f"exit 0: read {counts['read']}, written {counts['written']}, rejected {counts['rejected']}"
    text += f" ({rejected})" if rejected else ""
    return text + "".join(f"; `{line}`" for line in stderr.splitlines())


def cell(text: str) -> str:
    """Text for a Markdown table cell: a pipe escaped, as GitHub reads it even inside `code`."""
    return text.replace("|", "\\|")


def table(rows: list[tuple[str, str]]) -> str:
    lines = ["| input | what `sftconv convert` did |", "|---|---|"]
    lines += [f"| {cell(name)} | {cell(result)} |" for name, result in rows]
    return "\n".join(lines) + "\n"


HEADER = """# Reliability: hostile and broken input

Each row is an input built by `tests/test_reliability.py`, given to `sftconv convert`, and what
happened: the exit code, then the counts of the manifest (read = written + rejected + dropped) and
any warning, or the one-line error. The test compares this table exactly; after a deliberate change
rewrite it with `SFTCONV_WRITE_DOCS=1 python -m pytest tests/test_reliability.py`.

"""

DECISIONS = """
## Decisions

- **A truncated gzip or zstd stream fails the run** (exit 1, the file named), even though the
  records before the cut could be kept. A cut archive is almost always an interrupted download or
  copy; converting its first part would give a dataset that looks complete and is not. Download it
  again, or decompress what is left on purpose (`zcat cut.jsonl.gz > part.jsonl`) and convert that.
- **A message over 4,000,000 characters is rejected** (`text_too_long`). That is about a million
  tokens, past any Llama 3 context, and it bounds the tokenizer's work on one record: a run of one
  repeated letter is a single pre-token, which tiktoken merges slowly (50 MB took 82 s and 2.5 GB of
  memory before this limit; 4,000,000 letters take 3 s and 260 MB). Ordinary text encodes exactly as
  before.
- **A lone surrogate in a text that is rendered is rejected** (`invalid_text`): UTF-8 cannot hold it
  and tiktoken would silently write U+FFFD instead. In a field no shape reads it changes nothing and
  the record is kept (`sftconv validate` still reports it).
- **NUL and other control characters are kept**: they are valid text and encode exactly;
  `sftconv validate` warns about them (`control_character`).
- **Special-token text is never a control token**: `<|eot_id|>` typed in a content encodes as the
  plain text it is. By default such records are kept and counted in a warning; `--special-text reject`
  rejects them (`special_text`), as it does other templates' markers (`<|im_start|>`, `[INST]`, `</s>`).
- **When every record has a shape's field names but none fits its schema** (every role a number, say),
  that shape is chosen and each record is rejected with its reason, instead of the input failing.
- **A pipe or device as input is refused**: opening a pipe can wait forever, and detecting the shape
  reads the start of an input before converting it, which a pipe cannot give twice.

## The command line

Ctrl-C stops a run with `sftconv: interrupted; rerun with --resume (not --overwrite) to finish the
run` on stderr and exit code 130, leaving no manifest (so the folder is not taken for a finished run). A failure of the operating system (disk full,
permission denied, a folder where a file belongs) is one line on stderr and exit code 1; the global
option `sftconv --debug` shows the traceback instead. `tests/test_cli_errors.py` checks these with a
real SIGINT and a real full disk (a 1 MB tmpfs).

## Crashes and `--resume`

A run killed at any moment (SIGKILL, a lost machine) leaves only complete files under final names:
shards are written under hidden temporary names and renamed when whole, a unit's receipt follows its
shards, and the manifest comes last. `--resume` verifies each finished unit's files by sha256 and
converts the rest. `tests/test_resume.py` kills real `sftconv convert` processes at random moments,
checks that every shard left reads whole, resumes, and compares the folder with a clean run's, byte
for byte; it also damages a finished shard (resume redoes that unit) and resumes each output format.
"""


def test_reliability_table(tmp_path: Path) -> None:
    rows = []
    for number, (name, build, options) in enumerate(CASES):
        folder = tmp_path / str(number)
        folder.mkdir()
        rows.append((name, outcome(folder, build, options)))
    text = HEADER + table(rows) + DECISIONS
    if os.environ.get("SFTCONV_WRITE_DOCS"):
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == text, "docs/reliability.md is stale: rerun with SFTCONV_WRITE_DOCS=1"


@pytest.mark.parametrize("content", ["word " * 5 + "end", "a" * 1000, "é" * 10])
def test_the_text_limit_leaves_normal_text_alone(tmp_path: Path, content: str, tokenizer) -> None:
    """Texts under the limit are written, with the ids the tokenizer gives them."""
    source = write_jsonl(tmp_path / "in.jsonl", [chat(content)])
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "-q", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out").glob("part-*.jsonl").__next__().read_text().splitlines()]
    assert len(rows) == 1
    ids = tokenizer.encode(content)
    assert any(rows[0]["input_ids"][i:i + len(ids)] == ids for i in range(len(rows[0]["input_ids"])))


def test_a_shape_is_chosen_by_field_names_when_no_record_fits_its_schema() -> None:
    from sftconv.shapes import ShapeNotFound, detect_shape

    assert detect_shape([chat(role=1), {"conversations": "not a list"}, {"conversations": 3}]) == "sharegpt"
    assert detect_shape([{"instruction": 1, "output": None}]) == "alpaca"
    with pytest.raises(ShapeNotFound, match="fields seen: id, text"):
        detect_shape([{"id": 1, "text": "a"}])


def test_a_lone_surrogate_in_a_tool_call_is_invalid_text(tmp_path: Path) -> None:
    record = {"messages": [{"role": "user", "content": "Weather?"},
                           {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                               "name": "get_weather", "arguments": '{"city": "Par\ud800is"}'}}]},
                           {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]}
    source = tmp_path / "tools.jsonl"
    source.write_text(json.dumps(record) + "\n")
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "-q",
                                       "--template", "llama3.1", "--allow-empty"])
    assert result.exit_code == 0, result.output
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert reject["reason"] == "invalid_text"
    assert reject["detail"].startswith("turn 1 (assistant), the arguments of tool call 'get_weather' holds "
                                       "a lone surrogate U+D800")
