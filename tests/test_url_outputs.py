"""Outputs at URLs, on moto's local S3 server: the bytes of a local run, the same refusals, and a killed run resumed."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import fsspec
import pyarrow.parquet as pq
import pytest
import ray
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.units import WORK_DIR

from .conftest import write_jsonl
from .test_workers import chat

UNIT = "40KB"  # small units, so a run has dozens of them
FORMATS = {"parquet": [], "hf": ["--format", "hf"], "megatron": ["--format", "megatron"],
           "jsonl-packed": ["--format", "jsonl", "--pack", "1024"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 4 MB of conversations with a few bad lines: ~100 units."""
    rng = random.Random(11)
    lines: list = [chat(rng) for _ in range(3_000)]
    for at in (0, 1_000, 2_500):
        lines.insert(at, "not json")
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "chats.jsonl", lines)


@pytest.fixture(scope="module")
def local(corpus, tmp_path_factory) -> dict[str, Path]:
    """Each format's local run, the reference a run into S3 must equal byte for byte."""
    outs = {}
    for name, args in FORMATS.items():
        outs[name] = tmp_path_factory.mktemp("local") / name
        assert convert_cli(corpus, str(outs[name]), *args).exit_code == 0
    return outs


def convert_cli(corpus: Path, out: str, *args: str):
    return CliRunner().invoke(main, ["convert", str(corpus), "-o", out, "--unit-size", UNIT, "-q", *args])


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def objects(url: str) -> dict[str, bytes]:
    """Every object under `url`, by its name relative to it."""
    fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return {str(PurePosixPath(path).relative_to(root)): fs.cat_file(path) for path in sorted(fs.find(root))}


@pytest.mark.parametrize("name", FORMATS)
def test_a_run_into_s3_writes_the_objects_a_local_run_writes_as_files(name, corpus, local, s3):
    result = convert_cli(corpus, f"{s3}/runs/{name}", *FORMATS[name])
    assert result.exit_code == 0, result.output
    written = objects(f"{s3}/runs/{name}")
    assert written == files(local[name])
    assert len([n for n in written if n.startswith("part-00")]) >= len(FORMATS) * 5 // len(FORMATS)


def test_trainers_load_the_s3_output_where_it_is(corpus, local, s3):
    assert convert_cli(corpus, f"{s3}/hf", "--format", "hf").exit_code == 0
    assert convert_cli(corpus, f"{s3}/parquet").exit_code == 0
    from datasets import load_from_disk

    loaded = load_from_disk(f"{s3}/hf")
    assert loaded.num_rows == load_from_disk(str(local["hf"])).num_rows > 2_800
    fs, root = fsspec.core.url_to_fs(f"{s3}/parquet")
    table = pq.ParquetDataset(sorted(fs.glob(f"{root}/*.parquet")), filesystem=fs).read()
    assert table.equals(pq.ParquetDataset(sorted(local["parquet"].glob("*.parquet"))).read())


def test_validate_of_an_output_folder_at_a_url_says_to_copy_it_rather_than_reading_shards_as_chats(corpus, s3):
    assert convert_cli(corpus, f"{s3}/out").exit_code == 0
    result = CliRunner().invoke(main, ["validate", f"{s3}/out"])
    assert result.exit_code == 1
    assert f"{s3}/out is a convert output folder at a URL" in result.output and "aws s3 sync" in result.output
    secret = CliRunner().invoke(main, ["validate", "s3://AK:sekret@bkt/x.jsonl"])
    assert secret.exit_code == 2 and "sekret" not in secret.output and "must not hold a password" in secret.output


def test_an_s3_folder_in_use_is_refused_and_overwrite_keeps_other_programs_objects(corpus, local, s3):
    fs, root = fsspec.core.url_to_fs(s3)
    foreign = {"runs/out/notes.txt": b"ours", "runs/out/part-00000-1f2e.snappy.parquet": b"spark's"}
    for path, data in foreign.items():
        fs.pipe_file(f"{root}/{path}", data)
    refused = convert_cli(corpus, f"{s3}/runs/out")
    assert refused.exit_code == 1 and f"{s3}/runs/out is not empty" in refused.output
    assert convert_cli(corpus, f"{s3}/runs/out", "--overwrite").exit_code == 0
    again = convert_cli(corpus, f"{s3}/runs/out", "--overwrite", "--format", "megatron")
    assert again.exit_code == 0
    written = objects(f"{s3}/runs/out")
    assert {name: data for name, data in written.items() if name not in ("notes.txt", "part-00000-1f2e.snappy.parquet")} \
        == files(local["megatron"])
    assert written["notes.txt"] == b"ours" and written["part-00000-1f2e.snappy.parquet"] == b"spark's"


def test_a_run_killed_while_writing_to_s3_resumes_to_the_bytes_of_a_local_run(corpus, local, s3, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the killed run's staging folder stays
    fs, root = fsspec.core.url_to_fs(s3)
    command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", f"{s3}/out", "--unit-size", UNIT,
               "-q", "-j", "1"]
    process = subprocess.Popen(command, start_new_session=True)  # the S3 settings travel in the environment
    receipt = f"{root}/out/{WORK_DIR}/part-00005.json"
    deadline = time.monotonic() + 60
    while not fs.exists(receipt) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        fs.invalidate_cache()
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = objects(f"{s3}/out")
    assert "manifest.json" not in left and f"{WORK_DIR}/run.json" in left
    shards = [name for name in left if name.endswith(".parquet")]
    assert len(shards) >= 6
    for name in shards:  # every object is a whole shard: uploads appear complete or not at all
        assert pq.read_table(io.BytesIO(left[name])).num_rows > 0
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert objects(f"{s3}/out") == files(local["parquet"])


# `python -c KILLED_AFTER NAME ARGS...`: sftconv ARGS, killed (os._exit, as SIGKILL would) once NAME is uploaded.
KILLED_AFTER = """
import os, sys
from sftconv.cli import main
from sftconv.writers.folder import RemoteFolder
upload = RemoteFolder.publish
def publish(folder, path):
    upload(folder, path)
    if path.relative_to(folder.local).as_posix() == sys.argv[1]:
        os._exit(9)
RemoteFolder.publish = publish
main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def packed_megatron(tmp_path_factory) -> tuple[list[str], Path]:
    """The convert arguments of a small packed Megatron run (4 units, two shards each) and its local output."""
    folder = tmp_path_factory.mktemp("packed-megatron")
    corpus = write_jsonl(folder / "chats.jsonl", ["not json", *(chat(random.Random(i)) for i in range(150))])
    args = ["convert", str(corpus), "--unit-size", "40KB", "--shard-rows", "20", "--format", "megatron",
            "--pack", "2048", "-q", "-j", "1"]
    assert CliRunner().invoke(main, [*args, "-o", str(folder / "local")]).exit_code == 0
    return args, folder / "local"


@pytest.mark.parametrize("killed_after", [
    "part-00001-shard-00000.loss_mask.bin",  # a Megatron shard's .bin files are up, its .idx files not
    f"{WORK_DIR}/part-00001.rejects.jsonl",  # a unit's files are up, its receipt not
    "rejects.jsonl",  # the rejects are joined, the manifest not written
    "manifest.json",  # the manifest is written, the work folder not removed
])
def test_a_run_killed_after_any_upload_resumes_to_the_bytes_of_a_local_run(killed_after, packed_megatron, s3, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the killed run's staging folder stays
    args, local_output = packed_megatron
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER, killed_after, *args, "-o", f"{s3}/out"])
    assert killed.returncode == 9
    assert killed_after in objects(f"{s3}/out")
    resumed = CliRunner().invoke(main, [*args, "-o", f"{s3}/out", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert objects(f"{s3}/out") == files(local_output)

def test_resume_on_s3_redoes_a_unit_whose_shard_is_gone_and_verifies_a_finished_run(corpus, local, s3):
    fs, root = fsspec.core.url_to_fs(s3)
    assert convert_cli(corpus, f"{s3}/out").exit_code == 0
    fs.rm(f"{root}/out/part-00002-shard-00000.parquet")
    missing = convert_cli(corpus, f"{s3}/out", "--resume")
    assert missing.exit_code == 1 and f"{s3}/out/part-00002-shard-00000.parquet is missing" in missing.output
    assert convert_cli(corpus, f"{s3}/out", "--overwrite").exit_code == 0
    assert objects(f"{s3}/out") == files(local["parquet"])
    finished = convert_cli(corpus, f"{s3}/out", "--resume")
    assert finished.exit_code == 0 and "already holds this run" in finished.output


def test_a_missing_bucket_is_an_error_naming_the_url(corpus, s3):
    result = convert_cli(corpus, "s3://sftconv-no-such-bucket/out")
    assert result.exit_code == 1
    assert "s3://sftconv-no-such-bucket/out/" in result.output and "bucket" in result.output


def test_the_ray_engine_writes_the_local_bytes_into_s3(corpus, local, s3):
    """Ray's workers write their units' shards straight into the bucket, with the credentials of their environment."""
    assert not ray.is_initialized()  # a fresh instance, started by the run with this environment
    result = convert_cli(corpus, f"{s3}/ray", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert objects(f"{s3}/ray") == files(local["parquet"])


@pytest.mark.parametrize("url, shown", [
    ("foo://bucket/run", "foo://bucket/run: Protocol not known: foo"),
    ("oci://bucket@namespace/run", "oci://bucket@namespace/run: a package this URL needs is not installed"),
    ("s3://AKIAEXAMPLE:hunter2@bucket/run", "s3://***@bucket/run: a URL must not hold a password"),
    ("sftp://ann:hunter2@127.0.0.1:1/run", "sftp://***@127.0.0.1:1/run: a URL must not hold a password"),
])
def test_an_output_url_that_cannot_be_used_is_an_error_naming_it_never_its_password(url, shown, tmp_path):
    result = convert_cli(write_jsonl(tmp_path / "chats.jsonl", [chat(random.Random(1))]), url)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # bad usage, as for an input URL
    assert f"Error: {shown}" in result.output and "hunter2" not in result.output


def test_storage_that_refuses_the_run_is_an_error_naming_the_url(corpus, s3, monkeypatch):
    import moto.settings

    bad_name = convert_cli(corpus, "s3://Not_A_Bucket!/run")  # botocore's own error, which is no OSError
    assert bad_name.exit_code == 1 and isinstance(bad_name.exception, SystemExit)
    assert "Error: cannot list s3://Not_A_Bucket!/run: " in bad_name.output
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks credentials: ours are unknown
    denied = convert_cli(corpus, f"{s3}/run")
    assert denied.exit_code == 1 and isinstance(denied.exception, SystemExit)
    assert f"Error: cannot list {s3}/run: The AWS Access Key Id you provided does not exist" in denied.output


def test_a_file_another_process_rewrote_is_read_whole_though_this_one_listed_it(s3):
    from sftconv.writers.folder import Folder

    fs, root = fsspec.core.url_to_fs(s3)
    fs.pipe_file(f"{root}/run/manifest.json", b"{}")
    with Folder.at(f"{s3}/run") as folder:
        assert folder.entries() == {"manifest.json": True}  # s3fs caches the listing, sizes included
        fsspec.filesystem("s3", skip_instance_cache=True).pipe_file(f"{root}/run/manifest.json", b'{"shards": []}')
        assert folder.read_text("manifest.json") == '{"shards": []}'


FAILING = 2  # the unit whose Ray worker dies after uploading its first shard


def dies_after_one_upload(job, unit, cwd):
    """A unit's task that, at unit FAILING, uploads one shard and dies before its other shards and its receipt."""
    from sftconv.ray_engine import convert_alone
    from sftconv.writers.folder import RemoteFolder

    if unit.index == FAILING:
        upload = RemoteFolder.publish

        def upload_then_die(folder, path):
            upload(folder, path)
            os._exit(3)

        RemoteFolder.publish = upload_then_die
    return convert_alone(job, unit, cwd)


def test_a_unit_that_died_on_a_ray_worker_mid_upload_is_redone_by_resume(s3, tmp_path):
    from sftconv.pipeline import ConvertError, ConvertOptions, convert
    from sftconv.ray_engine import RayEngine

    class DiesMidUnit(RayEngine):
        task = staticmethod(dies_after_one_upload)

    corpus = write_jsonl(tmp_path / "chats.jsonl", [chat(random.Random(i)) for i in range(150)])  # 4 units
    args = ["--unit-size", "40KB", "--shard-rows", "20", "-q"]
    assert CliRunner().invoke(main, ["convert", str(corpus), "-o", str(tmp_path / "local"), *args]).exit_code == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")  # with the s3 settings
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with DiesMidUnit(retries=0) as engine, pytest.raises(ConvertError, match="1 of 4 unit"):
            convert([str(corpus)], f"{s3}/out", ConvertOptions(unit_bytes=40_000, shard_rows=20), engine=engine)
        left = objects(f"{s3}/out")
        assert f"part-{FAILING:05d}-shard-00000.parquet" in left and f"{WORK_DIR}/part-{FAILING:05d}.json" not in left
        resumed = CliRunner().invoke(main, ["convert", str(corpus), "-o", f"{s3}/out", *args, "--engine", "ray", "--resume"])
        assert resumed.exit_code == 0, resumed.output
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()
    assert objects(f"{s3}/out") == files(tmp_path / "local")
