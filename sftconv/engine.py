"""Worker processes: a function mapped over a stream in input order, with a bounded number of items in flight."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .lifeline import die_with_parent

IN_FLIGHT_PER_WORKER = 4  # chunks sent ahead per worker: enough to keep each busy, few enough to bound memory

_job: Any = None  # in a worker process: what `Workers` was given to share with every call


class WorkerError(Exception):
    """A worker process stopped without returning its result (killed, or out of memory)."""


def default_workers() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_worker(job: Any, parent: int) -> None:
    global _job
    die_with_parent(parent)  # a killed run must not leave its workers waiting for work
    _job = job
    # Ctrl-C goes to the whole process group: the main process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(function: Callable, item: Any) -> Any:
    return function(_job, item)


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C during the block is raised at its end, for work that an interrupt must not cut short (a fork, a start)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught and callable(previous):  # Python's own handler raises KeyboardInterrupt; an ignored SIGINT stays ignored
        previous(signal.SIGINT, None)
    elif caught and previous in (signal.SIG_DFL, None):
        signal.raise_signal(signal.SIGINT)


class Workers:
    """Maps `function(job, item)` over items with `count` processes, yielding results in input order.

    At most `count * IN_FLIGHT_PER_WORKER` items are read ahead of the result being yielded, so a
    stream of any length runs in bounded memory (unlike `Pool.imap`, which reads its input to the end
    as fast as it can). With `count` 1 everything runs in this process. Workers are forked where the
    platform allows, so they share `job` (a loaded tokenizer, say) without pickling; elsewhere `job`
    is pickled once per worker.

    Args:
        count: worker processes (at least 1).
        job: what every call gets as its first argument.

    Example:
        >>> with Workers(4, template) as workers:
        ...     for result in workers.map(encode_chunk, chunks):
        ...         write(result)
    """

    def __init__(self, count: int, job: Any):
        if count < 1:
            raise ValueError(f"workers must be at least 1, found {count}")
        self.count = count
        self.job = job
        self._pool = None

    def __enter__(self) -> Workers:
        if self.count > 1:
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = ProcessPoolExecutor(self.count, mp_context=context, initializer=_start_worker,
                                             initargs=(self.job, os.getpid()))
            # Fork the workers now, before the caller starts threads (a progress bar's) that a fork would not carry.
            # A Ctrl-C that lands during a fork would be lost in the fork handlers: hold it until they are done,
            # and stop the workers if it came (with no `with` block entered, nothing else would).
            try:
                with interrupts_held():
                    self._pool.submit(int).result()
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, function: Callable, items: Iterable) -> Iterator:
        """`function(job, item)` for each item, in order.

        Raises:
            WorkerError: a worker process died.
        """
        if self._pool is None:
            for item in items:
                yield function(self.job, item)
            return
        from concurrent.futures.process import BrokenProcessPool

        pending: deque = deque()
        limit = self.count * IN_FLIGHT_PER_WORKER
        try:
            for item in items:
                pending.append(self._pool.submit(_call, function, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as error:
            raise WorkerError(f"a worker process stopped unexpectedly ({error}); if memory ran out, "
                              "use fewer workers") from error
        finally:
            for future in pending:
                future.cancel()
