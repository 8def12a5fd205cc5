"""What a run's exit code and messages say: an empty result, the same mistake in every command, unreadable files,
one definition of percentiles, and a progress bar only where someone can see it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main

from .conftest import write_jsonl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BROKEN = [{"x": 1}, {"messages": [{"role": "user", "content": "hi"}]}, {"messages": []}]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_run_that_writes_no_samples_exits_1_and_says_why(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "broken.jsonl", BROKEN)
    code, stdout, stderr = run("convert", str(source), "-o", str(tmp_path / "out"), "--shape", "openai")
    assert code == 1
    assert "samples written      0" in stdout  # the summary is still shown
    error = stderr.strip().splitlines()[-1]
    assert error.startswith("Error: no samples written: all 3 records were rejected or dropped: ")
    assert "missing_messages 1" in error and "no_assistant_turn 1" in error and "--allow-empty" in error
    assert (tmp_path / "out" / "manifest.json").exists()  # the run itself finished


def test_the_reason_names_the_three_commonest_causes() -> None:
    from collections import Counter

    from sftconv.cli import empty_run_reason
    from sftconv.pipeline import Summary

    summary = Summary(read=10, rejected_by_reason=Counter(empty_content=4, invalid_json=3, unknown_role=1),
                      dropped_by_reason=Counter(too_long=2))
    assert empty_run_reason(summary, "out/") == (
        "no samples written: all 10 records were rejected or dropped: empty_content 4, invalid_json 3, too_long 2, "
        "and 1 other reason(s) (see out/rejects.jsonl); pass --allow-empty if an empty result is what you want")


def test_allow_empty_accepts_an_empty_result(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "broken.jsonl", BROKEN)
    code, _, stderr = run("convert", str(source), "-o", str(tmp_path / "out"), "--shape", "openai",
                          "--allow-empty", "-q")
    assert code == 0, stderr


def test_an_input_without_records_is_an_empty_run(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "empty.jsonl", [])
    code, _, stderr = run("convert", str(source), "-o", str(tmp_path / "out"), "-q")
    assert code == 1
    assert "no samples written: the inputs hold no records" in stderr


def test_validate_of_an_output_with_no_rows_fails(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "broken.jsonl", BROKEN)
    out = tmp_path / "out"
    assert run("convert", str(source), "-o", str(out), "--shape", "openai", "--allow-empty", "-q")[0] == 0
    code, stdout, _ = run("validate", str(out), "--format", "json")
    report = json.loads(stdout)
    assert code == 1 and report["exit_code"] == 1
    assert [issue["code"] for issue in report["issues"]] == ["no_rows"]


def test_validate_of_a_nonempty_output_still_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("convert", str(EXAMPLES / "chat_logs.jsonl"), "-o", str(out), "-q")[0] == 0
    assert run("validate", str(out), "-q")[0] == 0


# One mistake, every command: each row is (mistake, its arguments, the exit code every command must give).
# A command's own arguments come first: convert needs an output folder.
COMMANDS = {"convert": lambda tmp: ["convert", "-o", str(tmp / "out")], "validate": lambda tmp: ["validate"],
            "inspect": lambda tmp: ["inspect"]}
MISTAKES = {
    "missing path": (lambda tmp: [str(tmp / "nosuch.jsonl")], 2),
    "missing folder": (lambda tmp: [str(tmp / "nosuch") + "/"], 2),
    "glob matching nothing": (lambda tmp: [str(tmp / "*.nosuch.jsonl")], 2),
    "no reader for the file type": (lambda tmp: [str(tmp / "notes.txt")], 2),
    "bad option value": (lambda tmp: [str(EXAMPLES / "chat_logs.jsonl"), "--train-on", "nosuch"], 2),
    "no shape fits": (lambda tmp: [str(tmp / "odd.jsonl")], 2),
    "unreadable data": (lambda tmp: [str(tmp / "corrupt.parquet")], 1),
    "none (one record rejected)": (lambda tmp: [str(EXAMPLES / "tool_calls.jsonl"), "--template", "llama3.1"], None),
}
# tool_calls.jsonl holds one bad record among good ones: convert and inspect skip it, validate fails on it.
NO_MISTAKE = {"convert": 0, "validate": 1, "inspect": 0}


@pytest.fixture
def mistakes_folder(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("not chat data\n")
    write_jsonl(tmp_path / "odd.jsonl", [{"question_text": "why?", "answer_text": "because"}])
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not a parquet file at all")
    return tmp_path


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_every_command_gives_the_same_exit_code_for_the_same_mistake(mistakes_folder: Path, command: str,
                                                                    mistake: str) -> None:
    arguments, expected = MISTAKES[mistake]
    quiet = ["-q"] if command != "inspect" else []
    code, _, stderr = run(*COMMANDS[command](mistakes_folder), *arguments(mistakes_folder), *quiet)
    assert code == (NO_MISTAKE[command] if expected is None else expected), stderr
    if code == 2:
        assert "Usage:" in stderr and "Error:" in stderr


def test_validate_reports_each_unreadable_file_and_checks_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes((EXAMPLES / "chat_logs.jsonl").read_bytes())
    (folder / "b.parquet").write_bytes(b"not parquet")
    (folder / "c.jsonl").write_bytes((EXAMPLES / "chat_logs.jsonl").read_bytes())
    (folder / "d.jsonl.gz").write_bytes(b"not gzip")
    code, stdout, _ = run("validate", str(folder), "--format", "json", "-q")
    report = json.loads(stdout)
    assert code == 1
    unreadable = next(issue for issue in report["issues"] if issue["code"] == "unreadable_file")
    assert unreadable["count"] == 2
    assert [example["source"] for example in unreadable["examples"]] == [str(folder / "b.parquet"),
                                                                          str(folder / "d.jsonl.gz")]
    assert "Parquet" in unreadable["examples"][0]["detail"]
    assert report["stats"]["files"] == 4 and report["checked"] == 28  # both readable files, every record


def inspect_points(stdout: str, title: str) -> dict[str, str]:
    line = next(line for line in stdout.splitlines() if line.startswith(title + ":"))
    return dict(point.split(" ", 1) for point in line.split(": ", 1)[1].split(" · "))


def test_inspect_stats_and_validate_agree_on_percentiles_of_real_data(shared_data: Path, tmp_path: Path) -> None:
    """The same data, the same median and p95: raw input and the output folder convert makes of it."""
    source = shared_data / "LLaMA-Factory" / "alpaca_en_demo.json"
    out = tmp_path / "out"
    assert run("convert", str(source), "-o", str(out), "-q")[0] == 0
    for data in (str(source), str(out)):
        report = json.loads(run("validate", data, "--format", "json", "-q")[1])
        tokens = report["stats"].get("tokens_per_sample") or report["stats"]["tokens_per_row"]
        points = inspect_points(run("inspect", data, "--stats")[1], "tokens per sample")
        assert tokens["count"] > 900
        assert (int(points["median"].replace(",", "")), int(points["p95"].replace(",", ""))) == (
            tokens["median"], tokens["p95"])
        assert tokens["median"] != tokens["mean"]  # the data could tell a mean from a median


def progress_stderr(args: list[str], terminal: bool) -> str:
    """Stderr of `python -m sftconv ARGS`, given a pseudo-terminal or a pipe."""
    env = {**os.environ, "COLUMNS": "100"}
    if not terminal:
        return subprocess.run([sys.executable, "-m", "sftconv", *args], capture_output=True, text=True,
                              env=env).stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new one is 0 columns wide
    process = subprocess.Popen([sys.executable, "-m", "sftconv", *args], stdout=subprocess.DEVNULL,
                               stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait()
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["convert", "validate"])
def test_the_progress_bar_draws_only_on_a_terminal_unless_forced(tmp_path: Path, command: str) -> None:
    def stderr(*extra: str, terminal: bool = False) -> str:
        out = ["-o", str(tmp_path / f"out{len(list(tmp_path.iterdir()))}")] if command == "convert" else []
        return progress_stderr([command, str(EXAMPLES / "chat_logs.jsonl"), *out, *extra], terminal)

    drawn = re.compile(r"(converting|validating): .*\d+ rec")
    assert not drawn.search(stderr())
    assert drawn.search(stderr(terminal=True))
    assert drawn.search(stderr("--progress"))
    assert not drawn.search(stderr("--progress", "--quiet"))
    assert not drawn.search(stderr("--quiet", terminal=True))


def test_validate_and_inspect_share_one_percentile_definition() -> None:
    """Nearest rank, whether the values come as a histogram (validate) or as an array (inspect)."""
    import numpy as np

    from sftconv.percentiles import array_percentile
    from sftconv.validate.report import Distribution

    values = np.random.default_rng(3).integers(1, 500, size=1_001)
    distribution = Distribution()
    distribution.add_all(values)
    for p in (0, 1, 50, 90, 95, 99, 100):
        ranked = np.sort(values)[max(1, int(np.ceil(p / 100 * len(values)))) - 1]
        assert distribution.percentile(p) == array_percentile(values, p) == ranked
