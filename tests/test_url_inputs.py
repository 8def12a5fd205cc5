"""Inputs at URLs (`s3://...`, on moto's local S3 server): read through fsspec, written as the same files read locally are."""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
import zstandard
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.pipeline import ConvertError, ConvertOptions, convert, open_source, run_identity
from sftconv.readers import expand_inputs, reader_for
from sftconv.readers.base import ReaderError

from .conftest import write_jsonl
from .test_workers import chat

UNIT_BYTES = 30_000  # small units, so the JSON Lines and Parquet files here are cut into spans


@pytest.fixture(scope="module")
def local_data(tmp_path_factory) -> Path:
    """A folder of every container (JSON Lines plain, gzip and zstd, Parquet in row groups, JSON, CSV), and files to skip."""
    folder = tmp_path_factory.mktemp("data")
    rng = random.Random(10)
    lines: list = [chat(rng) for _ in range(300)]
    lines.insert(7, "not json")  # a reject, located in the input it came from
    write_jsonl(folder / "chat.jsonl", lines)
    (folder / "sub").mkdir()
    (folder / "sub" / "more.jsonl.gz").write_bytes(gzip.compress(
        "".join(json.dumps(chat(rng)) + "\n" for _ in range(120)).encode(), mtime=0))
    (folder / "sub" / "packed.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(chat(rng)) + "\n" for _ in range(80)).encode()))
    pq.write_table(pa.Table.from_pylist([chat(rng) for _ in range(200)]), folder / "rows.parquet", row_group_size=25)
    (folder / "array.json").write_text(json.dumps([chat(rng) for _ in range(40)], indent=1), encoding="utf-8")
    with open(folder / "alpaca.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instruction", "input", "output"])
        writer.writerows([f"task {i}", "" if i % 3 else f"input {i}", f"answer {i}\nwith a second line"] for i in range(50))
    (folder / ".hidden").mkdir()
    write_jsonl(folder / ".hidden" / "skip.jsonl", [chat(rng)])
    (folder / "notes.txt").write_text("not data\n", encoding="utf-8")
    return folder


def upload(folder: Path, url: str) -> str:
    """Every file under `folder` put under `url` (`s3://BUCKET/PREFIX`), with the same relative names."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return url


def files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir()) if path.is_file()}


def as_url(outputs: dict[str, bytes], folder: Path, url: str) -> dict[str, bytes]:
    """A local run's files with the input folder's path written as the URL (in the manifest's inputs and shapes, and rejects)."""
    return {name: data.replace(str(folder).encode(), url.encode()) for name, data in outputs.items()}


def test_a_bucket_prefix_converts_to_the_bytes_of_the_same_local_folder(local_data, s3, tmp_path):
    url = upload(local_data, f"{s3}/data")
    options = ConvertOptions(shard_rows=70, unit_bytes=UNIT_BYTES)
    local = convert([str(local_data)], tmp_path / "local", options)
    remote = convert([url], tmp_path / "remote", options)

    expected = files(tmp_path / "local")
    assert files(tmp_path / "remote") == as_url(expected, local_data, url)
    manifest = json.loads(expected["manifest.json"])
    names = ["alpaca.csv", "array.json", "chat.jsonl", "rows.parquet", "sub/more.jsonl.gz", "sub/packed.jsonl.zst"]
    assert manifest["inputs"] == [str(local_data / name) for name in names]
    assert json.loads((tmp_path / "remote" / "manifest.json").read_bytes())["inputs"] == [f"{url}/{n}" for n in names]
    assert remote.read == local.read == 300 + 1 + 120 + 80 + 200 + 40 + 50
    assert remote.rejected_by_reason == local.rejected_by_reason and remote.rejected_by_reason["invalid_json"] == 1
    rejects = [json.loads(line) for line in (tmp_path / "remote" / "rejects.jsonl").read_text().splitlines()]
    assert {"location": f"{url}/chat.jsonl:8", "reason": "invalid_json"}.items() <= rejects[0].items()
    # JSON Lines and Parquet were cut into spans: more units than inputs.
    assert len({shard["files"][0]["file"][:10] for shard in manifest["shards"]}) > len(names) + 4


@pytest.mark.parametrize("name", ["chat.jsonl", "rows.parquet"])
def test_spans_of_an_object_hold_the_records_of_the_whole_file(local_data, s3, name):
    url = upload(local_data, f"{s3}/data") + f"/{name}"
    reader = reader_for(url)
    spans = reader.spans(url, UNIT_BYTES)
    assert len(spans) > 3 and spans == reader.spans(local_data / name, UNIT_BYTES)
    parts = [item for span in spans for chunk in reader.chunks(url, span) for item in chunk.records()]
    whole = list(reader.read(url))
    assert parts == whole
    local = list(reader.read(local_data / name))
    assert [(item.location.line, item.location.row) for item in whole] == [
        (item.location.line, item.location.row) for item in local]
    assert {item.location.source for item in whole} == {url}
    assert [getattr(item, "data", None) for item in whole] == [getattr(item, "data", None) for item in local]


def test_globs_and_prefixes_expand_to_full_urls_in_the_order_of_a_local_folder(local_data, s3):
    url = upload(local_data, f"{s3}/data")
    walked = [str(path).replace(str(local_data), url) for path in expand_inputs([str(local_data)])]
    assert expand_inputs([url]) == expand_inputs([url + "/"]) == walked
    assert all(isinstance(item, str) and item.startswith("s3://") for item in walked)
    for pattern in ("**/*.jsonl*", "*/*", "*.j*"):
        assert expand_inputs([f"{url}/{pattern}"]) == [
            str(path).replace(str(local_data), url) for path in expand_inputs([f"{local_data}/{pattern}"])]
    assert expand_inputs([f"{url}/**/*.jsonl*"]) == [f"{url}/chat.jsonl", f"{url}/sub/more.jsonl.gz",
                                                     f"{url}/sub/packed.jsonl.zst"]
    assert expand_inputs([f"{url}/sub/*", f"{url}/chat.jsonl"]) == [
        f"{url}/sub/more.jsonl.gz", f"{url}/sub/packed.jsonl.zst", f"{url}/chat.jsonl"]
    assert expand_inputs([f"{url}/s*"]) == [f"{url}/sub/more.jsonl.gz", f"{url}/sub/packed.jsonl.zst"]  # a folder matched
    assert expand_inputs([f"file://{local_data}/chat.jsonl"]) == [local_data / "chat.jsonl"]
    for missing in (f"{url}/nothing.jsonl", f"{url}/*.nothing", f"{s3}-not-a-bucket/a.jsonl"):
        with pytest.raises(FileNotFoundError, match=f"^no such file or folder: {missing.replace('*', '[*]')}$"):
            expand_inputs([missing])
    with pytest.raises(ValueError, match=f"^{url}/a\\*\\*b: Invalid pattern"):
        expand_inputs([f"{url}/a**b"])


def test_a_save_to_disk_folder_at_a_url_is_refused_with_what_to_do(s3, tmp_path):
    from datasets import Dataset

    Dataset.from_list([chat(random.Random(1))]).save_to_disk(str(tmp_path / "saved"))
    url = upload(tmp_path / "saved", f"{s3}/saved")
    with pytest.raises(ValueError, match=f"^{url} is a Hugging Face save_to_disk folder, .* copy it to this machine"):
        expand_inputs([url])


def test_the_identity_of_a_url_input_changes_when_the_object_is_rewritten(local_data, s3):
    url = upload(local_data, f"{s3}/data") + "/chat.jsonl"
    options = ConvertOptions()
    first = run_identity(open_source([url], options), options)["inputs"]
    s3fs.S3FileSystem.clear_instance_cache()  # as a later run would, in a new process
    assert run_identity(open_source([url], options), options)["inputs"] == first
    assert first == [{"input": url, "bytes": (local_data / "chat.jsonl").stat().st_size, "version": first[0]["version"]}]
    bucket, _, key = url.removeprefix("s3://").partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=(local_data / "chat.jsonl").read_bytes()[::-1][1:] + b"\n")
    s3fs.S3FileSystem.clear_instance_cache()
    again = run_identity(open_source([url], options), options)["inputs"]
    assert again[0]["bytes"] == first[0]["bytes"] and again[0]["version"] != first[0]["version"]


def test_the_command_line_with_two_workers_on_a_glob_of_urls(local_data, s3, tmp_path):
    """A separate process as a user runs it, credentials in its environment; its workers are forked after S3 was read."""
    url = upload(local_data, f"{s3}/data")
    common = ["--shard-rows", "70", "--unit-size", str(UNIT_BYTES), "-q"]
    local = CliRunner().invoke(main, ["convert", f"{local_data}/*.jsonl", f"{local_data}/rows.parquet",
                                      "-o", str(tmp_path / "local"), *common])
    assert local.exit_code == 0, local.output
    remote = subprocess.run([sys.executable, "-m", "sftconv", "convert", f"{url}/*.jsonl", f"{url}/rows.parquet",
                             "-o", str(tmp_path / "remote"), "--workers", "2", *common],
                            capture_output=True, text=True, env=os.environ, timeout=120)
    assert remote.returncode == 0, remote.stderr
    assert remote.stdout == local.stdout.replace(str(local_data), url).replace(str(tmp_path / "local"),
                                                                               str(tmp_path / "remote"))
    assert files(tmp_path / "remote") == as_url(files(tmp_path / "local"), local_data, url)


def test_the_ray_engine_reads_urls_in_its_tasks(local_data, s3, tmp_path):
    """Ray's workers open the objects themselves, with the credentials of the environment they were started in."""
    url = upload(local_data, f"{s3}/data")
    common = ["--unit-size", str(UNIT_BYTES), "-q", "--workers", "2"]
    local = CliRunner().invoke(main, ["convert", str(local_data), "-o", str(tmp_path / "local"), *common])
    assert local.exit_code == 0, local.output
    remote = subprocess.run([sys.executable, "-m", "sftconv", "convert", url, "-o", str(tmp_path / "ray"),
                             "--engine", "ray", *common], capture_output=True, text=True, env=os.environ, timeout=300)
    assert remote.returncode == 0, remote.stderr
    assert files(tmp_path / "ray") == as_url(files(tmp_path / "local"), local_data, url)


def test_missing_unreadable_and_unknown_urls_are_one_line_naming_them_and_no_secret(s3, tmp_path, monkeypatch):
    secret = "SECRET-never-printed-0d3b"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = s3.removeprefix("s3://")
    boto3.client("s3").put_object(Bucket=bucket, Key="cut.jsonl.gz", Body=gzip.compress(b'{"a": 1}\n' * 1000)[:-30])
    cases = {  # bad usage (2) comes after click's Usage: lines; a failed run (1) is one line
        f"{s3}/missing.jsonl": (2, f"Error: no such file or folder: {s3}/missing.jsonl"),
        f"{s3}/cut.jsonl.gz": (1, f"Error: {s3}/cut.jsonl.gz: cannot be read: "),
        "nosuch://bucket/a.jsonl": (2, "Error: nosuch://bucket/a.jsonl: "),
    }
    for index, (url, (code, message)) in enumerate(cases.items()):
        result = CliRunner().invoke(main, ["convert", url, "-o", str(tmp_path / str(index)), "-q"])
        assert result.exit_code == code and result.stderr.splitlines()[-1].startswith(message), result.output
        assert len(result.stderr.splitlines()) == (1 if code == 1 else 4) and secret not in result.output
    assert "nosuch" in CliRunner().invoke(main, ["convert", "nosuch://bucket/a.jsonl", "-o", str(tmp_path / "x")]).stderr
    with pytest.raises(ReaderError, match=f"^{s3}/gone.jsonl: cannot be read"):
        list(reader_for(f"{s3}/gone.jsonl").read(f"{s3}/gone.jsonl"))
    with pytest.raises(ConvertError, match=f"^no such file or folder: {s3}/missing.jsonl$"):
        convert([f"{s3}/missing.jsonl"], tmp_path / "lib", ConvertOptions())


def test_no_credentials_is_one_line_saying_so(s3, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    result = CliRunner().invoke(main, ["convert", f"{s3}/a.jsonl", "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {s3}/a.jsonl: cannot be read: NoCredentialsError: Unable to locate credentials\n"


def test_validate_and_inspect_read_urls_as_they_read_files(local_data, s3):
    url = upload(local_data, f"{s3}/data")
    reports = {}
    for where in (str(local_data), url):
        result = CliRunner().invoke(main, ["validate", f"{where}/chat.jsonl", f"{where}/rows.parquet", "--format", "json"])
        reports[where] = result.exit_code, result.stdout
    assert reports[url] == (reports[str(local_data)][0], reports[str(local_data)][1].replace(str(local_data), url))
    assert f"{url}/chat.jsonl" in reports[url][1]
    shown = CliRunner().invoke(main, ["inspect", f"{url}/rows.parquet", "--head", "1", "--plain"])
    assert shown.exit_code == 0 and shown.stdout.startswith(f"=== sample 0 · {url}/rows.parquet[row 0] ·"), shown.output


def test_the_command_line_does_not_load_fsspec_until_a_url_is_read():
    code = "import sys, sftconv.cli; print('fsspec' in sys.modules, 's3fs' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False False\n"
