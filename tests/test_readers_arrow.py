"""A single `.arrow` file as an input: a `datasets` cache file (IPC stream format) or an IPC file."""

from __future__ import annotations

import json

import pyarrow as pa
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.readers import reader_for
from sftconv.readers.arrow import ArrowReader

ROWS = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}], "id": i}
        for i in range(600)]


def saved_dataset(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    [arrow] = (tmp_path / "saved").glob("*.arrow")
    return arrow


def test_a_datasets_cache_file_reads_as_its_folder_does(tmp_path):
    arrow = saved_dataset(tmp_path)
    assert isinstance(reader_for(arrow), ArrowReader)
    records = list(ArrowReader().read(arrow))
    assert [r.data for r in records] == ROWS and [r.location.row for r in records] == list(range(600))
    for name, source in (("file", arrow), ("folder", tmp_path / "saved")):
        result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / name), "-q"])
        assert result.exit_code == 0, result.output
    shard = "part-00000-shard-00000.parquet"
    assert (tmp_path / "file" / shard).read_bytes() == (tmp_path / "folder" / shard).read_bytes()
    assert json.loads((tmp_path / "file" / "manifest.json").read_text())["counts"]["written"] == 600


def test_the_ipc_file_format_is_read_too(tmp_path):
    path = tmp_path / "chats.arrow"
    table = pa.Table.from_pylist(ROWS[:3])
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    assert [r.data for r in ArrowReader().read(path)] == ROWS[:3]


def test_a_file_that_is_not_arrow_is_an_error_naming_it(tmp_path):
    path = tmp_path / "broken.arrow"
    path.write_bytes(b"not arrow at all")
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and f"{path}: not a readable Arrow IPC file" in result.stderr
