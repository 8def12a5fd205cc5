"""Crash safety and --resume: a killed run leaves only whole shards, and a resumed run writes the bytes of a clean one."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.units import WORK_DIR

from .conftest import write_jsonl
from .test_workers import chat

UNIT = "40KB"  # small units, so a run of a few seconds has dozens of them


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 8 MB of conversations with a few bad lines: ~200 units, about 3 s to convert with one worker."""
    rng = random.Random(5)
    lines: list = [chat(rng) for _ in range(6_000)]
    for at in (10, 2_000, 4_500):
        lines.insert(at, "not json")
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "chats.jsonl", lines)


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory) -> Path:
    """An uninterrupted run, the reference every resumed run must equal byte for byte."""
    out = tmp_path_factory.mktemp("clean") / "out"
    result = CliRunner().invoke(main, ["convert", str(corpus), "-o", str(out), "--unit-size", UNIT, "-q", "-j", "1"])
    assert result.exit_code == 0, result.output
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_run_killed_at_random_moments_resumes_to_the_bytes_of_a_clean_run(corpus, clean, tmp_path):
    rng = random.Random(2026)
    command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "--unit-size", UNIT, "-q", "-j", "1"]
    for attempt in range(4):
        out = tmp_path / f"out{attempt}"
        process = subprocess.Popen([*command, "-o", str(out)], start_new_session=True)
        time.sleep(rng.uniform(0.8, 3.2))  # start-up takes about a second, the conversion about two more
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if not out.exists():
            continue
        # Only whole files under final names: every shard reads completely, and no manifest before the end.
        for path in out.glob("part-*.parquet"):
            assert pq.read_table(path).num_rows > 0
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp") and not p.name.startswith(".")]
        if not (out / "manifest.json").exists():
            assert (out / WORK_DIR).is_dir()
        resumed = subprocess.run([*command, "-o", str(out), "--resume"], capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr
        assert files(out) == files(clean)
        assert not (out / WORK_DIR).exists()


def test_resume_redoes_a_unit_whose_shard_changed_and_only_that_unit(corpus, clean, tmp_path):
    out = tmp_path / "out"
    args = ["convert", str(corpus), "-o", str(out), "--unit-size", UNIT, "-q", "-j", "1"]
    # Stop a run after its first units by making one fail: a folder where a shard must go.
    out.mkdir()
    (out / "part-00003-shard-00000.parquet").mkdir()
    failed = CliRunner().invoke(main, args + ["--resume"])
    assert failed.exit_code == 1
    (out / "part-00003-shard-00000.parquet").rmdir()
    receipts = sorted(p.name for p in (out / WORK_DIR).glob("part-*.json"))
    assert receipts == [f"part-{i:05d}.json" for i in range(3)]
    first = out / "part-00001-shard-00000.parquet"
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")  # damaged after it was finished
    kept = (out / "part-00000-shard-00000.parquet").stat().st_mtime_ns
    result = CliRunner().invoke(main, args + ["--resume"])
    assert result.exit_code == 0, result.output
    assert files(out) == files(clean)
    assert (out / "part-00000-shard-00000.parquet").stat().st_mtime_ns == kept


def test_resume_refuses_a_run_of_other_options_and_a_plain_rerun_points_at_resume(corpus, tmp_path):
    out = tmp_path / "out"
    args = ["convert", str(corpus), "-o", str(out), "--unit-size", UNIT, "-q", "-j", "1"]
    (out / "part-00000-shard-00000.parquet").mkdir(parents=True)  # the first unit fails, after the run is recorded
    assert CliRunner().invoke(main, args + ["--resume"]).exit_code == 1
    (out / "part-00000-shard-00000.parquet").rmdir()
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 1 and "pass --resume to finish that run, or --overwrite" in plain.output
    other = CliRunner().invoke(main, args + ["--resume", "--train-on", "all"])
    assert other.exit_code == 1
    assert "holds an interrupted run of other inputs or options" in other.output
    both = CliRunner().invoke(main, args + ["--resume", "--overwrite"])
    assert both.exit_code == 2


def test_resume_of_a_finished_run_checks_it_and_changes_nothing(clean, corpus, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(clean, out)
    before = files(out)
    (out / WORK_DIR).mkdir()  # as a run killed right after writing its manifest leaves it
    args = ["convert", str(corpus), "-o", str(out), "--unit-size", UNIT, "-j", "1", "-q"]
    result = CliRunner().invoke(main, args + ["--resume"])
    assert result.exit_code == 0 and "already holds this run, finished" in result.output
    assert files(out) == before and not (out / WORK_DIR).exists()
    manifest = json.loads((out / "manifest.json").read_text())
    (out / manifest["shards"][2]["files"][0]["file"]).write_bytes(b"damaged")
    damaged = CliRunner().invoke(main, args + ["--resume"])
    assert damaged.exit_code == 1 and "differs from manifest.json" in damaged.output


@pytest.mark.parametrize("output_format, first_file", [("hf", "arrow"), ("megatron", "input_ids.bin"), ("jsonl", "jsonl")])
def test_every_format_resumes_to_the_bytes_of_a_clean_run(tmp_path, output_format, first_file):
    rng = random.Random(8)
    source = write_jsonl(tmp_path / "in.jsonl", [chat(rng) for _ in range(600)] + ["not json"])
    args = ["convert", str(source), "--format", output_format, "--unit-size", "20KB", "--shard-rows", "7", "-q"]
    assert CliRunner().invoke(main, [*args, "-o", str(tmp_path / "clean")]).exit_code == 0
    out = tmp_path / "out"
    blocker = out / f"part-00004-shard-00001.{first_file}"
    blocker.mkdir(parents=True)  # unit 4 fails after its first shard
    assert CliRunner().invoke(main, [*args, "-o", str(out), "--resume"]).exit_code == 1
    assert (out / f"part-00004-shard-00000.{first_file}").exists()  # whole; unit 4 has no receipt, so resume redoes it
    blocker.rmdir()
    assert CliRunner().invoke(main, [*args, "-o", str(out), "--resume"]).exit_code == 0
    assert files(out) == files(tmp_path / "clean")


def test_resume_checks_the_format_and_leaves_files_of_others_alone(corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-00000-1b2c.snappy.parquet").write_bytes(b"a Spark file")  # named like ours, but not ours
    (out / "part-00002-shard-00000.parquet").mkdir()  # unit 2 fails, after the run is recorded
    args = ["convert", str(corpus), "-o", str(out), "--unit-size", UNIT, "-q", "-j", "1"]
    assert CliRunner().invoke(main, args + ["--overwrite"]).exit_code == 1
    (out / "part-00002-shard-00000.parquet").rmdir()
    other = CliRunner().invoke(main, args + ["--resume", "--format", "hf"])
    assert other.exit_code == 1 and "holds an interrupted run of other inputs or options" in other.output
    assert CliRunner().invoke(main, args + ["--resume"]).exit_code == 0
    assert (out / "part-00000-1b2c.snappy.parquet").read_bytes() == b"a Spark file"
    finished = CliRunner().invoke(main, args + ["--resume", "--format", "jsonl"])
    assert finished.exit_code == 1 and "holds a finished run of other inputs or options" in finished.output
