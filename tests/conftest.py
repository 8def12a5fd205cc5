"""Shared fixtures: the real Llama 3 tokenizer (loaded once), the shared sample data folder and a local S3 server."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sftconv.tokenizer import Tokenizer

# `../shared/data` from the project root; a git worktree one level deeper finds it one folder further up.
SHARED_DATA = next((p / "shared" / "data" for p in Path(__file__).resolve().parents[2:4]
                    if (p / "shared" / "data").is_dir()), Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return Tokenizer()


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A local S3 server (moto's), so URL inputs and outputs are tested on a real S3 API without a network."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in a failing test's report
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, `s3://NAME`, reached through the environment alone, as a user's credentials are."""
    import boto3
    import s3fs

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    bucket = f"sftconv-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    s3fs.S3FileSystem.clear_instance_cache()  # a filesystem made before these variables were set keeps its own
    return f"s3://{bucket}"


@pytest.fixture
def shared_data() -> Path:
    """The team's real sample files; absent in a user's clone, where these tests skip and say why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared sample data is not here ({SHARED_DATA})")
    return SHARED_DATA


def write_jsonl(path: Path, records: list) -> Path:
    """Write records (or raw strings, written as they are) one per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False))
            handle.write("\n")
    return path


def cache_hub_dataset(cache_dir: Path, repo_id: str, splits: dict[str, list]) -> None:
    """Put a dataset in a `datasets` cache folder as `load_dataset(repo_id)` leaves it, without the network.

    The cache layout is `namespace___name/config/version/hash/name-split.arrow`; the packaged JSON
    builder writes it under `name/`, which is then given its namespace.
    """
    from datasets.packaged_modules.json.json import Json

    namespace, name = repo_id.split("/")
    sources = cache_dir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    files = {split: str(write_jsonl(sources / f"{split}.jsonl", records)) for split, records in splits.items()}
    Json(cache_dir=str(cache_dir), dataset_name=name, config_id="default", hash="0123abcd", data_files=files
         ).download_and_prepare()
    (cache_dir / name).rename(cache_dir / f"{namespace}___{name}")


def interrupted_run(args: list[str], when: Path, wait: float = 60) -> tuple[int, str]:
    """Run `python -m sftconv ARGS`, send it a real SIGINT once `when` exists, and return its exit code and stderr.

    The child gets the default SIGINT handling even where the tests run as a background job (a shell
    gives those SIGINT ignored, and an ignored signal is inherited).
    """
    def interruptible() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen([sys.executable, "-m", "sftconv", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.monotonic() + wait
    while not when.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr
