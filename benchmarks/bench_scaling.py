"""Throughput of `sftconv convert` by engine and core count, on one corpus in one run, and what it means for a cluster.

Times, as real subprocesses end to end (interpreter start, imports, tokenizer load and, for Ray, starting
and stopping a local Ray instance): the local engine with `--workers 1` and `--workers 2`, the Ray
engine on a local instance of 1 and 2 CPUs, and Ray's start and stop alone. Each path runs `--repeat`
times, interleaved, and its best run counts; all four outputs must be the same bytes each time.
Prints one table (wall seconds, tokens/s, speed-up over one core of the same engine), the per-core rate, and a paper estimate for a 5-billion-token mix on N nodes. Run
from the repository root:

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from corpus import write_corpus  # noqa: E402

MIX_TOKENS = 5e9  # the paper estimate's mix
RAY_ALONE_LABEL = "Ray start and stop alone (2 CPUs)"
RAY_ALONE = ("import ray; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level='ERROR'); "
             "ray.shutdown()")


def seconds(command: list[str]) -> float:
    """Wall time of a command run to its end (it must succeed).

    Only the clock: polling the memory of Ray's dozen processes, as `measure.run` does, takes enough
    CPU on a small machine to slow down what it measures.
    """
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def convert(corpus: Path, out: Path, unit_size: str, *args: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    return seconds([sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", str(out), "-q",
                    "--unit-size", unit_size, *args])


def keep_best(measured: dict[str, float], label: str, new: float) -> None:
    measured[label] = min(measured.get(label, new), new)


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=40, help="corpus size in MB (default 40)")
    parser.add_argument("--unit-size", default="4MB", help="--unit-size of every run (default 4MB: 10 units of 40 MB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path, interleaved; the best counts (default 3)")
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
        measured: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, so a busy moment of the machine hits every path alike
            outputs = []
            for index, (label, extra) in enumerate(paths.items()):
                out = folder / f"out-{index}"
                keep_best(measured, label, convert(corpus, out, args.unit_size, *extra))
                outputs.append(files(out))
            assert all(output == outputs[0] for output in outputs), "the engines wrote different bytes"
            keep_best(measured, RAY_ALONE_LABEL, seconds([sys.executable, "-c", RAY_ALONE]))
        manifest = json.loads(outputs[0]["manifest.json"])

    tokens = manifest["counts"]["tokens"]
    units = sum(1 for name in outputs[0] if name.startswith("part-"))
    print(f"corpus: {args.mb:g} MB, {records:,} records, {tokens:,} tokens, {units} units of --unit-size {args.unit_size}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    print("all four outputs are the same bytes\n")
    print(f"| {'path':<38} | wall s | Mtok/s | vs 1 core |")
    print(f"|{'-' * 40}|--------|--------|-----------|")
    base = {"local": measured["local engine, --workers 1"], "ray": measured["ray engine, local instance of 1 CPU"]}
    ray_alone = measured.pop(RAY_ALONE_LABEL)
    for label, wall in measured.items():
        print(f"| {label:<38} | {wall:6.2f} | {tokens / wall / 1e6:6.3f} | {base[label.split()[0]] / wall:8.2f}x |")
    print(f"| {RAY_ALONE_LABEL:<38} | {ray_alone:6.2f} |        |           |")

    per_core = tokens / measured["local engine, --workers 1"]
    ray_two = measured["ray engine, local instance of 2 CPUs"] - ray_alone
    efficiency = min(1.0, tokens / max(ray_two, 1e-9) / (2 * per_core))
    print(f"\nper-core rate (local engine, 1 worker, end to end): {per_core / 1e6:.3f} M tokens/s")
    print(f"Ray, 2 CPUs, without its start and stop: {efficiency:.0%} of 2x the per-core rate")
    print(f"paper estimate for {MIX_TOKENS / 1e9:g} B tokens, {args.cores_per_node} cores a node "
          f"(minutes: every core at the per-core rate / at that efficiency):")
    for nodes in (1, 4, 16, 64):
        ideal = MIX_TOKENS / (per_core * args.cores_per_node * nodes) / 60
        print(f"  {nodes:>3} node(s): {ideal:7.1f} / {ideal / efficiency:7.1f}")


if __name__ == "__main__":
    main()
