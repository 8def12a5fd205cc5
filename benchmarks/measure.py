"""Run a command and measure it: wall time, CPU time of the whole process tree, peak RSS of the whole tree (Linux)."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Measured:
    seconds: float
    cpu_seconds: float  # user + system, the command and every process it started
    peak_rss_mb: float  # the largest sum, over one poll, of the RSS of the command and its descendants
    peak_pss_mb: float  # the same for PSS, which shares each page among the processes that map it


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue += children.get(pid, [])
    return found


def tree_memory(root: int) -> tuple[int, int]:
    """Bytes of RSS and of PSS of a process tree now.

    RSS counts a page shared by forked workers once in each of them (an upper bound); PSS splits it among them.
    """
    rss = pss = 0
    for pid in descendants(root):
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:"))) * 1024
        except (OSError, IndexError, StopIteration):
            pass
    return rss, pss


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], **kwargs) -> Measured:
    """Run `command` to the end (it must succeed), polling its tree's RSS every POLL_SECONDS."""
    cpu_before, start = children_cpu(), time.perf_counter()
    process = subprocess.Popen(command, **kwargs)
    peak_rss = peak_pss = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak_rss, peak_pss
        while not done.is_set():
            rss, pss = tree_memory(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            done.wait(POLL_SECONDS)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    code = process.wait()
    seconds = time.perf_counter() - start
    done.set()
    poller.join()
    if code:
        raise subprocess.CalledProcessError(code, command)
    return Measured(seconds, children_cpu() - cpu_before, peak_rss / 1e6, peak_pss / 1e6)
