"""What converting straight into object storage costs, next to a local run and to converting locally then uploading.

Starts moto's S3 server in this process (no network, no account) and times, as real subprocesses end
to end, interleaved, best of `--repeat`:

- local: the corpus on disk converted into a local folder (the reference);
- local + upload: the same, then the folder uploaded with fsspec's `put` (what users do today);
- into S3: `-o s3://...`, each shard uploaded whole as it is finished;
- S3 to S3: the corpus read from the bucket as well.

Each S3 run's shards must equal the local run's byte for byte (and, from a local corpus, every other file). moto is a Python server sharing
this machine's cores with the conversion, so the S3 figures are an upper bound on the overhead. Run from
the repository root:

    pip install -e '.[bench]'
    python benchmarks/bench_storage.py --mb 40
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from corpus import write_corpus  # noqa: E402

BUCKET = "sftconv-bench"


def start_s3() -> object:
    """moto's S3 server on a free local port, with the environment set as a user's credentials would be."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return server


def convert(source: str, out: str, unit_size: str) -> None:
    subprocess.run([sys.executable, "-m", "sftconv", "convert", source, "-o", out, "-q", "--overwrite",
                    "--unit-size", unit_size], stdout=subprocess.DEVNULL, check=True)


def objects(fs, root: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {PurePosixPath(path).name: fs.cat_file(path) for path in sorted(fs.find(root))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=40, help="corpus size in MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--unit-size", default="8MiB", help="--unit-size of every run")
    args = parser.parse_args()

    server = start_s3()
    import fsspec

    fs = fsspec.filesystem("s3")
    work = Path(tempfile.mkdtemp(prefix="sftconv-bench-storage-"))
    try:
        corpus = work / "corpus.jsonl"
        write_corpus(corpus, args.mb)
        fs.put_file(str(corpus), f"{BUCKET}/raw/corpus.jsonl")
        local = work / "out"

        def local_then_upload() -> None:
            convert(str(corpus), str(local), args.unit_size)
            if fs.exists(f"{BUCKET}/uploaded"):
                fs.rm(f"{BUCKET}/uploaded", recursive=True)
            fs.put(f"{local}/", f"{BUCKET}/uploaded/", recursive=True)

        paths = {
            "local": lambda: convert(str(corpus), str(local), args.unit_size),
            "local + upload": local_then_upload,
            "into S3": lambda: convert(str(corpus), f"s3://{BUCKET}/out", args.unit_size),
            "S3 to S3": lambda: convert(f"s3://{BUCKET}/raw/corpus.jsonl", f"s3://{BUCKET}/out2", args.unit_size),
        }
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for label, run in paths.items():
                start = time.perf_counter()
                run()
                best[label] = min(best.get(label, float("inf")), time.perf_counter() - start)
            reference = {p.name: p.read_bytes() for p in sorted(local.iterdir())}
            assert objects(fs, f"{BUCKET}/out") == reference, f"s3://{BUCKET}/out differs from the local run"
            shards = {name: data for name, data in reference.items() if name.startswith("part-")}
            from_s3 = objects(fs, f"{BUCKET}/out2")  # its manifest and rejects name the URL, not the local file
            assert {name: data for name, data in from_s3.items() if name.startswith("part-")} == shards
        print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB, --unit-size {args.unit_size}, best of {args.repeat}")
        print(f"{'path':<16} {'wall s':>8} {'vs local':>9}")
        for label, wall in best.items():
            print(f"{label:<16} {wall:8.2f} {wall / best['local']:8.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
