"""What loading a tokenizer adds to a run, by source: Meta's file, a tokenizer.json, a model folder.

Prints the seconds to load each source in a fresh process (cold: an empty sftconv cache, so the
tokenizer.json is checked to be Llama 3's; warm: its ranks cached), the seconds until the first text
is encoded by each backend (fastokens is built and self-checked then, once per process), and a whole
`sftconv convert` of a 100-record file with each source. The tokenizer.json is made offline from
Meta's file as Hugging Face's converter makes it. Run from the repository root:

    pip install -e '.[bench]'
    python benchmarks/bench_tokenizer_load.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.tokenizer_files import model_folder  # noqa: E402

LOAD = "import time, sys; s = time.perf_counter(); from sftconv.tokenizer import Tokenizer; " \
       "t = Tokenizer(None if sys.argv[1] == '-' else sys.argv[1], backend=sys.argv[2]); l = time.perf_counter(); " \
       "t.encode('Hello'); print(l - s, time.perf_counter() - l)"


def load(given: str, backend: str, env: dict) -> tuple[float, float]:
    """Seconds to import and load the tokenizer, then to encode a first text, in a new process."""
    out = subprocess.run([sys.executable, "-c", LOAD, given, backend], env=env, check=True, capture_output=True,
                         text=True)
    loaded, first = out.stdout.split()
    return float(loaded), float(first)


def convert(given: str, source: Path, env: dict) -> float:
    """Wall seconds of a whole `sftconv convert` with this tokenizer."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sftconv", "convert", str(source), "-o", out, "-q", "--workers", "1",
                        *(["--tokenizer", given] if given != "-" else [])], env=env, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measure; the best counts (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = model_folder(root / "model")
        source = root / "chats.jsonl"
        source.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                                           {"role": "assistant", "content": f"Answer {i}."}]}) + "\n"
                                  for i in range(100)))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SFTCONV_CACHE_DIR": str(root / "cache")}
        sources = {"Meta's tiktoken file": "-", "tokenizer.json": str(folder / "tokenizer.json"),
                   "model folder": str(folder)}
        rows = []
        cold = load(sources["tokenizer.json"], "tiktoken", env)[0]  # fills the ranks cache
        for name, given in sources.items():
            for backend in ("tiktoken", "fastokens"):
                best = min((load(given, backend, env) for _ in range(args.repeat)), key=sum)
                rows.append((f"{name}, {backend}", *best))
        runs = {name: min(convert(given, source, env) for _ in range(args.repeat)) for name, given in sources.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; best of {args.repeat}; a new process each time")
    print(f"tokenizer.json, cold (checked to be Llama 3's, ranks cached): {cold:.2f} s to load\n")
    print("| source, backend | import + load s | first encode s |")
    print("|---|---|---|")
    for name, loaded, first in rows:
        print(f"| {name} | {loaded:.2f} | {first:.2f} |")
    print("\n| `sftconv convert` of 100 records, --workers 1 | s | added vs Meta's file |")
    print("|---|---|---|")
    for name, seconds in runs.items():
        print(f"| {name} | {seconds:.2f} | {seconds - runs[next(iter(runs))]:+.2f} |")


if __name__ == "__main__":
    main()
