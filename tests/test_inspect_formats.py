"""`sftconv inspect OUT_DIR` on every output format shows what `inspect` shows for the raw input, packed or not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.writers import WRITERS

from .conftest import write_jsonl
from .shard_support import main_file, manifest, read_rows, shard_files
from .test_inspect import bodies

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"
FORMATS = list(WRITERS)
EXTRA = [{"messages": [{"role": "user", "content": "  Typed <|eot_id|> and [[brackets]] here \n"},
                       {"role": "assistant", "content": "\tOK 🎌 東京\n\n"}]}]
PACKED_PLACE = re.compile(r"^(.+)\[row (\d+), sample (\d+)\]$")


def inspect(*args) -> object:
    result = CliRunner().invoke(main, ["inspect", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    """The examples (11 samples, 3 rejects) and one more sample with odd whitespace, emoji and CJK text."""
    folder = tmp_path_factory.mktemp("raw")
    (folder / "a.jsonl").write_bytes(EXAMPLES.read_bytes())
    write_jsonl(folder / "b.jsonl", EXTRA)
    return folder


@pytest.fixture(scope="module")
def raw_shown(raw) -> list[tuple[int, str, str]]:
    return bodies(inspect(raw, "--plain", "--head", 100).stdout)


def convert(raw: Path, out: Path, *args) -> Path:
    result = CliRunner().invoke(main, ["convert", str(raw), "-o", str(out), "-q", *map(str, args)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("output_format", FORMATS)
def test_each_format_shows_the_raw_samples(tmp_path, raw, raw_shown, output_format):
    out = convert(raw, tmp_path / "out", "--format", output_format, "--shard-rows", 4)
    result = inspect(out, "--plain", "--head", 100)
    assert result.stderr == ""
    shown = bodies(result.stdout)
    assert len(shown) == 12
    assert [(p, text) for p, _, text in shown] == [(p, text) for p, _, text in raw_shown]
    shards = manifest(out)["shards"]  # the first input's 11 samples in shards of 4, 4 and 3, then the second's 1
    assert [shard["rows"] for shard in shards] == [4, 4, 3, 1]
    assert [where for _, where, _ in shown] == [f"{main_file(out, s)}[row {r}]"
                                                for s, shard in enumerate(shards) for r in range(shard["rows"])]
    for args in (["--index", 7, "--index", 2], ["--sample", 4, "--seed", 3]):
        stored, direct = bodies(inspect(out, "--plain", *args).stdout), bodies(inspect(raw, "--plain", *args).stdout)
        assert [(p, text) for p, _, text in stored] == [(p, text) for p, _, text in direct]
    one = shard_files(out, 1)[-1]  # any file of a shard names that shard
    assert [(p, text) for p, _, text in bodies(inspect(one, "--plain", "--index", 0).stdout)] == [
        (0, raw_shown[4][2])]


@pytest.mark.parametrize("output_format", FORMATS)
def test_packed_rows_show_each_sample(tmp_path, raw, raw_shown, output_format):
    out = convert(raw, tmp_path / "out", "--format", output_format, "--pack", 256, "--shard-rows", 2)
    shown = bodies(inspect(out, "--plain", "--head", 100).stdout)
    assert [p for p, _, _ in shown] == list(range(12))
    assert sorted(text for _, _, text in shown) == sorted(text for _, _, text in raw_shown)
    places = [PACKED_PLACE.match(where).groups() for _, where, _ in shown]
    expected = []
    for shard in range(len(manifest(out)["shards"])):
        for row, found in enumerate(read_rows(out, output_format, shard)):
            expected += [(str(main_file(out, shard)), str(row), str(k)) for k in range(len(found["seq_lens"]))]
    assert places == expected and len(expected) > manifest(out)["counts"]["rows"]
    picked = bodies(inspect(out, "--plain", "--index", 11, "--index", 5).stdout)
    assert picked == [shown[11], shown[5]]


@pytest.mark.parametrize("output_format", FORMATS)
def test_stats_of_every_format_packed_or_not_are_the_raw_stats(tmp_path, raw, output_format):
    direct = inspect(raw, "--stats").stdout
    for options in ([], ["--pack", 256]):
        out = convert(raw, tmp_path / f"out{len(options)}", "--format", output_format, "--shard-rows", 3, *options)
        stored = inspect(out, "--stats").stdout
        assert stored.split(": ", 1)[1] == direct.split(": ", 1)[1]
        assert stored.startswith(f"{out}: 12 samples · ")
