"""The README's console examples are run, so what they show is what the commands print.

Every ```console block of README.md is checked: each `$ COMMAND` line (continued on the next lines
after a trailing backslash) runs in bash, in a fresh folder holding a link to the repository's
examples/, with `sftconv` being this checkout's; its stdout must equal the lines under it, up to the
next `$`. A line `...` in the expected output stands for any number of lines. Commands of one block
run in order in the same folder, so a block can build on its own earlier output; blocks do not share
folders. Nothing is normalised: run where the README's relative paths hold (examples/, out/), the
commands print exactly what a reader sees (stderr, where progress and warnings go, is not compared).

A block that cannot run offline here (it needs S3, a Ray cluster, or files the repository does not
ship) is marked by the line before its fence, which also says why:

    <!-- console: not run: needs the user's own support_logs.jsonl -->
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_RUN = re.compile(r"<!-- console: not run: .+ -->")
ANY_LINES = "..."


@dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]


@dataclass(frozen=True)
class Block:
    line: int  # of its opening fence, 1-based
    steps: list[Step]
    runs: bool


def console_blocks(text: str) -> list[Block]:
    """Every ```console block, its commands with their expected output, and whether it is marked not to run."""
    lines = text.splitlines()
    blocks, at = [], 0
    while at < len(lines):
        if lines[at].strip() != "```console":
            at += 1
            continue
        start, body = at, []
        at += 1
        while lines[at].strip() != "```":
            body.append(lines[at])
            at += 1
        steps: list[Step] = []
        for line in body:
            if line.startswith("$ "):
                steps.append(Step(line[2:], []))
            elif steps and steps[-1].command.endswith("\\") and not steps[-1].expected:
                steps[-1] = Step(steps[-1].command + "\n" + line, [])
            elif steps:
                steps[-1].expected.append(line)
        blocks.append(Block(start + 1, steps, not (start and NOT_RUN.fullmatch(lines[start - 1].strip()))))
        at += 1
    return blocks


def matches(expected: list[str], actual: list[str]) -> bool:
    """The lines equal, where an expected `...` line stands for any number of actual lines."""
    if not expected:
        return not actual
    if expected[0] == ANY_LINES:
        return any(matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


BLOCKS = console_blocks(README.read_text(encoding="utf-8"))


@pytest.fixture
def shell(tmp_path: Path) -> dict:
    """A folder to run in, with examples/ linked and `sftconv` on PATH meaning this checkout's code."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    bin_dir = tmp_path.parent / f"{tmp_path.name}-bin"
    bin_dir.mkdir()
    (bin_dir / "sftconv").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m sftconv "$@"\n')
    (bin_dir / "sftconv").chmod(0o755)
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"cwd": tmp_path, "env": {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                                     "PYTHONPATH": python_path, "COLUMNS": "100", "NO_COLOR": "1"}}


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.runs], ids=lambda b: f"README.md:{b.line}")
def test_console_block_prints_what_the_readme_shows(block: Block, shell: dict) -> None:
    for step in block.steps:
        result = subprocess.run(["bash", "-c", step.command], capture_output=True, text=True, timeout=300, **shell)
        actual = result.stdout.splitlines()
        diff = "\n".join(difflib.unified_diff(step.expected, actual, "README.md", "printed", lineterm=""))
        assert matches(step.expected, actual), f"README.md:{block.line}: `$ {step.command}`:\n{diff}\n{result.stderr}"


def test_the_readme_has_console_blocks_and_marks_say_why() -> None:
    """The check covers something, and a block left out is left out on purpose."""
    assert sum(block.runs for block in BLOCKS) >= 5
    text = README.read_text(encoding="utf-8")
    assert all(NOT_RUN.fullmatch(line.strip()) for line in text.splitlines() if "<!-- console:" in line)


def test_an_ellipsis_stands_for_any_lines_and_nothing_else() -> None:
    assert matches(["a", ANY_LINES, "d"], ["a", "b", "c", "d"]) and matches(["a", ANY_LINES], ["a"])
    assert not matches(["a", ANY_LINES, "d"], ["a", "b", "c"]) and not matches(["a", "b"], ["a", "c"])
