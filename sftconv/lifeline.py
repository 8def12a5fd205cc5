"""Processes a run starts die with it, however it dies: a `kill -9` of sftconv must not leave workers behind.

A worker that outlived its run would wait for work forever, holding its memory (a loaded tokenizer,
~100 MB each). On Linux the kernel sends our own worker SIGKILL when its parent dies (prctl
PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent's pid. Processes that others start for
the run (a local Ray instance's agents, which outlive a killed driver) are watched by a watchdog
process, `python -m sftconv.lifeline PID`, that kills what PID started once PID is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0  # how often the watchdog thread looks for its parent where prctl is missing
WATCH_SECONDS = 0.5  # how often the watchdog process looks at the run's processes: they go within a second


def die_with_parent(parent: int) -> None:
    """Make this process end when `parent` (the process that started it) ends; call it first thing in the child.

    Args:
        parent: the parent's pid, read in the parent before the child started: if the parent is
            already gone when this runs, the child exits at once.
    """
    if not (sys.platform.startswith("linux") and _set_parent_death_signal()):
        threading.Thread(target=_watch, args=(parent,), name="sftconv-lifeline", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)


def _set_parent_death_signal() -> bool:
    """Ask the kernel for SIGKILL when the parent dies; False if libc or prctl cannot be had."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    """Poll until the parent is gone (this process is then adopted by another), then end this process."""
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)


def start_watchdog() -> subprocess.Popen | None:
    """Start a process that, once this one is gone however it went, kills every process this one started.

    Returns None where processes cannot be listed (no /proc): there, what this process started must
    end by itself. Stop the watchdog (`.kill()`) once those processes are stopped the ordinary way.
    """
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen([sys.executable, "-m", "sftconv.lifeline", str(os.getpid())],
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def descendants(root: int) -> dict[int, str]:
    """Each live descendant of `root`, with its start time, which tells it from a later process given the same pid."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                pid, parent, start = _stat(int(entry.name))
            except (OSError, ValueError):  # it ended while the list was read
                continue
            children.setdefault(parent, []).append(pid)
            started[pid] = start
    found, todo = {}, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found[pid] = started[pid]
        todo += children.get(pid, ())
    return found


def _stat(pid: int) -> tuple[int, int, str]:
    """A process's pid, parent pid and start time, from /proc/PID/stat (its name may hold spaces and parentheses)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return pid, int(fields[1]), fields[19]


def watch(run: int) -> None:
    """Note every process `run` started, until `run` (this watchdog's parent) is gone; then kill those still alive."""
    seen: dict[int, str] = {}
    while os.getppid() == run:
        seen.update(descendants(run))
        time.sleep(WATCH_SECONDS)
    seen.pop(os.getpid(), None)
    for pid, start in seen.items():
        try:
            if _stat(pid)[2] == start:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):  # already gone
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
