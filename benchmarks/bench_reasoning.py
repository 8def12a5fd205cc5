"""What a reasoning trace costs the template: the same conversations rendered with their traces, and with the
same text as plain answers, side by side in one process.

A conversation with a trace is rendered message by message (its mask changes inside a content), the
rest in one marked text; this prints both CPU times (the least of `--repeat` interleaved runs,
`time.process_time`) and their ratio. Run from the repository root:

    python benchmarks/bench_reasoning.py --records 20000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from corpus import paragraph, record  # noqa: E402

from sftconv.conversation import Conversation, Location, Message  # noqa: E402
from sftconv.template import Llama3Template  # noqa: E402
from sftconv.tokenizer import Tokenizer  # noqa: E402


def conversations(count: int, seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """The same chats twice: each assistant turn with a trace, and with the trace's text as part of its answer."""
    rng = random.Random(seed)
    traced, plain = [], []
    for index in range(count):
        messages = record(rng)["messages"]
        traces = [paragraph(rng, rng.randint(2, 12)) if m["role"] == "assistant" else None for m in messages]
        location = Location("bench", line=index + 1)
        traced.append(Conversation(tuple(Message(m["role"], m["content"], reasoning=t)
                                         for m, t in zip(messages, traces)), location))
        plain.append(Conversation(tuple(Message(m["role"], m["content"] if t is None else f"{t}\n\n{m['content']}")
                                        for m, t in zip(messages, traces)), location))
    return traced, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    template = Llama3Template(Tokenizer())
    traced, plain = conversations(args.records, args.seed)
    best = {"plain answers (one marked text)": float("inf"), "with traces (message by message)": float("inf")}
    tokens = {}
    for _ in range(args.repeat):
        for name, chats in zip(best, (plain, traced)):
            start = time.process_time()
            samples, _ = template.render_samples(chats)
            best[name] = min(best[name], time.process_time() - start)
            tokens[name] = int(samples.lengths.sum())
    for name, seconds in best.items():
        print(f"{name:<36} {seconds:7.2f} s CPU  {tokens[name] / seconds / 1e6:6.2f} M tokens/s")
    times = list(best.values())
    print(f"{'traced / plain':<36} {times[1] / times[0]:7.2f}x")


if __name__ == "__main__":
    main()
