"""Throughput of `sftconv convert` beside the raw tokenizer limit and the peers users run today, in one run.

Prints one table: seconds, MB/s of message text, tokens/s, CPU seconds, peak RSS of the process tree,
and the ratio of each path's wall time to the raw tokenizer's (the physical limit of the job: the
fastest way found here to turn the same message texts into ids with the same tokenizer file).
Every timed path runs `--repeat` times, interleaved, and its best run counts. Run from the repository root:

    pip install -e '.[bench]'
    python benchmarks/bench_convert.py --mb 200
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import write_corpus, write_other_containers  # noqa: E402
from measure import Measured, run  # noqa: E402

from sftconv.tokenizer import Tokenizer  # noqa: E402

# The Llama 3 Instruct template with the generation markers that `return_assistant_tokens_mask` needs.
LLAMA3_MASKED_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
)
SEPARATOR = "<|reserved_special_token_245|>"
CHUNK_CHARS = 1 << 16
CPUS = os.cpu_count() or 1

_encoding = None  # the raw paths' tiktoken Encoding; a module global so forked processes inherit it
_chunks: list[str] = []
_fast = None  # fastokens, loaded from the tokenizer.json sftconv builds (tokenizer_backends.py), for the same reason
_parts: list[list[str]] = []


@dataclass
class Row:
    label: str
    seconds: float
    text_mb: float
    tokens: int
    cpu_seconds: float | None = None
    rss_mb: float | None = None
    pss_mb: float | None = None


def cpu_now() -> float:
    """CPU seconds of this process and its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def loop(texts: list[str]) -> int:
    return sum(len(_encoding.encode_ordinary(t)) for t in texts)


def joined(chunk: str) -> int:
    """A chunk of texts joined by a special token, encoded in one call into an array (the separators are counted out)."""
    ids = _encoding.encode_to_numpy(chunk, allowed_special={SEPARATOR}, disallowed_special=())
    return len(ids) - chunk.count(SEPARATOR)


def joined_part(part: int) -> int:
    return sum(joined(c) for c in _chunks[part::CPUS])


def fast_part(part: int) -> int:
    """fastokens on one process's share of the texts, 4,096 texts a call, flat ids (encode_batch_flat)."""
    texts = _parts[part]
    return sum(len(_fast.encode_batch_flat(texts[i:i + 4096])[0]) // 4 for i in range(0, len(texts), 4096))


def join_texts(texts: list[str]) -> list[str]:
    """The texts joined by SEPARATOR into texts of about CHUNK_CHARS characters, as the limit encodes them."""
    joined, current, size = [], [], 0
    for text in texts:
        current.append(text)
        size += len(text)
        if size > CHUNK_CHARS:
            joined.append(SEPARATOR.join(current))
            current, size = [], 0
    joined.append(SEPARATOR.join(current))
    return joined


def raw_ways(texts: list[str]) -> dict:
    """The ways to turn the texts into ids that compete for the limit; each returns the number of ids."""
    global _encoding, _chunks, _fast, _parts
    _encoding = Tokenizer(backend="tiktoken")._encoding
    _fast = Tokenizer(backend="fastokens").backend.fast
    _chunks = join_texts(texts)
    parts = _parts = [texts[i::CPUS] for i in range(CPUS)]

    def processes(work) -> int:
        with ProcessPoolExecutor(CPUS, mp_context=multiprocessing.get_context("fork")) as pool:
            return sum(pool.map(work, range(CPUS)))

    return {
        "loop, 1 thread": lambda: loop(texts),
        f"loop, {CPUS} threads": lambda: sum(ThreadPoolExecutor(CPUS).map(loop, parts)),
        f"64 KB joined chunks to numpy, {CPUS} threads": lambda: sum(ThreadPoolExecutor(CPUS).map(joined, _chunks)),
        f"64 KB joined chunks to numpy, {CPUS} processes": lambda: processes(joined_part),
        f"fastokens alone: encode_batch_flat, {CPUS} processes": lambda: processes(fast_part),
    }


def hf_peer(conversations: list[list[dict]]) -> tuple[float, int]:
    """Hugging Face apply_chat_template with assistant masks, batched, on the same tokenizer file."""
    from tests.references import hf_tokenizer

    tokenizer = hf_tokenizer()
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(conversations), 256):
        out = tokenizer.apply_chat_template(conversations[i:i + 256], chat_template=LLAMA3_MASKED_TEMPLATE,
                                            tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        tokens += sum(map(len, out["input_ids"]))
    return time.perf_counter() - start, tokens


def meta_peer(conversations: list[list[dict]]) -> tuple[float, int]:
    """Meta's reference ChatFormat, message by message (no mask: it has none)."""
    from llama_models.datatypes import RawMessage, StopReason, ToolPromptFormat
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

    chat_format = ChatFormat(MetaTokenizer.get_instance())
    start = time.perf_counter()
    tokens = 0
    for messages in conversations:
        tokens += 1
        for m in messages:
            raw = RawMessage(role=m["role"], content=m["content"].strip(), stop_reason=StopReason.end_of_turn)
            tokens += len(chat_format.encode_message(raw, ToolPromptFormat.json)[0])
    return time.perf_counter() - start, tokens


def convert(source: Path, extra: list[str], quiet: bool = True, code: Path = ROOT) -> tuple[Measured, int]:
    """A real `sftconv convert` process running the sftconv in `code` (a checkout): its measurements and tokens."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "sftconv", "convert", str(source), "-o", out, *(["-q"] if quiet else []), *extra]
        env = {**os.environ, "PYTHONPATH": str(code)}
        # Run from `code`: `python -m` puts the working directory first on sys.path, before PYTHONPATH.
        measured = run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code)
        tokens = json.loads((Path(out) / "manifest.json").read_text())["counts"]["tokens"]
    return measured, tokens


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{CPUS} CPUs ({model}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200, help="size of the generated corpus in MB (default 200)")
    parser.add_argument("--input", type=Path, help="an OpenAI-format JSONL corpus to use instead")
    parser.add_argument("--peer-mb", type=float, default=10, help="MB of the corpus the slow peers run on (default 10)")
    parser.add_argument("--workers", default=f"1,{CPUS}", help=f"--workers values to run (default 1,{CPUS})")
    parser.add_argument("--containers", default="jsonl,parquet,hf",
                        help="input containers to convert from (default jsonl,parquet,hf)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timed path; the best counts (default 2)")
    parser.add_argument("--sftconv-args", default="", help="extra convert options, e.g. '--format megatron'")
    parser.add_argument("--backends", default="tiktoken,fastokens",
                        help="--tokenizer-backend values to convert with (default tiktoken,fastokens)")
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="another sftconv checkout (`git worktree add /tmp/old COMMIT`) whose convert runs "
                             "beside this one's, with the same options; may be given more than once")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    containers = args.containers.split(",")
    extra = args.sftconv_args.split()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.input.resolve() if args.input else Path(tmp) / "corpus.jsonl"
        if not args.input:
            write_corpus(corpus, args.mb)
        texts, peer_set, peer_mb = [], [], 0.0
        with open(corpus, encoding="utf-8") as handle:
            for line in handle:
                messages = json.loads(line)["messages"]
                texts += (m["content"].strip() for m in messages)
                if peer_mb < args.peer_mb:
                    peer_set.append(messages)
                    peer_mb += sum(len(m["content"].strip().encode()) for m in messages) / 1e6
        text_mb = sum(len(t.encode()) for t in texts) / 1e6
        sources = {"jsonl": corpus, **(write_other_containers(corpus, Path(tmp)) if set(containers) - {"jsonl"} else {})}

        ways = raw_ways(texts)
        runs: dict[str, list[Row]] = {}
        for attempt in range(args.repeat):
            for name, way in ways.items():
                start, cpu = time.perf_counter(), cpu_now()
                tokens = way()
                runs.setdefault(f"raw tokenizer: {name}", []).append(
                    Row(f"raw tokenizer: {name}", time.perf_counter() - start, text_mb, tokens, cpu_now() - cpu))
            for container in containers:
                for count in workers:
                    for backend in args.backends.split(","):
                        for code in [ROOT, *args.baseline]:
                            label = f"sftconv convert, {container} input, --workers {count}, {backend}" + (
                                "" if code == ROOT else f" ({baseline_name(code)})")
                            measured, tokens = convert(sources[container], ["--workers", str(count),
                                                                            "--tokenizer-backend", backend, *extra],
                                                       code=code)
                            runs.setdefault(label, []).append(Row(label, measured.seconds, text_mb, tokens,
                                                                  measured.cpu_seconds, measured.peak_rss_mb,
                                                                  measured.peak_pss_mb))
            label = f"sftconv convert, jsonl input, --workers {workers[-1]}, auto, progress bar on"
            measured, tokens = convert(corpus, ["--workers", str(workers[-1]), *extra], quiet=False)
            runs.setdefault(label, []).append(Row(label, measured.seconds, text_mb, tokens, measured.cpu_seconds,
                                                  measured.peak_rss_mb, measured.peak_pss_mb))
            print(f"  run {attempt + 1} of {args.repeat} done", file=sys.stderr)
        best = {label: min(rows, key=lambda r: r.seconds) for label, rows in runs.items()}
        raw = [row for label, row in best.items() if label.startswith("raw")]
        # The limit is tiktoken's best form; fastokens alone is shown beside it, not as the limit.
        limit = min((r for r in raw if "fastokens" not in r.label), key=lambda r: r.seconds)
        fast_alone = next((r for r in raw if "fastokens" in r.label), None)
        peers = []
        for label, peer in [("HF apply_chat_template + masks", hf_peer), ("Meta ChatFormat", meta_peer)]:
            seconds, tokens = peer(peer_set)
            peers.append(Row(f"{label} (first {peer_mb:.0f} MB)", seconds, peer_mb, tokens))
    load_after = os.getloadavg()

    print(f"corpus: {len(texts):,} messages, {text_mb:.1f} MB of message text")
    print(f"machine: {machine()}; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"limit: {limit.label.removeprefix('raw tokenizer: ')}")
    print()
    header = (f"| {'path':<62} | {'s':>6} | {'MB/s':>6} | {'Mtok/s':>6} | {'CPU s':>6} | {'RSS MB':>6} | {'PSS MB':>6} "
              f"| {'time/limit':>10} |")
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    faster_peer = max(p.text_mb / p.seconds for p in peers)
    for row in [*raw, *peers, *[r for label, r in best.items() if not label.startswith("raw")]]:
        rate = row.text_mb / row.seconds
        cpu = f"{row.cpu_seconds:.2f}" if row.cpu_seconds is not None else ""
        rss = f"{row.rss_mb:.0f}" if row.rss_mb is not None else ""
        pss = f"{row.pss_mb:.0f}" if row.pss_mb is not None else ""
        print(f"| {row.label:<62} | {row.seconds:>6.2f} | {rate:>6.1f} | {row.tokens / row.seconds / 1e6:>6.2f} "
              f"| {cpu:>6} | {rss:>6} | {pss:>6} | {(text_mb / limit.seconds) / rate:>10.2f} |")
    print()
    for label, row in best.items():
        if label.startswith("sftconv") and "progress" not in label:
            before = [(code, best[f"{label} ({baseline_name(code)})"]) for code in args.baseline
                      if f"{label} ({baseline_name(code)})" in best]
            print(f"{label}: {row.text_mb / row.seconds / faster_peer:.1f}x the faster peer; "
                  f"{row.seconds / limit.seconds:.2f}x the tiktoken limit's time"
                  + (f", {row.seconds / fast_alone.seconds:.2f}x fastokens alone" if fast_alone else "")
                  + "".join(f", {row.seconds / old.seconds:.2f}x {baseline_name(code)}'s time" for code, old in before))


def baseline_name(code: Path) -> str:
    """A checkout named by its commit, as the table shows it."""
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"at {commit.stdout.strip()}" if commit.returncode == 0 else str(code)


if __name__ == "__main__":
    main()
