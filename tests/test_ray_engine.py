"""`convert --engine ray` on real local Ray instances: the local engine's bytes, a killed worker retried, a unit
that keeps failing named and then finished by `--resume`, a real Ctrl-C, and the errors a user can meet."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.pipeline import ConvertError, ConvertOptions, convert
from sftconv.ray_engine import RayEngine, convert_alone
from sftconv.units import plan_units

from .conftest import interrupted_run, write_jsonl
from .test_workers import chat

UNIT_SIZE = 2_000  # bytes: the inputs below make 20-odd units
SHAPES = {"parquet": [], "hf-packed": ["--format", "hf", "--pack", "512"]}
KILLED = 3  # the unit whose worker is killed, or that always fails


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    """JSON Lines with bad lines among good ones, and Parquet in eight row groups: 324 records."""
    folder = tmp_path_factory.mktemp("ray-inputs")
    rng = random.Random(5)
    lines: list = [chat(rng) for _ in range(200)]
    for at, bad in [(0, "not json"), (60, {"messages": []}), (140, {"messages": [{"role": "user", "content": "x"}]})]:
        lines.insert(at, bad)
    pq.write_table(pa.Table.from_pylist([chat(rng) for _ in range(120)]), folder / "b.parquet", row_group_size=15)
    return [write_jsonl(folder / "a.jsonl", lines), folder / "b.parquet"]


def run_cli(inputs: list[Path], out: Path, *args: str, unit_size: str = str(UNIT_SIZE)):
    command = ["convert", *map(str, inputs), "-o", str(out), "--unit-size", unit_size, "-q", *args]
    return CliRunner().invoke(main, command, catch_exceptions=False)


@pytest.fixture(scope="module")
def local(inputs, tmp_path_factory) -> dict[str, Path]:
    """The local engine's output for each option set, the reference every Ray run must equal byte for byte."""
    outs = {}
    for name, args in SHAPES.items():
        outs[name] = tmp_path_factory.mktemp("local") / name
        assert run_cli(inputs, outs[name], "--workers", "2", *args).exit_code == 0
    return outs


@pytest.fixture(scope="module")
def ray_instance():
    """A Ray instance with 2 CPUs for the tests after the first; this module's functions travel to it by value."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def files(out: Path) -> dict[str, bytes]:
    """Every file under `out`, hidden ones too, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_ray_instance_started_for_the_run_writes_the_local_bytes(inputs, local, tmp_path):
    assert not ray.is_initialized()
    units = plan_units(inputs, split=None, unit_bytes=UNIT_SIZE)
    assert len(units) > 10 and {u.path for u in units if u.span} == set(inputs)
    result = run_cli(inputs, tmp_path / "ray", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "ray") == files(local["parquet"])
    assert len([name for name in files(tmp_path / "ray") if name.startswith("part-")]) == len(units)
    assert not ray.is_initialized()  # stopped at the end of the run that started it


def test_packed_hf_output_is_the_same_bytes(ray_instance, inputs, local, tmp_path):
    result = run_cli(inputs, tmp_path / "ray", "--engine", "ray", *SHAPES["hf-packed"])
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "ray") == files(local["hf-packed"])


def test_preference_pairs_are_the_same_bytes(ray_instance, tmp_path):
    from .test_preference import adversarial_pair

    rng = random.Random(4)
    pairs = [write_jsonl(tmp_path / "pairs.jsonl", [adversarial_pair(rng) for _ in range(60)] + ["not json"])]
    assert run_cli(pairs, tmp_path / "local", "--workers", "2").exit_code == 0
    result = run_cli(pairs, tmp_path / "ray", "--engine", "ray")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["layout"] == "pairs"


def killed_once(job, unit, cwd):
    """A unit's task whose first try at unit KILLED writes its files, then dies by SIGKILL before returning."""
    summary = convert_alone(job, unit, cwd)
    marker = Path(job.out_dir).parent / f"killed-{unit.index}"
    if unit.index == KILLED and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return summary


class KilledOnce(RayEngine):
    task = staticmethod(killed_once)


def test_a_killed_worker_is_retried_and_the_output_is_unchanged(ray_instance, inputs, local, tmp_path):
    with KilledOnce() as engine:
        summary = convert([str(p) for p in inputs], tmp_path / "ray", ConvertOptions(unit_bytes=UNIT_SIZE),
                          engine=engine)
    pid = int((tmp_path / f"killed-{KILLED}").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker really died
    assert files(tmp_path / "ray") == files(local["parquet"])
    assert summary.read == summary.written + summary.rejected + summary.dropped == 323


def always_fails(job, unit, cwd):
    """A unit's task that dies every time at unit KILLED, counting its tries."""
    if unit.index == KILLED:
        tries = Path(job.out_dir).parent / "tries"
        with open(tries, "a") as handle:
            handle.write(".")
        os._exit(3)
    return convert_alone(job, unit, cwd)


class AlwaysFails(RayEngine):
    task = staticmethod(always_fails)


def test_a_unit_that_keeps_failing_is_named_and_resume_converts_only_it(ray_instance, inputs, local, tmp_path):
    out = tmp_path / "ray"
    units = plan_units(inputs, split=None, unit_bytes=UNIT_SIZE)
    with AlwaysFails(retries=1) as engine, pytest.raises(ConvertError) as raised:
        convert([str(p) for p in inputs], out, ConvertOptions(unit_bytes=UNIT_SIZE), engine=engine)
    message = str(raised.value)
    assert message.startswith(f"1 of {len(units)} unit(s) failed")
    span = units[KILLED].span
    assert (f"  part-{KILLED:05d}: {inputs[0]}, lines from {span.first} (bytes {span.start}-{span.stop}): "
            "The worker died unexpectedly") in message
    assert "run the same command with --resume to convert only the unfinished units" in message
    assert (tmp_path / "tries").read_text() == ".."  # the first try and one retry
    assert not (out / "manifest.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    assert len(kept) == len(units) - 1 and not any(name.startswith(f"part-{KILLED:05d}") for name in kept)

    result = run_cli(inputs, out, "--engine", "ray", "--resume")
    assert result.exit_code == 0, result.output
    assert files(out) == files(local["parquet"])
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # the finished units were not redone


def ray_daemons() -> set[int]:
    """The process ids of every Ray instance's GCS server and raylet on this machine."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ("gcs_server", "raylet"):
                found.add(int(entry.name))
        except OSError:
            pass
    return found


def test_ctrl_c_stops_the_tasks_and_the_ray_instance_and_resume_finishes(ray_instance, tmp_path):
    rng = random.Random(9)
    source = write_jsonl(tmp_path / "chats.jsonl", [chat(rng) for _ in range(3_000)])
    out, before = tmp_path / "ray", ray_daemons()
    receipt = out / ".sftconv-run" / "part-00000.json"  # the signal lands once units are being converted
    code, stderr = interrupted_run(["convert", str(source), "-o", str(out), "-q", "--unit-size", "40KB", "--engine",
                                    "ray", "--workers", "2"], when=receipt, wait=120)
    assert code == 130, stderr
    assert stderr.splitlines()[-1].startswith("sftconv: interrupted")
    assert not (out / "manifest.json").exists()
    assert ray_daemons() == before  # the instance the run started is gone, the tests' own is still there

    assert run_cli([source], out, "--engine", "ray", "--resume", unit_size="40KB").exit_code == 0
    assert run_cli([source], tmp_path / "local", unit_size="40KB").exit_code == 0
    assert files(out) == files(tmp_path / "local")


def written_elsewhere(job, unit, cwd):
    """A unit's task whose shards end up where the machine that runs sftconv does not see them (another node's disk)."""
    summary = convert_alone(job, unit, cwd)
    for shard in summary.shards:
        for file in shard.files:
            (Path(job.out_dir) / file.name).unlink()
    return summary


class WrittenElsewhere(RayEngine):
    task = staticmethod(written_elsewhere)


def test_shards_this_machine_cannot_see_stop_the_run_before_the_manifest(ray_instance, inputs, tmp_path):
    with WrittenElsewhere() as engine, pytest.raises(ConvertError) as raised:
        convert([str(inputs[1])], tmp_path / "ray", ConvertOptions(unit_bytes=UNIT_SIZE), engine=engine)
    assert "the output folder must be on storage every node sees" in str(raised.value)
    assert not (tmp_path / "ray" / "manifest.json").exists()


def test_without_ray_the_error_says_how_to_install_it(inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    result = run_cli(inputs, tmp_path / "out", "--engine", "ray")
    assert result.exit_code == 1
    assert result.stderr == "Error: the Ray engine needs Ray: pip install 'sftconv[ray]'\n"
    assert not (tmp_path / "out").exists()


def test_a_ray_address_needs_the_ray_engine(inputs, tmp_path):
    result = run_cli(inputs, tmp_path / "out", "--ray-address", "auto")
    assert result.exit_code == 2
    assert "--ray-address needs --engine ray" in result.stderr


def test_workers_are_refused_for_a_cluster(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    result = run_cli(inputs, tmp_path / "out", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the Ray cluster at 127.0.0.1:6379 has the CPUs it has: --workers applies")


def test_an_address_where_nothing_listens_fails_at_once(inputs, tmp_path):
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{free.getsockname()[1]}"
    result = run_cli(inputs, tmp_path / "out", "--engine", "ray", "--ray-address", address)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: nothing answers at {address} (Connection refused): is the Ray cluster up?")
    assert not (tmp_path / "out").exists()
