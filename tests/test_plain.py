"""The batch path for plain records writes what the per-record path writes, record for record and byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftconv.pipeline import ConvertOptions, FileShapes, SourceOptions, convert, encode_chunk, encode_records, open_source
from sftconv.readers.jsonl import LineChunk
from sftconv.readers.parquet import ParquetReader
from sftconv.shapes import FieldMapping
from sftconv.template import MaskPolicy
from sftconv.template.reasoning import ReasoningPolicy
from sftconv.tokenizer_backends import fastokens_version

BACKENDS = ["tiktoken"] + (["fastokens"] if fastokens_version() else [])
ROLES = ["system", "user", "assistant", "User", "ASSISTANT", "human", "gpt", "tool", "bot", "narrator"]
TEXTS = ["Hello", " world ", "", "   ", "\n\n", "日本語 🙂", "<|eot_id|>", "<|start", "[INST] hi [/INST]", "<s>",
         "<image> what is it", "<think>a plan</think>The answer", "I think> not a tag", "x < y and a[0]", "a" * 300,
         "<<SYS>>", "<|im_start|>", "\u0301e", "1234567"]
turn_text = st.lists(st.sampled_from(TEXTS), min_size=1, max_size=3).map("".join)


@st.composite
def records(draw) -> list:
    """Records of the OpenAI shape: mostly plain, some with roles out of order, empty turns, marked text, other
    fields, non-string contents, or not objects at all."""
    result = []
    for _ in range(draw(st.integers(1, 12))):
        turns = []
        if draw(st.booleans()):
            turns.append({"role": "system", "content": draw(turn_text)})
        for index in range(draw(st.integers(0, 4))):
            turns.append({"role": draw(st.sampled_from(ROLES)) if draw(st.integers(0, 5)) == 0
                          else ("user", "assistant")[index % 2], "content": draw(turn_text)})
        odd = draw(st.integers(0, 12))
        if odd == 0 and turns:
            turns[0] = {**turns[0], "weight": 1}
        elif odd == 1 and turns:
            turns[-1] = {**turns[-1], "content": None}
        elif odd == 2 and turns:
            turns[-1] = {**turns[-1], "content": [{"type": "text", "text": "parts"}]}
        record = {"messages": turns}
        if odd == 3:
            record["id"] = "r1"
        elif odd == 4:
            record = turns
        elif odd == 5:
            record["images"] = ["a.png"]
        elif odd == 6:
            record = 42
        elif odd == 7:
            record["note"] = {"text": draw(turn_text), "n": [1, None]}  # a field the batch path skips
        elif odd == 8:
            record[draw(st.sampled_from(["system", "tools", "label", "chosen", "image", "conversations"]))] = \
                draw(st.sampled_from(["S", True, False, None, [], ["a.png"]]))
        result.append(record)
    return result


def jsonl_bytes(items: list, extra: str) -> bytes:
    """The records as JSON Lines, with a byte-order mark, a blank line, a broken line and such, as `extra` says."""
    lines = [json.dumps(item, ensure_ascii=extra == "ascii") for item in items]
    if extra == "bom":
        lines[0] = "\ufeff" + lines[0]
    elif extra == "blank":
        lines.insert(len(lines) // 2, "   ")
    elif extra == "broken":
        lines.insert(len(lines) // 2, '{"messages": [')
    elif extra == "escaped":  # what some writers do (Go's encoding/json escapes <, > and &)
        lines = [line.replace("<", "\\u003c").replace("/", "\\/").replace("I", "\\u0049") for line in lines]
    return ("\n".join(lines) + "\n").encode("utf-8")


def job_for(path: Path, **options) -> tuple[FileShapes, object]:
    source = open_source([str(path)], SourceOptions(**options))
    return source.shape, source.template


def same_result(job, chunk) -> None:
    """The chunk through `encode_chunk` (the batch path where it applies) equals the per-record path's result."""
    fast = encode_chunk(job, chunk)
    slow = encode_records(job, enumerate(chunk.records()))[0]
    assert fast.read == slow.read
    assert [(i, r.location, r.reason, r.detail) for i, r in fast.rejected] == \
           [(i, r.location, r.reason, r.detail) for i, r in slow.rejected]
    assert np.array_equal(fast.samples.lengths, slow.samples.lengths)
    assert np.array_equal(fast.samples.input_ids, slow.samples.input_ids)
    assert np.array_equal(fast.samples.loss_mask, slow.samples.loss_mask)
    assert (fast.marked, fast.warned, fast.reasoning) == (slow.marked, slow.warned, slow.reasoning)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("policy", list(MaskPolicy))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records(), extra=st.sampled_from(["", "bom", "blank", "broken", "ascii", "escaped"]),
       first=st.sampled_from([1, 7]))
def test_json_lines_chunks_give_what_the_per_record_path_gives(tmp_path, backend, policy, items, extra, first):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                    + "\n")
    job = job_for(path, tokenizer_backend=backend, train_on=policy)
    chunk = LineChunk(str(path), first, jsonl_bytes(items, extra))
    assert job[0].plain(chunk, job[1]) is not None
    same_result(job, chunk)


def test_most_records_of_a_plain_chunk_take_the_batch_path_and_the_others_keep_their_place(tmp_path):
    path = tmp_path / "in.jsonl"
    plain = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    items = [plain, {**plain, "id": 3}, plain, {"messages": [{"role": "assistant", "content": "no"}]}, plain,
             {**plain, "source": "<|im_start|>"}, {**plain, "system": "Be brief."}, plain["messages"]]
    path.write_bytes(jsonl_bytes(items, ""))
    job = job_for(path)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    batch = job[0].plain(chunk, job[1])
    # Line 1 is never batched; marked text in another field, or a field the shape reads, take the per-record path.
    assert batch.places == [1, 2, 4, 7] and [place for place, _ in batch.others] == [0, 3, 5, 6]
    result = encode_chunk(job, chunk)
    assert [(i, r.reason) for i, r in result.rejected] == [(3, "assistant_before_user")]
    assert len(result.samples) == 7 and result.marked == 1
    same_result(job, chunk)


@pytest.mark.parametrize("options", [
    {"system": "Be brief."}, {"template": "llama3.1"}, {"reasoning": ReasoningPolicy(empty=True)},
    {"mapping": FieldMapping(content="content")},
])
def test_options_that_change_plain_records_turn_the_batch_path_off(tmp_path, options):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([{"messages": [{"role": "user", "content": "Hi"},
                                                {"role": "assistant", "content": "Hello"}]}] * 3, ""))
    job = job_for(path, **options)
    assert job[0].plain(LineChunk(str(path), 1, path.read_bytes()), job[1]) is None


def test_sharegpt_records_take_the_batch_path_too(tmp_path):
    path = tmp_path / "in.jsonl"
    turn = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    items = [turn, turn, {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": " "}]}, turn]
    path.write_bytes(jsonl_bytes(items, ""))
    job = job_for(path)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    assert job[0].plain(chunk, job[1]).places == [1, 3]
    same_result(job, chunk)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records())
def test_parquet_batches_give_what_the_per_record_path_gives(tmp_path, backend, items):
    turns = [[{"role": t["role"], "content": t["content"] if isinstance(t.get("content"), str) else "x"}
              for t in item["messages"]] for item in items if isinstance(item, dict)]
    turn_type = pa.struct([("role", pa.string()), ("content", pa.string())])
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"messages": pa.array(turns or [[]], pa.list_(turn_type))}), path)
    job = job_for(path, tokenizer_backend=backend)
    for chunk in ParquetReader().chunks(path):
        assert job[0].plain(chunk, job[1]) is not None
        same_result(job, chunk)


def test_parquet_batches_with_other_columns_or_nulls_take_the_per_record_path(tmp_path):
    turn_type = pa.struct([("role", pa.string()), ("content", pa.string())])
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"messages": pa.array([chat], pa.list_(turn_type))}), path)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"messages": pa.array([chat[:1]], pa.list_(turn_type)), "id": [1]}), other)
    for file in (path, other):
        job = job_for(file, shape="openai")
        chunk = next(ParquetReader().chunks(file))
        assert job[0].plain(chunk, job[1]) is None


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_a_converted_file_has_the_same_bytes_with_the_batch_path_and_without(tmp_path, monkeypatch, suffix):
    import random

    rng = random.Random(5)
    items = [{"messages": [{"role": "user", "content": rng.choice(TEXTS) + "q"},
                           {"role": "assistant", "content": rng.choice(TEXTS) + "a"}] * rng.randint(1, 3)}
             for _ in range(3000)]
    items[::50] = [{"messages": [{"role": "assistant", "content": "first"}]}] * len(items[::50])  # rejected
    path = tmp_path / f"in.{suffix}"
    if suffix == "jsonl":
        path.write_bytes(jsonl_bytes(items, ""))
    else:
        pq.write_table(pa.Table.from_pylist(items), path)
    options = ConvertOptions(unit_bytes=1 << 16, shard_rows=700)
    fast = convert([str(path)], tmp_path / "fast", options, workers=2)
    monkeypatch.setattr(FileShapes, "plain", lambda self, chunk, template: None)
    slow = convert([str(path)], tmp_path / "slow", options, workers=2)
    assert fast.to_json() == slow.to_json() and fast.written > 2000 and fast.rejected
    names = sorted(p.name for p in (tmp_path / "fast").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "slow").iterdir())
    for name in names:
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "slow" / name).read_bytes(), name


def test_a_job_that_used_the_batch_path_still_pickles_for_other_processes(tmp_path):
    import pickle

    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([{"messages": [{"role": "user", "content": "Hi"},
                                                {"role": "assistant", "content": "Hello"}]}] * 3, ""))
    job = job_for(path)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    first = encode_chunk(job, chunk)
    again = encode_chunk(pickle.loads(pickle.dumps(job)), chunk)
    assert np.array_equal(first.samples.input_ids, again.samples.input_ids) and len(again.samples) == 3


@st.composite
def exchanges(draw, prompt: str, answer: str, extra: str | None) -> list:
    """Records of the Alpaca (`extra`: its input field) or prompt/completion shape, some of them not plain."""
    result = []
    for _ in range(draw(st.integers(1, 10))):
        record = {prompt: draw(turn_text), answer: draw(turn_text)}
        if extra and draw(st.booleans()):
            record[extra] = draw(st.one_of(st.none(), turn_text))
        odd = draw(st.integers(0, 10))
        if odd == 0:
            record[answer] = None
        elif odd == 1:
            del record[prompt]
        elif odd == 2:
            record[draw(st.sampled_from(["system", "history", "reasoning_content", "response", "images", "label"]))] = \
                draw(st.sampled_from(["S", [["q", "a"]], "why", None, True, False, ["a.png"], 3]))
        elif odd == 3:
            record["text"] = draw(turn_text)  # a field the shape ignores, such as a pre-rendered text
        elif odd == 4:
            record[prompt] = 7
        result.append(record)
    return result


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fields", [("instruction", "output", "input"), ("prompt", "completion", None)])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), extra=st.sampled_from(["", "escaped", "ascii"]), policy=st.sampled_from(list(MaskPolicy)))
def test_alpaca_and_prompt_completion_chunks_give_what_the_per_record_path_gives(tmp_path, backend, fields, data,
                                                                                extra, policy):
    prompt, answer, extra_field = fields
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({prompt: "q", answer: "a"}) + "\n")
    job = job_for(path, tokenizer_backend=backend, train_on=policy)
    assert job[0].names[str(path)] == ("alpaca" if extra_field else "prompt-completion")
    chunk = LineChunk(str(path), 2, jsonl_bytes(data.draw(exchanges(prompt, answer, extra_field)), extra))
    assert job[0].plain(chunk, job[1]) is not None
    same_result(job, chunk)


def test_alpaca_records_join_a_non_blank_input_to_the_instruction_in_the_batch_path(tmp_path):
    path = tmp_path / "in.jsonl"
    items = [{"instruction": "Translate.", "input": "Bonjour", "output": "Hello"},
             {"instruction": "Say hi.", "input": "  ", "output": "Hi"},
             {"instruction": "Say hi.", "input": None, "output": "Hi", "id": 9}]
    path.write_bytes(jsonl_bytes([items[0]] + items, ""))
    job = job_for(path)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    batch = job[0].plain(chunk, job[1])
    assert batch.places == [1, 2, 3] and batch.contents == ["Translate.\nBonjour", "Hello", "Say hi.", "Hi", "Say hi.", "Hi"]
    same_result(job, chunk)


@pytest.mark.parametrize("with_input", [True, False])
def test_alpaca_parquet_batches_give_what_the_per_record_path_gives(tmp_path, with_input):
    import random

    rng = random.Random(3)
    rows = [{"instruction": rng.choice(TEXTS) + "?", "output": rng.choice(TEXTS),
             **({"input": rng.choice([None, "", " x ", "<image>"])} if with_input else {})} for _ in range(600)]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    job = job_for(path)
    chunks = list(ParquetReader().chunks(path))
    assert all(job[0].plain(chunk, job[1]) is not None for chunk in chunks)
    for chunk in chunks:
        same_result(job, chunk)


class Loading:
    """A tokenizer whose background load ends after `calls` questions (what `split_ahead` asks of it)."""

    def __init__(self, calls: int):
        self.calls = calls

    def loading(self) -> bool:
        self.calls -= 1
        return self.calls >= 0


def test_chunks_are_split_ahead_while_the_tokenizer_loads_and_then_read_as_before(tmp_path):
    from sftconv.plain import SplitChunk, split_ahead
    from sftconv.readers.jsonl import JsonlReader

    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([{"messages": [{"role": "user", "content": f"q{i}" * 2000},
                                                {"role": "assistant", "content": "a"}]} for i in range(300)], ""))
    job = job_for(path)
    chunks = list(JsonlReader().chunks(path))
    ahead = list(split_ahead(JsonlReader().chunks(path), lambda c: job[0].plain(c, job[1]), Loading(2)))
    assert len(chunks) > 3 and [type(c) for c in ahead] == [SplitChunk, SplitChunk] + [LineChunk] * (len(chunks) - 2)
    for split, chunk in zip(ahead, chunks):
        fast, slow = encode_chunk(job, split), encode_records(job, enumerate(chunk.records()))[0]
        assert np.array_equal(fast.samples.input_ids, slow.samples.input_ids) and fast.read == slow.read


def test_a_read_failure_met_splitting_ahead_is_raised_in_its_place(tmp_path):
    from sftconv.plain import split_ahead

    def chunks():
        yield "first"
        raise OSError("disk gone")

    taken = split_ahead(chunks(), lambda c: None, Loading(5))
    assert next(taken) == "first"  # a chunk the batch path does not read ends the splitting: it comes back as it is
    with pytest.raises(OSError, match="disk gone"):
        next(taken)


def test_a_fresh_process_that_splits_ahead_writes_the_bytes_of_one_that_does_not(tmp_path):
    import subprocess
    import sys

    if "fastokens" not in BACKENDS:
        pytest.skip("fastokens has no wheel for this platform: nothing loads in a thread")
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([{"messages": [{"role": "user", "content": f"question {i} " + TEXTS[i % len(TEXTS)]},
                                                {"role": "assistant", "content": "answer " * (i % 50)}]}
                                  for i in range(20000)], ""))
    outputs = {}
    for backend in ("fastokens", "tiktoken"):  # fastokens loads in a thread while chunks are split; tiktoken does not
        out = tmp_path / backend
        subprocess.run([sys.executable, "-m", "sftconv", "convert", str(path), "-o", str(out), "-q", "--workers", "2",
                        "--tokenizer-backend", backend], check=True)
        outputs[backend] = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "manifest.json"}
    assert outputs["fastokens"] == outputs["tiktoken"] and len(outputs["tiktoken"]) == 2


def test_marker_text_spelled_with_escapes_in_a_skipped_field_leaves_the_record_to_the_per_record_path(tmp_path):
    path = tmp_path / "in.jsonl"
    turns = '"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]'
    lines = [f'{{"id": 0, {turns}}}', f'{{"id": 1, {turns}}}', f'{{"note": "[\\u0049NST] hi", {turns}}}',
             f'{{"note": "\\u003c|eot_id|>", {turns}}}', f'{{"note": "<\\/s>", {turns}}}', f'{{"note": "caf\\u00e9", {turns}}}']
    path.write_text("\n".join(lines) + "\n")
    job = job_for(path)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    assert job[0].plain(chunk, job[1]).places == [1, 5]
    result = encode_chunk(job, chunk)
    assert result.marked == 3 and len(result.samples) == 6
    same_result(job, chunk)


CHAT = '"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]'


@pytest.mark.parametrize("line", [
    b'{"note": "caf\xe9", ' + CHAT.encode() + b'}',  # not UTF-8, in a field the typed decoder skips
    b'{"note": "\xed\xa0\x80", ' + CHAT.encode() + b'}',
    b'{"note": ' + b"[" * 5000 + b"]" * 5000 + b', ' + CHAT.encode() + b'}',  # nested too deeply to decode
    ('{"messages": [{"role": "user", "content": "' + " " * 4_000_000 + 'x"}, '
     '{"role": "assistant", "content": "a"}]}').encode(),  # too long, though short once trimmed
], ids=["latin1", "surrogate-bytes", "deep", "padded"])
def test_lines_the_per_record_path_rejects_are_rejected_whatever_field_holds_the_fault(tmp_path, line):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                    + "\n")
    job = job_for(path)
    chunk = LineChunk(str(path), 2, line + b"\n" + ("{" + CHAT + "}\n").encode())
    result = encode_chunk(job, chunk)
    assert len(result.rejected) == 1 and len(result.samples) == 1
    same_result(job, chunk)


def test_a_parquet_turn_too_long_only_with_its_whitespace_is_rejected(tmp_path):
    turn_type = pa.struct([("role", pa.string()), ("content", pa.string())])
    path = tmp_path / "in.parquet"
    chats = [[{"role": "user", "content": "x" + "\n" * 4_000_000}, {"role": "assistant", "content": "a"}],
             [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a"}]]
    pq.write_table(pa.table({"messages": pa.array(chats, pa.list_(turn_type))}), path)
    job = job_for(path)
    chunk = next(ParquetReader().chunks(path))
    assert [r.reason for _, r in encode_chunk(job, chunk).rejected] == ["text_too_long"]
    same_result(job, chunk)


@pytest.mark.parametrize("alias", ["<image>", "<|user|>", "[INST]"])
def test_a_role_alias_holding_marker_text_is_scanned_as_the_per_record_path_scans_it(tmp_path, alias):
    path = tmp_path / "in.jsonl"
    record = {"messages": [{"role": alias, "content": "Hi"}, {"role": "assistant", "content": "a"}]}
    path.write_bytes(jsonl_bytes([record] * 3, ""))
    for special_text in ("keep", "reject"):
        job = job_for(path, mapping=FieldMapping(roles={alias: "user"}), special_text=special_text)
        chunk = LineChunk(str(path), 2, path.read_bytes())
        assert encode_chunk(job, chunk).marked + sum(encode_chunk(job, chunk).warned.values()) == 3
        same_result(job, chunk)


def test_a_chunk_that_fails_to_split_ahead_is_left_for_the_worker(tmp_path):
    from sftconv.plain import split_ahead

    def split(chunk):
        raise RuntimeError("a bug in the batch path")

    assert list(split_ahead((c for c in ["a", "b"]), split, Loading(5))) == ["a", "b"]
