"""Packing: rows never exceed N, every sample comes back exactly once, boundaries are explicit, rows are full."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sftconv.cli import main
from sftconv.conversation import Location
from sftconv.packing import Packer, PackedRow, best_fit_decreasing
from sftconv.template import Encoded

from .conftest import write_jsonl
from .loaders import load_rows, manifest

IGNORE_INDEX = -100


def samples_of(lengths: list[int]) -> list[Encoded]:
    """Distinguishable samples: sample k's ids all encode k, its mask trains every other token but the first."""
    return [Encoded([1000 + k] * n, [0] + [i % 2 for i in range(1, n)], Location("x", line=k))
            for k, n in enumerate(lengths)]


def unpack(input_ids: list[int], loss_mask: list[int], seq_lens: list[int]) -> list[tuple]:
    """A packed row's samples as (ids, mask) pairs, cut at its seq_lens."""
    samples, start = [], 0
    for length in seq_lens:
        samples.append((tuple(input_ids[start:start + length]), tuple(loss_mask[start:start + length])))
        start += length
    assert start == len(input_ids)
    return samples


def reference_bfd(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best fit decreasing written the slow, obvious way."""
    bins: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        rooms = [(capacity - sum(lengths[i] for i in b), number) for number, b in enumerate(bins)]
        fitting = [(room, number) for room, number in rooms if room >= lengths[index]]
        if fitting:
            bins[min(fitting)[1]].append(index)
        else:
            bins.append([index])
    return bins


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 50), data=st.data())
def test_best_fit_decreasing_matches_the_obvious_version(capacity, data):
    lengths = data.draw(st.lists(st.integers(1, capacity), max_size=60))
    assert best_fit_decreasing(lengths, capacity) == reference_bfd(lengths, capacity)


@settings(max_examples=300, deadline=None)
@given(seq_len=st.integers(1, 64), window=st.integers(1, 30), data=st.data())
def test_packing_keeps_every_sample_once_within_n(seq_len, window, data):
    lengths = data.draw(st.lists(st.integers(1, seq_len), max_size=120), label="lengths")
    batches = data.draw(st.lists(st.integers(1, 50), min_size=1), label="batch sizes")
    samples = samples_of(lengths)
    packer = Packer(seq_len, window)
    rows: list[PackedRow] = []
    fed = 0
    for size in batches * (len(samples) // sum(batches) + 1):
        rows += packer.add(samples[fed:fed + size])
        fed = min(fed + size, len(samples))
        # Bounded memory: what is held back is one window plus the samples of one carried row at most.
        assert fed - sum(len(r.seq_lens) for r in rows) < window + seq_len
    rows += packer.flush()
    for row in rows:
        assert 0 < len(row.input_ids) == len(row.loss_mask) == sum(row.seq_lens) <= seq_len
        assert row.position_ids == [p for n in row.seq_lens for p in range(n)]
        assert [i for i, p in enumerate(row.position_ids) if p == 0] == [sum(row.seq_lens[:k]) for k in range(len(row.seq_lens))]
    unpacked = [s for row in rows for s in unpack(row.input_ids, row.loss_mask, row.seq_lens)]
    assert Counter(unpacked) == Counter((tuple(s.input_ids), tuple(s.loss_mask)) for s in samples)
    again = Packer(seq_len, window)
    assert again.add(samples) + again.flush() == rows  # deterministic, whatever the batching


def test_packer_refuses_a_sample_longer_than_a_row():
    packer = Packer(8)
    packer.add(samples_of([9]))
    with pytest.raises(ValueError, match="a sample of 9 tokens cannot be packed into rows of 8"):
        packer.flush()
    with pytest.raises(ValueError, match="at least 1"):
        Packer(8, window=0)


def gpteacher_as_messages(shared_data, tmp_path):
    """GPTeacher's 4,535 code instructions (Alpaca-like) written as OpenAI messages for the convert command."""
    records = json.loads((shared_data / "GPTeacher" / "codegen-instruct.json").read_text())
    return write_jsonl(tmp_path / "gpteacher.jsonl", [{"messages": [
        {"role": "user", "content": r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "")},
        {"role": "assistant", "content": r["response"]}]} for r in records])


def test_packing_a_real_corpus_into_4096(tmp_path, shared_data):
    """The corpus: GPTeacher codegen-instruct, 4,535 samples of 40-360 tokens (about 513k tokens)."""
    source = gpteacher_as_messages(shared_data, tmp_path)
    runner = CliRunner()
    plain = runner.invoke(main, ["convert", str(source), "-o", str(tmp_path / "plain"), "-q"])
    packed = runner.invoke(main, ["convert", str(source), "-o", str(tmp_path / "packed"), "--pack", "4096"])
    assert plain.exit_code == 0 and packed.exit_code == 0, packed.output
    data = manifest(tmp_path / "packed")
    counts, packing = data["counts"], data["packing"]
    assert packing["efficiency"] >= 0.95
    assert packing["efficiency"] == pytest.approx(counts["tokens"] / (counts["rows"] * 4096), abs=1e-6)
    assert counts["written"] == packing["samples"] == manifest(tmp_path / "plain")["counts"]["written"] > 4000
    assert f"{packing['efficiency']:.1%} full" in packed.stdout
    rows = load_rows(tmp_path / "packed", "parquet", tmp_path / "cache")
    assert len(rows) == counts["rows"] == packing["rows"]
    originals = load_rows(tmp_path / "plain", "parquet", tmp_path / "cache")
    unpacked = []
    for row in rows:
        assert row["length"] == len(row["input_ids"]) == sum(row["seq_lens"]) <= 4096
        assert row["position_ids"] == [p for n in row["seq_lens"] for p in range(n)]
        starts = [sum(row["seq_lens"][:k]) for k in range(len(row["seq_lens"]))]
        assert all(row["labels"][s] == IGNORE_INDEX for s in starts)  # no sample is a continuation of another
        assert row["labels"] == [t if m else IGNORE_INDEX for t, m in zip(row["input_ids"], row["loss_mask"])]
        unpacked += unpack(row["input_ids"], row["loss_mask"], row["seq_lens"])
    assert Counter(unpacked) == Counter((tuple(r["input_ids"]), tuple(r["loss_mask"])) for r in originals)


def test_rows_are_what_hugging_face_padding_free_collation_builds(tmp_path):
    """DataCollatorWithFlattening, Hugging Face's padding-free path, builds the same ids, labels and positions."""
    from transformers import DataCollatorWithFlattening

    records = [{"messages": [{"role": "user", "content": f"Question {i}?" * (i % 7 + 1)},
                             {"role": "assistant", "content": f"Answer {i}." * (i % 5 + 1)}]} for i in range(200)]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    assert CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "--pack", "512",
                                     "--format", "hf", "-q"]).exit_code == 0
    collate = DataCollatorWithFlattening(return_tensors="np", return_flash_attn_kwargs=True)
    for row in load_rows(tmp_path / "out", "hf", tmp_path / "cache"):
        starts = [sum(row["seq_lens"][:k]) for k in range(len(row["seq_lens"]) + 1)]
        features = [{"input_ids": row["input_ids"][a:b], "labels": row["labels"][a:b]}
                    for a, b in zip(starts[:-1], starts[1:])]
        batch = collate(features)
        assert batch["input_ids"][0].tolist() == row["input_ids"]
        assert batch["labels"][0].tolist() == row["labels"]
        assert batch["position_ids"][0].tolist() == row["position_ids"]
        assert batch["cu_seq_lens_q"].tolist() == starts
