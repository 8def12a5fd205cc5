"""Worker processes: results in input order, input read only a bounded distance ahead, a dead worker reported."""

from __future__ import annotations

import os
import signal

import pytest

from sftconv.engine import IN_FLIGHT_PER_WORKER, WorkerError, Workers, interrupts_held


def scaled(job: int, item: int) -> tuple[int, int]:
    """The item times the shared job, and the process that computed it."""
    return item * job, os.getpid()


def die_on_three(job, item: int) -> int:
    if item == 3:
        os._exit(1)
    return item


@pytest.mark.parametrize("count", [1, 3])
def test_results_come_in_input_order_with_the_shared_job(count):
    with Workers(count, 10) as workers:
        results = list(workers.map(scaled, range(200)))
    assert [value for value, _ in results] == [i * 10 for i in range(200)]
    pids = {pid for _, pid in results}
    assert (pids == {os.getpid()}) if count == 1 else (os.getpid() not in pids)


def test_input_is_read_a_bounded_distance_ahead():
    pulled = []

    def items():
        for i in range(100):
            pulled.append(i)
            yield i

    with Workers(2, 1) as workers:
        for value, _ in workers.map(scaled, items()):
            # When result `value` is handed over, at most the window beyond it has been read.
            assert len(pulled) <= value + 1 + 2 * IN_FLIGHT_PER_WORKER
    assert pulled == list(range(100))


def test_a_dead_worker_is_an_error_not_a_hang():
    with pytest.raises(WorkerError, match="a worker process stopped unexpectedly"):
        with Workers(2, None) as workers:
            list(workers.map(die_on_three, range(10)))


def test_at_least_one_worker():
    with pytest.raises(ValueError, match="at least 1"):
        Workers(0, None)


def test_the_convert_job_survives_pickling_for_platforms_without_fork(tmp_path):
    import pickle

    from sftconv.pipeline import SourceOptions, encode_chunk, open_source
    from sftconv.readers.jsonl import LineChunk

    path = tmp_path / "in.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n')
    source = open_source([str(path)], SourceOptions())
    job = (source.shape, source.template)
    chunk = LineChunk(str(path), 1, path.read_bytes())
    copied = pickle.loads(pickle.dumps(job))
    assert encode_chunk(copied, chunk).samples.split() == encode_chunk(job, chunk).samples.split()


def test_an_interrupt_held_during_a_fork_acts_as_the_handler_before_it_would_have():
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job: Ctrl-C stays ignored
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own: Ctrl-C raises, once the block ends
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
