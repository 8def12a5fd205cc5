"""Throughput of `sftconv convert` by engine and core count, on one corpus in one run, and what it means for a cluster.

Times, as real subprocesses end to end (interpreter start, imports, tokenizer load and, for Ray, starting
and stopping a local Ray instance): the local engine with `--workers 1` and `--workers 2`, the Ray
engine on a local instance of 1 and 2 CPUs, and Ray's start and stop alone. Checks that all four
outputs are the same bytes, then prints one table, the per-core rate and a paper estimate for a
5-billion-token mix on N nodes. Run from the repository root:

    pip install -e '.[ray]'
    python benchmarks/bench_scaling.py --mb 40
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from corpus import write_corpus  # noqa: E402
from measure import Measured, run  # noqa: E402

MIX_TOKENS = 5e9  # the paper estimate's mix
RAY_ALONE = ("import ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level='ERROR'); "
             "ray.shutdown()")


def convert(corpus: Path, out: Path, unit_size: str, *args: str) -> Measured:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q",
               "--unit-size", unit_size, *args]
    return run(command, stdout=subprocess.DEVNULL)


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=40, help="corpus size in MB (default 40)")
    parser.add_argument("--unit-size", default="4MB", help="--unit-size of every run (default 4MB: 10 units of 40 MB)")
    parser.add_argument("--cores-per-node", type=int, default=32, help="for the estimate (default 32)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        corpus = folder / "corpus.jsonl"
        records = write_corpus(corpus, args.mb)
        paths = {
            "local engine, --workers 1": ["--workers", "1"],
            "local engine, --workers 2": ["--workers", "2"],
            "ray engine, local instance of 1 CPU": ["--engine", "ray", "--workers", "1"],
            "ray engine, local instance of 2 CPUs": ["--engine", "ray", "--workers", "2"],
        }
        measured, outputs = {}, []
        for index, (label, extra) in enumerate(paths.items()):
            out = folder / f"out-{index}"
            measured[label] = convert(corpus, out, args.unit_size, *extra)
            outputs.append(files(out))
        assert all(output == outputs[0] for output in outputs), "the engines wrote different bytes"
        manifest = json.loads(outputs[0]["manifest.json"])
        ray_alone = run([sys.executable, "-c", RAY_ALONE])

    tokens = manifest["counts"]["tokens"]
    units = sum(1 for name in outputs[0] if name.startswith("part-"))
    print(f"corpus: {args.mb:g} MB, {records:,} records, {tokens:,} tokens, {units} units of --unit-size {args.unit_size}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    print("all four outputs are the same bytes\n")
    print(f"| {'path':<38} | wall s | Mtok/s | vs 1 core | CPU s | RSS MB |")
    print(f"|{'-' * 40}|--------|--------|-----------|-------|--------|")
    base = {"local": measured["local engine, --workers 1"].seconds,
            "ray": measured["ray engine, local instance of 1 CPU"].seconds}
    for label, m in measured.items():
        ratio = base[label.split()[0]] / m.seconds
        print(f"| {label:<38} | {m.seconds:6.2f} | {tokens / m.seconds / 1e6:6.3f} | {ratio:8.2f}x | "
              f"{m.cpu_seconds:5.1f} | {m.peak_rss_mb:6.0f} |")
    print(f"| {'Ray start and stop alone (2 CPUs)':<38} | {ray_alone.seconds:6.2f} |        |           | "
          f"{ray_alone.cpu_seconds:5.1f} | {ray_alone.peak_rss_mb:6.0f} |")

    per_core = tokens / measured["local engine, --workers 1"].seconds
    ray_two = measured["ray engine, local instance of 2 CPUs"].seconds - ray_alone.seconds
    efficiency = min(1.0, tokens / max(ray_two, 1e-9) / (2 * per_core))
    print(f"\nper-core rate (local engine, 1 worker, end to end): {per_core / 1e6:.3f} M tokens/s")
    print(f"Ray, 2 CPUs, without its start and stop: {efficiency:.0%} of 2x the per-core rate")
    print(f"paper estimate for {MIX_TOKENS / 1e9:g} B tokens, {args.cores_per_node} cores a node, "
          f"at that efficiency:")
    for nodes in (1, 4, 16, 64):
        seconds = MIX_TOKENS / (per_core * args.cores_per_node * nodes * efficiency)
        print(f"  {nodes:>3} node(s): {seconds / 60:7.1f} min")


if __name__ == "__main__":
    main()
