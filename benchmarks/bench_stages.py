"""Where the CPU time of a convert goes: each stage of the worker's `encode_chunk` (the per-record path, and the batch
path's split of plain records) and the main process's Parquet writing, timed one after another in one process, beside the raw tokenizer limit's own work.
The tokenizer calls are timed with each backend (tiktoken, the reference, and fastokens).

Every stage runs `--repeat` times, interleaved with the others, and its least CPU time counts
(`time.process_time`), so a busy machine disturbs the figures less than it does wall times. Run from
the repository root:

    python benchmarks/bench_stages.py --mb 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_convert import join_texts  # noqa: E402
from corpus import write_corpus  # noqa: E402

from sftconv.pipeline import SourceOptions, open_source  # noqa: E402
from sftconv.readers.jsonl import JsonlReader  # noqa: E402
from sftconv.template.llama3 import MARKERS, SEPARATOR  # noqa: E402
from sftconv.tokenizer import Tokenizer  # noqa: E402
from sftconv.validate.text import first_marker  # noqa: E402
from sftconv.writers import WRITERS  # noqa: E402
from sftconv.writers.shards import Columns  # noqa: E402



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10, help="size of the generated corpus in MB (default 10)")
    parser.add_argument("--input", type=Path, help="an OpenAI-format JSONL corpus to use instead")
    parser.add_argument("--repeat", type=int, default=9, help="runs of each stage; the least counts (default 9)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.input or Path(tmp) / "corpus.jsonl"
        if not args.input:
            write_corpus(corpus, args.mb)
        source = open_source([str(corpus)], SourceOptions(tokenizer_backend="tiktoken"))
        fast = Tokenizer(backend="fastokens")
        fast.encode("loaded and self-checked before any timing")
        shape, template = source.shape, source.template
        encoding = source.tokenizer._encoding
        chunks = list(JsonlReader().file_chunks(corpus))
        records = [list(chunk.records()) for chunk in chunks]
        conversations = [[shape(record) for record in chunk] for chunk in records]
        contents = [m.content.strip() for chunk in conversations for c in chunk for m in c.messages]
        joined = join_texts(contents)
        chunk_contents = [[m.content.strip() for c in chunk for m in c.messages] for chunk in conversations]
        marked = []  # the texts render_samples hands the tokenizer, caught on their way
        encode_marked = source.tokenizer.encode_marked

        def catch(text, markers):
            marked.append(text)
            return encode_marked(text, markers)

        source.tokenizer.encode_marked = catch
        samples = [template.render_samples(chunk)[0] for chunk in conversations]  # per chunk, as the workers send them
        source.tokenizer.encode_marked = encode_marked
        marked_ids = [encode_marked(text, MARKERS) for text in marked]
        fast_template = template.__class__(fast, template.policy, reasoning=template.reasoning)
        flat_ids = [fast.encode_flat(texts) for texts in chunk_contents]  # what the fastokens layout's calls return

        def write() -> None:
            with tempfile.TemporaryDirectory() as out:
                writer = WRITERS["parquet"](Path(out), shard_rows=100_000, shard_bytes=None, packed=False)
                for chunk_samples in samples:
                    writer.write_columns(Columns.from_samples(chunk_samples))
                writer.close()

        def render_without_tokenizer() -> None:
            replayed = iter(marked_ids)  # the ids of each call, in the order of the calls
            source.tokenizer.encode_marked = lambda text, markers: next(replayed)
            try:
                for chunk in conversations:
                    template.render_samples(chunk)
            finally:
                source.tokenizer.encode_marked = encode_marked

        def render_flat_without_tokenizer() -> None:
            replayed = iter(flat_ids)
            fast.encode_flat = lambda texts: next(replayed)
            try:
                for chunk in conversations:
                    fast_template.render_samples(chunk)
            finally:
                del fast.encode_flat

        stages = {
            "the raw tokenizer limit's own work (contents joined, encode_to_numpy)":
                lambda: [encoding.encode_to_numpy(t, allowed_special={SEPARATOR}, disallowed_special=()) for t in joined],
            "sftconv's tokenizer calls, tiktoken backend (the marked text of the same samples)":
                lambda: [encode_marked(text, MARKERS) for text in marked],
            "sftconv's tokenizer calls, fastokens backend, marked text (the old layout; spot check included)":
                lambda: [fast.encode_marked(text, MARKERS) for text in marked],
            "sftconv's tokenizer calls, fastokens backend, contents as one list (`encode_flat`, the new layout)":
                lambda: [fast.encode_flat(texts) for texts in chunk_contents],
            "fastokens alone on the contents (encode_batch_flat, one call per chunk of samples)":
                lambda: [fast.backend.fast.encode_batch_flat(texts) for texts in chunk_contents],
            "JSON Lines parsing (msgspec) and the Record/Location objects":
                lambda: [list(chunk.records()) for chunk in chunks],
            "special-text check (`first_marker` on every record)":
                lambda: [first_marker(record.data) for chunk in records for record in chunk],
            "record shapes and turn rules (`InputShape`: OpenAIShape, TurnRules, checked_texts)":
                lambda: [[shape(record) for record in chunk] for chunk in records],
            "template layout for the marked text (tiktoken; tokenizer calls left out)":
                render_without_tokenizer,
            "template layout for a list of contents (fastokens: `_tokenize_flat`, tokenizer calls left out)":
                render_flat_without_tokenizer,
            "Parquet writing (main process: Columns, pyarrow write_table)": write,
            "batch path: plain records decoded and checked (`PlainRecords.split`, tokenizer and layout left out)":
                lambda: [shape.plain(chunk, template) for chunk in chunks],
        }
        best: dict[str, float] = {}
        load_before = os.getloadavg()
        for _ in range(args.repeat):
            for name, stage in stages.items():
                start = time.process_time()
                stage()
                best[name] = min(best.get(name, float("inf")), time.process_time() - start)
        load_after = os.getloadavg()
        corpus_mb = corpus.stat().st_size / 1e6

    limit = next(iter(best.values()))
    print(f"corpus: {corpus_mb:.1f} MB, {sum(map(len, records)):,} records, {len(contents):,} messages, "
          f"{sum(len(t.encode()) for t in contents) / 1e6:.2f} MB of message text, {sum(len(s.input_ids) for s in samples):,} tokens")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; least CPU s of {args.repeat} runs")
    print()
    print("| stage | CPU s | vs the limit |")
    print("|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.3f} | {seconds / limit:.2f} |")
    names = list(best)
    layouts = {names[1]: names[8], names[2]: names[8], names[3]: names[9]}  # each call's template layout
    others = sum(best[name] for name in names[5:11] if name not in layouts.values())
    for backend, name in (("tiktoken backend", names[1]), ("fastokens backend, marked text", names[2]),
                          ("fastokens backend, contents as one list", names[3])):
        total = others + best[name] + best[layouts[name]]
        print(f"| **sftconv in all, {backend} (its tokenizer calls, their layout, every other stage)** | **{total:.3f}** "
              f"| **{total / limit:.2f}** |")
    batch = best[names[11]] + best[names[3]] + best[names[9]] + best[names[10]]
    print(f"| **the batch path, fastokens backend (plain records split, encode_flat, its layout, Parquet writing)** "
          f"| **{batch:.3f}** | **{batch / limit:.2f}** |")
    print(f"\ntokenizer calls: fastokens takes {best[names[3]] / best[names[1]]:.2f} of tiktoken's CPU time; "
          f"the stages other than tokenizing and layout take {others:.3f} s")


if __name__ == "__main__":
    main()
