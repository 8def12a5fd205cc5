"""The Ray engine: a run's units as Ray tasks, on a Ray instance started for the run or on an existing cluster.

A task converts one unit with the code the local engine runs (`convert_unit`, in one process), so
the files are the same bytes whoever writes them; Ray spreads the units over the cluster's cores.
Ray reruns a unit whose worker or node died, or that met an OSError (storage that failed for a
moment); a unit that still fails is reported with its input once the other units are done, and
`--resume` then converts only the units without a receipt. Ray is imported only here, only when
this engine is chosen.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from .engine import Workers, default_workers, interrupts_held
from .lifeline import start_watchdog
from .pipeline import ConvertError, Progress, Summary, UnitJob, convert_unit
from .units import Unit
from .writers.folder import Folder

RAY_MISSING = "the Ray engine needs Ray: pip install 'sftconv[ray]'"
UNIT_RETRIES = 3  # reruns of a unit whose worker died or that met an OSError, before it counts as failed
CONNECT_SECONDS = 10  # to reach a cluster's address before handing it to Ray
SHOWN_FAILURES = 5  # failed units listed in the error; the count says how many more


_opened: tuple[UnitJob, tuple] | None = None  # in a Ray worker: the last job and its shaper and template


def convert_alone(job: UnitJob, unit: Unit, cwd: str) -> Summary:
    """Convert one unit in this process, from the folder the run started in (relative paths are read from it).

    A Ray worker runs many units: the tokenizer is loaded once per worker and job, not once per unit.
    """
    global _opened
    os.chdir(cwd)
    if _opened is None or _opened[0] != job:
        _opened = (job, job.open())
    with Workers(1, _opened[1]) as pool:
        return convert_unit(job, unit, pool)


class RayEngine:
    """Runs a run's units as Ray tasks of one CPU each and gathers their summaries; a context manager.

    Entering joins the cluster at `address` ("auto", "HOST:6379", "ray://HOST:10001", as `ray.init`
    takes it), else the one in RAY_ADDRESS, else starts a Ray instance on this machine with `cpus`
    CPUs, which leaving stops (a cluster that `ray start` runs on this machine is joined only with
    "auto"). A Ray already initialised in this process is used as it is. A cluster's authentication
    comes from Ray's own environment (RAY_AUTH_TOKEN or ~/.ray/auth_token), never from sftconv.

    Args:
        address: the cluster to join; None: RAY_ADDRESS, or a local instance.
        cpus: CPUs of a local instance (default: every core this process may use); only without a cluster.
        retries: reruns of a unit whose worker or node died or that met an OSError (default UNIT_RETRIES).

    Raises:
        ConvertError: Ray is not installed, `cpus` is given for a cluster, or nothing answers at `address`.

    Example:
        >>> with RayEngine("auto") as engine:
        ...     convert(["data/*.jsonl"], "/shared/out", ConvertOptions(), engine=engine)
    """

    task = staticmethod(convert_alone)  # what each unit's task runs

    def __init__(self, address: str | None = None, *, cpus: int | None = None, retries: int = UNIT_RETRIES):
        try:
            import ray  # noqa: F401
        except ImportError as error:
            raise ConvertError(RAY_MISSING) from error
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if self.address is not None and cpus is not None:
            raise ConvertError(f"the Ray cluster at {self.address} has the CPUs it has: --workers applies only to "
                               "a Ray instance started for the run (no --ray-address and no RAY_ADDRESS)")
        if self.address is not None:
            check_reachable(self.address)
        self.cpus = cpus
        self.retries = retries
        self._started = False
        self._watchdog = None  # kills the local instance's processes if this one is killed

    def __enter__(self) -> RayEngine:
        import ray

        if ray.is_initialized():
            return self
        quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        try:
            with interrupts_held():
                if self.address is not None:
                    ray.init(address=self.address, **quiet)
                else:
                    self._watchdog = start_watchdog()
                    ray.init(address="local", num_cpus=self.cpus or default_workers(), **quiet)
        except (ConnectionError, RuntimeError, ValueError) as error:
            self._stop_watchdog()
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise ConvertError(f"cannot start or reach {where}: {error}") from error
        except KeyboardInterrupt:
            ray.shutdown()
            self._stop_watchdog()
            raise
        self._started = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
            self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        """The instance stopped the ordinary way: its watchdog has nothing left to do."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None

    def run(self, job: UnitJob, units: Iterable[Unit], bar: Progress | None = None) -> dict[int, Summary]:
        """Convert every unit as a Ray task; returns each unit's summary by its index.

        The bar counts a unit's records and tokens when it finishes. A unit that still fails after its
        retries does not stop the others: the error comes once all have ended, naming each failed unit
        and its input.

        Raises:
            ConvertError: a unit failed, or a unit's files are not where this machine sees the output folder.
        """
        import ray

        task = ray.remote(num_cpus=1, max_retries=self.retries, retry_exceptions=[OSError])(self.task)
        cwd = os.getcwd()
        pending = {task.remote(job, unit, cwd): unit for unit in units}
        results: dict[int, Summary] = {}
        failures: list[tuple[Unit, BaseException]] = []
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        summary = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        failures.append((unit, error))
                        continue
                    results[unit.index] = summary
                    if bar is not None:
                        bar.update(summary.read, summary.tokens)
        finally:
            # Ctrl-C or a lost connection: what is still queued or running must stop. Where this engine started
            # Ray or connected to it, leaving does that (`__exit__`), and a cancel could race with a task's end
            # and crash Ray's core worker (ray-project/ray#54846). In a Ray session of the caller's own, cancel them.
            if not self._started:
                for ref in pending:
                    ray.cancel(ref)
        if failures:
            raise ConvertError(failure_report(failures, len(results) + len(failures), self.retries))
        with Folder.at(job.out_dir) as folder:
            present = folder.entries()
        unseen = [file.name for summary in results.values() for shard in summary.shards for file in shard.files
                  if not present.get(file.name)]
        if unseen:
            raise ConvertError(f"{len(unseen)} file(s) the units wrote are not in {job.out_dir} as this machine sees "
                               f"it ({unseen[0]}, ...): on a cluster, the output folder must be on storage every "
                               "node sees (a URL such as s3://..., or a shared file system mounted at the same path)")
        return results


def check_reachable(address: str) -> None:
    """Fail fast where nothing listens at HOST:PORT (`ray.init` would wait minutes for it).

    Raises:
        ConvertError: the connection is refused or times out.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return  # "auto" and the like: ray.init finds the cluster and says so quickly if there is none
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ConvertError(f"nothing answers at {address} ({error.strerror or error}): is the Ray cluster up? "
                           "(`ray status` on its head node shows its address)") from error


def failure_report(failures: list[tuple[Unit, BaseException]], total: int, retries: int) -> str:
    """What failed, unit by unit with its input, and how to finish the run once the cause is fixed."""
    failures = sorted(failures, key=lambda failure: failure[0].index)
    lines = [f"{len(failures)} of {total} unit(s) failed (a worker that died or an OSError is retried "
             f"{retries} times); the other units are done and kept:"]
    for unit, error in failures[:SHOWN_FAILURES]:
        lines.append(f"  {unit.name}: {describe(unit)}: {reason(error)}")
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(failures) - SHOWN_FAILURES} more")
    lines.append("fix the cause, then run the same command with --resume to convert only the unfinished units "
                 "(after changing an input or an option, start again with --overwrite)")
    return "\n".join(lines)


def describe(unit: Unit) -> str:
    """The unit's input and the part of it the unit covers, in the reader's terms."""
    from .readers import ParquetReader, reader_for

    span = unit.span
    if span is None:
        return str(unit.path)
    if isinstance(reader_for(unit.path), ParquetReader):
        last = "end" if span.stop is None else span.stop - 1
        return f"{unit.path}, row groups {span.start}-{last} (rows from {span.first})"
    return f"{unit.path}, lines from {span.first} (bytes {span.start}-{'end' if span.stop is None else span.stop})"


def reason(error: BaseException) -> str:
    """The first line of what stopped a task: the unit's own exception if it raised one, else Ray's word."""
    cause = getattr(error, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip()}" if not isinstance(cause, ConvertError) else str(cause)
    return str(error).strip().splitlines()[0]
