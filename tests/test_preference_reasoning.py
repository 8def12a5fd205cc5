"""Preference pairs with reasoning traces: traces read in every form, rendered as in SFT, counted once per side."""

from __future__ import annotations

from sftconv.tokenizer import Tokenizer

from .conftest import write_jsonl
from .references import hf_llama3_ids
from .test_preference import convert, manifest, opening_ids, rows

PROMPT = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Let me see.", "reasoning_content": "easy"},
          {"role": "user", "content": "And 3+3?"}]
RECORDS = [
    {"prompt": PROMPT,
     "chosen": [{"role": "assistant", "content": "6", "reasoning_content": f"three and three, case {i}"}],
     "rejected": [{"role": "assistant", "content": f"<think>guess {i}</think>7"}]}
    for i in range(5)]


def inline(message: dict) -> dict:
    """A message with its trace written into its content, as the README says a trace renders."""
    trace = message.get("reasoning_content")
    return {"role": message["role"], "content": message["content"] if trace is None else
            f"<think>\n{trace.strip()}\n</think>\n\n{message['content'].strip()}"}


def test_pairs_render_traces_from_fields_and_inline_blocks_as_the_references_render_the_whole_text(tmp_path):
    out = tmp_path / "out"
    assert convert(write_jsonl(tmp_path / "p.jsonl", RECORDS), "-o", out).exit_code == 0
    prompt = [inline(m) for m in PROMPT]
    for i, row in enumerate(rows(out)):
        chosen = [inline(RECORDS[i]["chosen"][0])]
        rejected = [{"role": "assistant", "content": f"<think>\nguess {i}\n</think>\n\n7"}]
        assert row["chosen_input_ids"] == hf_llama3_ids(prompt + chosen)
        assert row["rejected_input_ids"] == hf_llama3_ids(prompt + rejected)
        assert row["prompt_length"] == len(opening_ids(prompt))


def test_trace_counts_count_the_blocks_in_the_rows_once(tmp_path):
    out = tmp_path / "out"
    assert convert(write_jsonl(tmp_path / "p.jsonl", RECORDS), "-o", out).exit_code == 0
    tokenizer = Tokenizer()
    blocks = sum(tokenizer.decode(row[f"{side}_input_ids"]).count("<think>")
                 for row in rows(out) for side in ("chosen", "rejected"))
    counts = manifest(out)["counts"]["reasoning"]
    assert blocks == 4 * len(RECORDS) and counts["turns"] == blocks and counts["dropped"] == 0


def test_keep_reasoning_none_drops_every_trace_of_a_pair_and_counts_it(tmp_path):
    out = tmp_path / "out"
    assert convert(write_jsonl(tmp_path / "p.jsonl", RECORDS), "-o", out, "--keep-reasoning", "none").exit_code == 0
    tokenizer = Tokenizer()
    assert not any("<think>" in tokenizer.decode(row[f"{side}_input_ids"])
                   for row in rows(out) for side in ("chosen", "rejected"))
    assert manifest(out)["counts"]["reasoning"]["dropped"] == 4 * len(RECORDS)


def test_empty_reasoning_blocks_stay_in_the_answers_and_the_prompt_ends_at_the_answer_header(tmp_path):
    records = [{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}]
    out = tmp_path / "out"
    assert convert(write_jsonl(tmp_path / "p.jsonl", records), "-o", out, "--empty-reasoning").exit_code == 0
    (row,) = rows(out)
    prompt = [{"role": "user", "content": "Hi"}]
    assert row["prompt_length"] == len(opening_ids(prompt))
    for side, answer in (("chosen", "Hello!"), ("rejected", "Go away.")):
        expected = hf_llama3_ids(prompt + [{"role": "assistant", "content": f"<think>\n\n</think>\n\n{answer}"}])
        assert row[f"{side}_input_ids"] == expected
