"""Throughput of `sftconv convert` beside the raw tokenizer limit and the peers users run today, in one run.

Prints one table: seconds, MB/s of message text, tokens/s, peak RSS and the ratio of each path's wall
time to the raw tokenizer's (the physical limit of the job). Run from the repository root:

    pip install -e '.[bench]'
    python benchmarks/bench_convert.py --mb 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import write_corpus  # noqa: E402

from sftconv.tokenizer import Tokenizer  # noqa: E402

# The Llama 3 Instruct template with the generation markers that `return_assistant_tokens_mask` needs.
LLAMA3_MASKED_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
)
SEPARATOR = "<|reserved_special_token_245|>"


def load(path: Path) -> list[list[dict]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["messages"] for line in handle]


def raw_limit(texts: list[str]) -> tuple[str, float, int]:
    """The fastest of three ways to turn the texts into ids with the same tokenizer file (ids discarded)."""
    encoding = Tokenizer()._encoding
    separator_id = encoding.encode_single_token(SEPARATOR)

    def loop(part):
        return sum(len(encoding.encode_ordinary(t)) for t in part)

    def joined(part):
        ids = encoding.encode(SEPARATOR.join(part), allowed_special={SEPARATOR}, disallowed_special=())
        return len(ids) - ids.count(separator_id)

    chunks, current, size = [], [], 0
    for text in texts:
        current.append(text)
        size += len(text)
        if size > 65_536:
            chunks.append(current)
            current, size = [], 0
    chunks.append(current)
    half = len(texts) // 2
    ways = {
        "loop, 1 thread": lambda: loop(texts),
        "loop, 2 threads": lambda: sum(ThreadPoolExecutor(2).map(loop, [texts[:half], texts[half:]])),
        "64 KB joined chunks, 2 threads": lambda: sum(ThreadPoolExecutor(2).map(joined, chunks)),
    }
    best = None
    for name, way in ways.items():
        start = time.perf_counter()
        tokens = way()
        elapsed = time.perf_counter() - start
        print(f"  raw tokenizer, {name}: {elapsed:.2f} s", file=sys.stderr)
        if best is None or elapsed < best[1]:
            best = (name, elapsed, tokens)
    return best


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


def run_sftconv(corpus: Path, extra: list[str]) -> tuple[float, int, int]:
    """Wall time, tokens written and peak RSS (MB) of a real `sftconv convert` process."""
    with tempfile.TemporaryDirectory() as out:
        script = (
            "import resource, subprocess, sys, time; s = time.perf_counter();"
            "subprocess.run(sys.argv[1:], check=True);"
            "print(time.perf_counter() - s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        command = [sys.executable, "-m", "sftconv", "convert", str(corpus), "-o", out, "-q", *extra]
        result = subprocess.run([sys.executable, "-c", script, *command], check=True, capture_output=True, text=True)
        elapsed, rss_kb = result.stdout.split()
        tokens = json.loads((Path(out) / "manifest.json").read_text())["counts"]["tokens"]
    return float(elapsed), tokens, int(rss_kb) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50, help="size of the generated corpus in MB (default 50)")
    parser.add_argument("--input", type=Path, help="an OpenAI-format JSONL corpus to use instead")
    parser.add_argument("--peer-mb", type=float, default=10, help="MB of the corpus the slow peers run on")
    parser.add_argument("--sftconv-args", default="", help="extra convert options, e.g. '--workers 2'")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.input or Path(tmp) / "corpus.jsonl"
        if not args.input:
            write_corpus(corpus, args.mb)
        conversations = load(corpus)
        texts = [m["content"].strip() for c in conversations for m in c]
        text_mb = sum(len(t.encode()) for t in texts) / 1e6
        peer_set, peer_mb = [], 0.0
        for conversation in conversations:
            if peer_mb >= args.peer_mb:
                break
            peer_set.append(conversation)
            peer_mb += sum(len(m["content"].strip().encode()) for m in conversation) / 1e6

        rows = []
        name, limit, tokens = raw_limit(texts)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        rows.append((f"raw tokenizer limit ({name})", limit, text_mb, tokens, None))
        for label, peer in [("HF apply_chat_template + masks", hf_peer), ("Meta ChatFormat", meta_peer)]:
            elapsed, peer_tokens = peer(peer_set)
            rows.append((f"{label} (first {peer_mb:.0f} MB)", elapsed, peer_mb, peer_tokens, None))
        elapsed, written, rss = run_sftconv(corpus, args.sftconv_args.split())
        rows.append((f"sftconv convert {args.sftconv_args}".strip(), elapsed, text_mb, written, rss))

    print(f"corpus: {len(conversations):,} conversations, {text_mb:.1f} MB of message text; "
          f"machine: {os.cpu_count()} CPUs; benchmark process peak RSS {peak} MB")
    print(f"{'path':<58}{'s':>8}{'MB/s':>8}{'Mtok/s':>8}{'RSS MB':>8}{'time/limit':>12}")
    limit_rate = text_mb / limit
    for label, seconds, mb, tokens, rss in rows:
        rate = mb / seconds
        print(f"{label:<58}{seconds:>8.2f}{rate:>8.1f}{tokens / seconds / 1e6:>8.2f}"
              f"{rss if rss is not None else '':>8}{limit_rate / rate:>12.2f}")
    fastest_peer = max(rows[1][2] / rows[1][1], rows[2][2] / rows[2][1])
    print(f"sftconv vs faster peer: {(rows[-1][2] / rows[-1][1]) / fastest_peer:.1f}x")


if __name__ == "__main__":
    main()
