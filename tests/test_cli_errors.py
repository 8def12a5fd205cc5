"""The command line under real failures: Ctrl-C, a full disk, a folder or a pipe where a file belongs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main

from .conftest import interrupted_run, write_jsonl


def records(count: int) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"question {i} " * 20},
                          {"role": "assistant", "content": f"answer {i} " * 20}]} for i in range(count)]


def test_ctrl_c_stops_with_one_line_and_exit_130(tmp_path: Path) -> None:
    """A real SIGINT to a running convert: one line on stderr, exit code 130, no manifest left behind."""
    source = write_jsonl(tmp_path / "big.jsonl", records(400_000))
    out = tmp_path / "out"
    # The signal lands once the run is under way (its output folder exists), mid-conversion.
    code, stderr = interrupted_run(["convert", str(source), "-o", str(out), "-q"], when=out)
    assert code == 130, stderr
    assert stderr == "sftconv: interrupted; rerun with --resume (not --overwrite) to finish the run\n"
    assert not (out / "manifest.json").exists()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_ctrl_c_with_debug_shows_the_traceback(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "big.jsonl", records(400_000))
    out = tmp_path / "out"
    code, stderr = interrupted_run(["--debug", "convert", str(source), "-o", str(out), "-q"], when=out)
    assert code == 130
    assert stderr.startswith("Traceback") and "KeyboardInterrupt" in stderr
    assert stderr.endswith("\nsftconv: interrupted; rerun with --resume (not --overwrite) to finish the run\n")


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MB tmpfs: a real disk that fills up. Mounting needs root (CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a 1 MB tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_a_full_disk_is_one_line_and_exit_1(tmp_path: Path, full_disk: Path, output_format: str) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", records(30_000))
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(full_disk / "out"), "-q",
                                       "--format", output_format])
    assert result.exit_code == 1, result.output
    assert len(result.stderr.splitlines()) == 1 and "No space left on device" in result.stderr, result.stderr
    assert not (full_disk / "out" / "manifest.json").exists()
    debug = CliRunner().invoke(main, ["--debug", "convert", str(source), "-o", str(full_disk / "out2"), "-q",
                                      "--format", output_format])
    assert isinstance(debug.exception, OSError)


def test_a_folder_where_a_file_belongs(tmp_path: Path) -> None:
    """Options that name a file say so as bad usage (exit 2), before any work."""
    source = write_jsonl(tmp_path / "in.jsonl", records(2))
    (tmp_path / "page.html").mkdir()
    result = CliRunner().invoke(main, ["inspect", str(source), "--html", str(tmp_path / "page.html")])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"Error: Invalid value for '--html': File '{tmp_path / 'page.html'}' "
                                              "is a directory.")


def test_an_unreadable_input_is_one_line(tmp_path: Path) -> None:
    """A file whose read fails in the kernel (EIO): /proc/self/mem at offset 0. Tests run as root, whom
    a mode-000 file does not stop."""
    source = tmp_path / "in.jsonl"
    source.symlink_to("/proc/self/mem")
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {source}: cannot be read: [Errno 5] Input/output error\n"


def test_the_output_is_a_file(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", records(2))
    (tmp_path / "out").write_text("notes")
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "is a file" in result.stderr


def test_special_text_counts_land_in_the_manifest_options(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", records(2))
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out"), "-q",
                                       "--special-text", "reject"])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["options"]["special_text"] == "reject"
