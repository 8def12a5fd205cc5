"""Units: inputs cut into spans convert to the same rows, rejects and counts as inputs read whole."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sftconv.pipeline import ConvertOptions, convert
from sftconv.readers import JsonlReader, ParquetReader
from sftconv.units import WORK_DIR, plan_units

from .conftest import write_jsonl
from .test_workers import chat


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """JSON Lines (a byte-order mark, CRLF ends, bad lines) and Parquet with many row groups."""
    folder = tmp_path_factory.mktemp("units")
    rng = random.Random(11)
    lines: list = [chat(rng) for _ in range(200)]
    for at, bad in [(0, "not json"), (77, {"messages": []}), (78, ""), (150, {"messages": [{"role": "user", "content": "x"}]})]:
        lines.insert(at, bad)
    first = write_jsonl(folder / "a.jsonl", lines)
    first.write_bytes(b"\xef\xbb\xbf" + first.read_bytes().replace(b"\n", b"\r\n", 40))
    pq.write_table(pa.Table.from_pylist([chat(rng) for _ in range(120)]), folder / "b.parquet", row_group_size=15)
    return [first, folder / "b.parquet"]


def rows(out: Path) -> list:
    """Every row's ids and mask, in manifest order."""
    manifest = json.loads((out / "manifest.json").read_text())
    found = []
    for shard in manifest["shards"]:
        table = pq.read_table(out / shard["files"][0]["file"])
        found += zip(table["input_ids"].to_pylist(), table["loss_mask"].to_pylist())
    return found


def test_jsonl_spans_end_at_line_ends_and_know_their_first_line(inputs):
    data = inputs[0].read_bytes()
    spans = JsonlReader().spans(inputs[0], 3_000)
    assert len(spans) > 5
    assert spans[0].start == 0 and spans[-1].stop is None
    for span, after in zip(spans, spans[1:]):
        assert span.stop == after.start and data[span.stop - 1:span.stop] == b"\n"
        assert after.first == data[:after.start].count(b"\n") + 1


def test_parquet_spans_are_runs_of_whole_row_groups(inputs):
    spans = ParquetReader().spans(inputs[1], 1)
    assert [(s.start, s.stop, s.first) for s in spans] == [(i, i + 1 if i < 7 else None, 15 * i) for i in range(8)]
    assert ParquetReader().spans(inputs[1], 10**9) == [None]


def test_small_units_give_the_rows_rejects_and_counts_of_whole_inputs(inputs, tmp_path):
    whole = convert([str(p) for p in inputs], tmp_path / "whole", ConvertOptions())
    cut = convert([str(p) for p in inputs], tmp_path / "cut", ConvertOptions(unit_bytes=2_000))
    units = plan_units(inputs, split=None, unit_bytes=2_000)
    assert len(units) > 10 and len(whole.shards) == 2 and len(cut.shards) == len(units)
    assert rows(tmp_path / "whole") == rows(tmp_path / "cut")
    assert (tmp_path / "whole/rejects.jsonl").read_bytes() == (tmp_path / "cut/rejects.jsonl").read_bytes()
    assert whole.to_json() == cut.to_json()
    assert cut.read == cut.written + cut.rejected + cut.dropped == 200 + 4 - 1 + 120
    names = sorted(p.name for p in (tmp_path / "cut").iterdir())
    assert names == sorted(["manifest.json", "rejects.jsonl", *(f"{u.name}-shard-00000.parquet" for u in units)])
    assert not (tmp_path / "cut" / WORK_DIR).exists()
