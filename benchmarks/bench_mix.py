"""Re-mix time against the first mix: `sftconv mix` tokenizes each source once, then only re-blends.

Writes a generated corpus of `--mb` MB as four sources (OpenAI messages, different seeds), and a
recipe giving them one share of each kind. Runs `sftconv mix` three times with one cache folder:
the first run converts every source; the second changes one source's fraction; the third changes
the seed and packs into 4,096-token rows. Prints wall time, CPU time and peak memory of each, and
each re-mix's time as a share of the first run's. Run from the repository root:

    python benchmarks/bench_mix.py --mb 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import write_corpus  # noqa: E402
from measure import run  # noqa: E402

SHARES = [{"fraction": 0.5}, {"samples": 20_000}, {"repeat": 2}, {"trained_tokens": "5M"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100, help="corpus size in MB, over four sources (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="convert processes for the first run (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources, records, size = [], 0, 0
        for number, share in enumerate(SHARES):
            path = tmp / f"source{number}.jsonl"
            records += write_corpus(path, args.mb / len(SHARES), seed=number)
            size += path.stat().st_size
            sources.append({"name": f"source{number}", "inputs": str(path), **share})
        runs = [("first mix: every source converted", {"seed": 0}, {}),
                ("re-mix: source0 fraction 0.5 -> 0.8", {"seed": 0}, {"source0": {"fraction": 0.8}}),
                ("re-mix: new seed, packed to 4096", {"seed": 1, "pack": 4096}, {})]
        rows = []
        load_before = os.getloadavg()[0]
        for number, (label, run_wide, changes) in enumerate(runs):
            recipe = tmp / f"recipe{number}.json"
            recipe.write_text(json.dumps({**run_wide, "sources": [{**s, **changes.get(s["name"], {})}
                                                                  for s in sources]}))
            command = [sys.executable, "-m", "sftconv", "mix", str(recipe), "-o", str(tmp / f"out{number}"),
                       "--cache", str(tmp / "cache"), "-q", "--workers", str(args.workers)]
            rows.append((label, run(command, stdout=subprocess.DEVNULL)))
            manifest = json.loads((tmp / f"out{number}" / "manifest.json").read_text())
            rows[-1] += (manifest["counts"]["written"], manifest["counts"]["tokens"])
        load_after = os.getloadavg()[0]
    print(f"corpus: {size / 1e6:.1f} MB of JSON Lines, {records:,} records in {len(SHARES)} sources")
    print(f"machine: {os.cpu_count()} CPUs; load average before {load_before:.2f}, after {load_after:.2f}")
    print()
    print(f"| {'run':<38} | {'samples':>9} | {'tokens':>11} | {'s':>7} | {'CPU s':>7} | {'peak RSS MB':>11} "
          f"| {'time / first':>12} |")
    print(f"|{'-' * 40}|{'-' * 11}|{'-' * 13}|{'-' * 9}|{'-' * 9}|{'-' * 13}|{'-' * 14}|")
    first = rows[0][1]
    for label, measured, samples, tokens in rows:
        print(f"| {label:<38} | {samples:>9,} | {tokens:>11,} | {measured.seconds:>7.1f} | "
              f"{measured.cpu_seconds:>7.1f} | {measured.peak_rss_mb:>11.0f} | {measured.seconds / first.seconds:>12.3f} |")
    print()
    for label, measured, *_ in rows[1:]:
        print(f"{label}: {first.seconds / measured.seconds:.1f}x faster than the first mix, "
              f"{first.cpu_seconds / measured.cpu_seconds:.1f}x less CPU")


if __name__ == "__main__":
    main()
