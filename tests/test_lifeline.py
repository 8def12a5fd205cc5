"""No process outlives a run: after `kill -9` of convert, its workers (and a Ray instance it started) are gone
within 5 seconds, and --resume still writes the clean run's bytes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sftconv.lifeline import descendants

from .conftest import write_jsonl
from .test_workers import chat

GONE_WITHIN = 5.0  # seconds after the kill


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 10 MB of conversations: a few seconds of work for two workers, in units of 1 MB."""
    rng = random.Random(11)
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "chats.jsonl", [chat(rng) for _ in range(10_000)])


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent to read its exit status."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def in_session(session: int) -> set[int]:
    """Every live process of a session: the run's, wherever it was reparented."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getsid(int(entry.name)) == session and alive(int(entry.name)):
                found.add(int(entry.name))
        except OSError:
            pass
    return found


def kill_mid_run(command: list[str], when: Path, at_least: int) -> tuple[set[int], dict[int, str]]:
    """Start `command` in its own session, `kill -9` its main process (only it) once `when` exists and it has
    `at_least` processes under it; returns the run's processes before the kill, and the names of those alive
    5 seconds after."""
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not when.exists() or len(descendants(process.pid)) < at_least) and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    run = set(descendants(process.pid)) | in_session(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(GONE_WITHIN)
    left = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in run | in_session(process.pid) if alive(pid)}
    for pid in left:  # the test's own cleanup, so a failure does not leave them either
        os.kill(pid, signal.SIGKILL)
    return run, left


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "out"
    subprocess.run([sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q", "--unit-size",
                    "1MB", "-j", "1"], check=True)
    return out


def resume(corpus: Path, out: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q", "--unit-size", "1MB",
                    "--resume", *args], check=True)


def test_kill_9_of_convert_leaves_no_worker_and_resume_finishes(corpus, clean, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q", "--unit-size", "1MB",
               "--workers", "2"]
    run, left = kill_mid_run(command, when=out / ".sftconv-run" / "part-00000.json", at_least=2)
    assert len(run) >= 3  # the main process and its two workers
    assert left == {}
    assert not (out / "manifest.json").exists()
    resume(corpus, out, "--workers", "2")
    assert files(out) == files(clean)


def test_kill_9_of_convert_on_ray_stops_the_ray_instance_it_started(corpus, clean, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q", "--unit-size", "1MB",
               "--workers", "2", "--engine", "ray"]
    run, left = kill_mid_run(command, when=out / ".sftconv-run" / "part-00000.json", at_least=4)
    assert left == {}
    assert len(run) >= 4  # the driver, Ray's GCS server and raylet, its workers and agents
    resume(corpus, out, "--engine", "ray", "--workers", "2")
    assert files(out) == files(clean)
