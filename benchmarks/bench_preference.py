"""What preference mode costs next to SFT on the same records, measured side by side in one run.

Writes synthetic pair records (a multi-turn prompt, two answers), then converts them three ways, each
`--repeat` times interleaved, best run counted: as pairs (`--task preference`), as SFT samples of the
chosen side alone, and as SFT samples of both sides (the same records written twice, once per side:
the tokens a pair row holds). Prints seconds, records/s, tokens written per second, peak RSS and the
ratio of each wall time to the SFT-of-both-sides run. Run from the repository root:

    python benchmarks/bench_preference.py --pairs 20000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from measure import Measured, run  # noqa: E402

WORDS = ("the model answers each question with care and a short example of what it means in practice "
         "while the user asks again about details numbers names and places").split()


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_pairs(folder: Path, count: int, seed: int = 0) -> dict[str, Path]:
    """The pair records, and the SFT records of their chosen sides and of both sides."""
    rng = random.Random(seed)
    paths = {name: folder / f"{name}.jsonl" for name in ("pairs", "chosen", "both")}
    with (open(paths["pairs"], "w") as pairs, open(paths["chosen"], "w") as chosen, open(paths["both"], "w") as both):
        for _ in range(count):
            prompt = []
            for _ in range(rng.randint(0, 3)):
                prompt += [{"role": "user", "content": text(rng, 30)}, {"role": "assistant", "content": text(rng, 80)}]
            prompt.append({"role": "user", "content": text(rng, 30)})
            sides = [[{"role": "assistant", "content": text(rng, rng.randint(40, 200))}] for _ in range(2)]
            pairs.write(json.dumps({"prompt": prompt, "chosen": sides[0], "rejected": sides[1]}) + "\n")
            chosen.write(json.dumps({"messages": prompt + sides[0]}) + "\n")
            for side in sides:
                both.write(json.dumps({"messages": prompt + side}) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_pairs(folder, args.pairs)
        runs = {"pairs (--task preference)": (paths["pairs"], args.pairs),
                "SFT, chosen side only": (paths["chosen"], args.pairs),
                "SFT, both sides": (paths["both"], 2 * args.pairs)}
        best: dict[str, Measured] = {}
        tokens: dict[str, int] = {}
        for attempt in range(args.repeat):
            for name, (path, _) in runs.items():
                out = folder / f"out-{attempt}-{len(best)}-{abs(hash(name))}"
                measured = run([sys.executable, "-m", "sftconv", "convert", str(path), "-o", str(out), "-q",
                                "-j", str(args.workers)], cwd=ROOT)
                if name not in best or measured.seconds < best[name].seconds:
                    best[name] = measured
                tokens[name] = json.loads((out / "manifest.json").read_text())["counts"]["tokens"]
        base = best["SFT, both sides"].seconds
        print(f"{args.pairs:,} pairs, {args.workers} worker(s), best of {args.repeat}")
        print(f"{'run':<28}{'seconds':>9}{'records/s':>11}{'tokens/s':>12}{'peak RSS MB':>13}{'x both':>8}")
        for name, (_, records) in runs.items():
            m = best[name]
            print(f"{name:<28}{m.seconds:>9.2f}{records / m.seconds:>11,.0f}{tokens[name] / m.seconds:>12,.0f}"
                  f"{m.peak_rss_mb:>13,.0f}{m.seconds / base:>8.2f}")


if __name__ == "__main__":
    main()
