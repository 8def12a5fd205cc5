"""Peak memory of `sftconv convert` on 1x and 10x the same kind of input: it must stay flat in the input size.

Converts a generated corpus of `--mb` MB and one ten times larger with the default settings (plus any
`--sftconv-args`), from JSON Lines or, with `--container`, the same records as Parquet or as a
`save_to_disk` dataset, and prints the peak RSS and PSS of the whole process tree (the main process and its
workers) for each, and their ratio. Run from the repository root:

    pip install -e '.[bench]'
    python benchmarks/bench_memory.py --mb 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import write_corpus, write_other_containers  # noqa: E402
from measure import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="size of the small corpus in MB (default 20)")
    parser.add_argument("--factor", type=int, default=10, help="how many times larger the big corpus is (default 10)")
    parser.add_argument("--container", choices=["jsonl", "parquet", "hf"], default="jsonl",
                        help="convert from JSON Lines, Parquet or a save_to_disk dataset (default jsonl)")
    parser.add_argument("--sftconv-args", default="", help="extra convert options, e.g. '--pack 4096'")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for factor in (1, args.factor):
            corpus = Path(tmp) / f"corpus-{factor}x.jsonl"
            records = write_corpus(corpus, args.mb * factor)
            size = corpus.stat().st_size / 1e6
            source = corpus
            if args.container != "jsonl":
                folder = Path(tmp) / f"{factor}x"
                folder.mkdir()
                source = write_other_containers(corpus, folder)[args.container]
            out = Path(tmp) / f"out-{factor}x"
            command = [sys.executable, "-m", "sftconv", "convert", str(source), "-o", str(out), "-q",
                       *args.sftconv_args.split()]
            measured = run(command, stdout=subprocess.DEVNULL)
            rows.append((f"{factor}x", size, records, measured))
    print(f"machine: {os.cpu_count()} CPUs; input: {args.container}; convert options: {args.sftconv_args or '(defaults)'}")
    print()
    print(f"| {'input':<6} | {'JSONL MB':>8} | {'records':>9} | {'s':>7} | {'peak RSS MB':>11} | {'peak PSS MB':>11} |")
    print(f"|{'-' * 8}|{'-' * 10}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 13}|")
    for label, size, records, measured in rows:
        print(f"| {label:<6} | {size:>8.0f} | {records:>9,} | {measured.seconds:>7.1f} | {measured.peak_rss_mb:>11.0f} "
              f"| {measured.peak_pss_mb:>11.0f} |")
    small, big = rows[0][3], rows[1][3]
    print()
    print(f"{args.factor}x the input: peak RSS x{big.peak_rss_mb / small.peak_rss_mb:.3f}, "
          f"peak PSS x{big.peak_pss_mb / small.peak_pss_mb:.3f}")


if __name__ == "__main__":
    main()
