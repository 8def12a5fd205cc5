"""Preference mode: pairs (DPO) and labelled answers (KTO) in every shape, to exact token rows that add up.

Ids are compared with the real references (tests/references.py) over the prompt plus each answer, and
`prompt_length` with Hugging Face's `apply_chat_template(prompt, add_generation_prompt=True)`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.schema import validator
from sftconv.template import IGNORE_INDEX

from .conftest import write_jsonl
from .references import hf_llama3_ids, hf_tokenizer, meta_llama3_ids
from .test_exactness import random_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "preference"
# example file -> (shape detected, pairs written)
EXAMPLE_SHAPES = {
    "ultrafeedback.jsonl": ("pair", 3),
    "trl_conversational.jsonl": ("pair", 3),
    "llamafactory_dpo.json": ("sharegpt-pair", 2),
    "llamafactory_v1_dpo.jsonl": ("pair", 2),
    "stack_exchange.jsonl": ("pair", 2),
    "kto_sharegpt.json": ("kto", 2),
}


def convert(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args), "-q", "-j", "1"], catch_exceptions=False)


def rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def rejects(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "rejects.jsonl").read_text().splitlines()]


def opening_ids(prompt: list[dict]) -> list[int]:
    """The reference prompt with the assistant's header after it, as a trainer generates from."""
    return list(hf_tokenizer().apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                                   return_dict=False))


def assert_row_matches(row: dict, prompt: list[dict], chosen: list[dict], rejected: list[dict] | None) -> None:
    """Both sides equal both references, start with the reference prompt's ids and train only their answers."""
    length = row["prompt_length"]
    assert length == len(opening_ids(prompt))
    sides = [("chosen_", chosen)] + ([("rejected_", rejected)] if rejected is not None else [])
    for prefix, answer in sides if rejected is not None else [("", chosen)]:
        ids, mask, labels = row[f"{prefix}input_ids"], row[f"{prefix}loss_mask"], row[f"{prefix}labels"]
        messages = prompt + answer
        assert ids == hf_llama3_ids(messages)
        assert ids == meta_llama3_ids([{**m, "content": m["content"].strip()} for m in messages])
        assert ids[:length] == opening_ids(prompt)
        assert not any(mask[:length]) and all(mask[length:])  # one answer turn: its content and <|eot_id|>
        assert labels == [t if m else IGNORE_INDEX for t, m in zip(ids, mask)]
    if rejected is not None:
        assert row["chosen_input_ids"][:length] == row["rejected_input_ids"][:length]
        assert row["chosen_input_ids"][length:] != row["rejected_input_ids"][length:]
        assert (row["chosen_length"], row["rejected_length"]) == (len(row["chosen_input_ids"]),
                                                                  len(row["rejected_input_ids"]))


@pytest.mark.parametrize("name", sorted(EXAMPLE_SHAPES))
def test_every_example_shape_is_detected_and_converted(tmp_path, name):
    shape, written = EXAMPLE_SHAPES[name]
    result = convert(EXAMPLES / name, "-o", tmp_path)
    assert result.exit_code == 0, result.output
    found = manifest(tmp_path)
    assert found["shapes"] == {str(EXAMPLES / name): shape} and found["task"] == "preference"
    assert found["layout"] == ("kto" if shape == "kto" else "pairs")
    assert (found["counts"]["read"], found["counts"]["written"], found["counts"]["rejected"]) == (written, written, 0)
    assert not list(validator("manifest").iter_errors(found))
    for row in rows(tmp_path):
        length = row["prompt_length"]
        for side in ("chosen_", "rejected_") if shape != "kto" else ("",):
            assert not any(row[f"{side}loss_mask"][:length]) and row[f"{side}loss_mask"][-1] == 1


def test_example_rows_equal_the_references(tmp_path):
    """Each shape's rows, against the references over the prompt and answers the file holds."""
    assert convert(EXAMPLES / "ultrafeedback.jsonl", "-o", tmp_path / "uf").exit_code == 0
    for row, line in zip(rows(tmp_path / "uf"), (EXAMPLES / "ultrafeedback.jsonl").read_text().splitlines()):
        record = json.loads(line)
        assert_row_matches(row, record["chosen"][:1], record["chosen"][1:], record["rejected"][1:])
    assert convert(EXAMPLES / "llamafactory_dpo.json", "-o", tmp_path / "lf").exit_code == 0
    roles = {"human": "user", "gpt": "assistant"}
    for row, record in zip(rows(tmp_path / "lf"), json.loads((EXAMPLES / "llamafactory_dpo.json").read_text())):
        prompt = [{"role": roles[t["from"]], "content": t["value"]} for t in record["conversations"]]
        assert_row_matches(row, prompt, [{"role": "assistant", "content": record["chosen"]["value"]}],
                           [{"role": "assistant", "content": record["rejected"]["value"]}])
    assert convert(EXAMPLES / "stack_exchange.jsonl", "-o", tmp_path / "se").exit_code == 0
    for row, line in zip(rows(tmp_path / "se"), (EXAMPLES / "stack_exchange.jsonl").read_text().splitlines()):
        record = json.loads(line)
        assert_row_matches(row, [{"role": "user", "content": record["question"]}],
                           [{"role": "assistant", "content": record["response_j"]}],
                           [{"role": "assistant", "content": record["response_k"]}])


def adversarial_pair(rng: random.Random) -> dict:
    """A random multi-turn prompt and two answers that often share a long start and differ at the very end."""
    prompt = []
    if rng.random() < 0.4:
        prompt.append({"role": "system", "content": random_text(rng)})
    for _ in range(rng.randint(0, 2)):
        prompt += [{"role": "user", "content": random_text(rng)}, {"role": "assistant", "content": random_text(rng)}]
    prompt.append({"role": "user", "content": random_text(rng)})
    common = random_text(rng) if rng.random() < 0.5 else ""
    chosen, rejected = common + random_text(rng), common + random_text(rng)
    if rng.random() < 0.2:  # differ in one character, possibly inside a multi-byte sequence's token
        chosen, rejected = common + "👨‍👩‍👧 done.", common + "👨‍👩‍👦 done."
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def test_random_adversarial_pairs_equal_the_references(tmp_path):
    rng = random.Random(16)
    records = [adversarial_pair(rng) for _ in range(150)]
    path = write_jsonl(tmp_path / "pairs.jsonl", records)
    assert convert(path, "-o", tmp_path / "out", "--task", "preference").exit_code == 0
    kept = [r for r in records if r["chosen"][0]["content"].strip() != r["rejected"][0]["content"].strip()]
    written = rows(tmp_path / "out")
    assert len(written) == len(kept) == manifest(tmp_path / "out")["counts"]["written"]
    for row, record in zip(written, kept):
        assert_row_matches(row, record["prompt"], record["chosen"], record["rejected"])


def test_special_token_text_in_an_answer_stays_text(tmp_path):
    """Meta's reference keeps `<|eot_id|>` typed in content as text, as sftconv does (HF would not)."""
    record = {"prompt": "Say the end token.", "chosen": "It is written <|eot_id|>.", "rejected": "<|eot_id|>"}
    assert convert(write_jsonl(tmp_path / "p.jsonl", [record]), "-o", tmp_path / "out").exit_code == 0
    row = rows(tmp_path / "out")[0]
    prompt = [{"role": "user", "content": record["prompt"]}]
    for side in ("chosen", "rejected"):
        assert row[f"{side}_input_ids"] == meta_llama3_ids(prompt + [{"role": "assistant", "content": record[side]}])
    assert row["rejected_input_ids"].count(128009) == 2  # the prompt's and its own end of turn; the text is text


def test_kto_rows_keep_their_label_and_an_sft_run_rejects_undesirable_answers(tmp_path):
    records = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"A{i}"}],
                "label": i % 3 != 0} for i in range(9)]
    path = write_jsonl(tmp_path / "kto.jsonl", records)
    assert convert(path, "-o", tmp_path / "pref").exit_code == 0
    written = rows(tmp_path / "pref")
    assert [r["label"] for r in written] == [r["label"] for r in records]
    for row, record in zip(written, records):
        assert row["input_ids"] == hf_llama3_ids(record["messages"])
        assert row["prompt_length"] == len(opening_ids(record["messages"][:1]))
        assert not any(row["loss_mask"][:row["prompt_length"]]) and all(row["loss_mask"][row["prompt_length"]:])
    sft = convert(path, "-o", tmp_path / "sft", "--task", "sft")
    assert sft.exit_code == 0
    counts = manifest(tmp_path / "sft")["counts"]
    assert (counts["written"], counts["rejected_by_reason"]) == (6, {"undesirable_answer": 3})
    assert {r["line"] for r in rejects(tmp_path / "sft")} == {1, 4, 7}
    other = write_jsonl(tmp_path / "classes.jsonl", [{**records[0], "label": "spam"}])  # no KTO label: ignored
    assert convert(other, "-o", tmp_path / "classes").exit_code == 0
    assert manifest(tmp_path / "classes")["counts"]["written"] == 1


def test_rules_reject_with_reason_codes_and_counts_add_up(tmp_path):
    user, answer = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}
    records = [
        {"prompt": "Q", "chosen": "same", "rejected": "  same "},  # identical after the template's trim
        {"chosen": [user, answer], "rejected": [user]},  # one side is the other's start
        {"chosen": [user, answer], "rejected": [{"role": "user", "content": "Other"}, answer]},  # prompts differ
        {"prompt": "Q", "chosen": "good", "rejected": " "},  # an empty answer
        {"prompt": [{"role": "system", "content": "S"}], "chosen": "a", "rejected": "b"},  # no user turn
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},  # fine
        "not json",
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    result = convert(path, "-o", tmp_path / "out", "--task", "preference")
    assert result.exit_code == 0, result.output
    counts = manifest(tmp_path / "out")["counts"]
    assert counts["rejected_by_reason"] == {"identical_answers": 1, "prompts_differ": 2, "empty_answer": 1,
                                            "no_prompt": 1, "invalid_json": 1}
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"] == 7
    kto = write_jsonl(tmp_path / "kto.jsonl", [{"messages": [user, answer], "label": "yes"},
                                               {"messages": [user, answer], "label": True}])
    assert convert(kto, "-o", tmp_path / "kto", "--shape", "kto").exit_code == 0
    assert manifest(tmp_path / "kto")["counts"]["rejected_by_reason"] == {"bad_label": 1}


def test_length_limit_holds_both_sides_truncating_the_prompt_history_first(tmp_path, tokenizer):
    long = "word " * 60
    history = [{"role": "user", "content": long}, {"role": "assistant", "content": long}] * 2
    records = [{"prompt": history + [{"role": "user", "content": "Last question?"}],
                "chosen": "Short answer.", "rejected": "Another short answer."},
               {"prompt": "Q", "chosen": long * 3, "rejected": "no"},  # an answer alone is over the limit
               {"prompt": "Q", "chosen": "yes", "rejected": "no"}]
    path = write_jsonl(tmp_path / "long.jsonl", records)
    assert convert(path, "-o", tmp_path / "drop", "--max-seq-len", "100").exit_code == 0
    found = manifest(tmp_path / "drop")
    assert (found["counts"]["written"], found["counts"]["dropped_by_reason"]) == (1, {"too_long": 2})
    assert convert(path, "-o", tmp_path / "cut", "--max-seq-len", "100", "--overflow", "truncate").exit_code == 0
    found = manifest(tmp_path / "cut")
    assert (found["counts"]["written"], found["counts"]["dropped_by_reason"]) == (2, {"too_long": 1})
    lost = len(tokenizer.encode((long * 3).strip())) + 1 + len(tokenizer.encode("no")) + 1  # the dropped answers
    assert (found["lengths"]["truncated"], found["lengths"]["dropped"], found["lengths"]["trained_tokens_lost"]) == (
        1, 1, lost)
    cut = rows(tmp_path / "cut")[0]
    assert max(cut["chosen_length"], cut["rejected_length"]) <= 100
    prompt = [{"role": "user", "content": "Last question?"}]  # every earlier exchange cut, at turn boundaries
    assert_row_matches(cut, prompt, [{"role": "assistant", "content": "Short answer."}],
                       [{"role": "assistant", "content": "Another short answer."}])


def test_field_flags_and_mapping_name_preference_fields(tmp_path):
    records = [{"ask": "Capital of Italy?", "good": "Rome.", "bad": "Milan."}]
    path = write_jsonl(tmp_path / "custom.jsonl", records)
    flags = convert(path, "-o", tmp_path / "flags", "--prompt-field", "ask", "--chosen-field", "good",
                    "--rejected-field", "bad")
    assert flags.exit_code == 0, flags.output
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("prompt: ask\nchosen: good\nrejected: bad\n")
    assert convert(path, "-o", tmp_path / "mapped", "--mapping", mapping).exit_code == 0
    assert rows(tmp_path / "flags") == rows(tmp_path / "mapped")
    assert manifest(tmp_path / "flags")["shapes"] == {str(path): "pair"}
    kto = write_jsonl(tmp_path / "kto.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                             {"role": "assistant", "content": "Yo"}], "ok": False}])
    assert convert(kto, "-o", tmp_path / "kto", "--label-field", "ok").exit_code == 0
    assert [r["label"] for r in rows(tmp_path / "kto")] == [False]


def test_hf_and_jsonl_formats_hold_the_parquet_rows(tmp_path):
    path = EXAMPLES / "llamafactory_dpo.json"
    assert convert(path, "-o", tmp_path / "parquet").exit_code == 0
    assert convert(path, "-o", tmp_path / "jsonl", "--format", "jsonl").exit_code == 0
    assert convert(path, "-o", tmp_path / "hf", "--format", "hf").exit_code == 0
    from datasets import load_from_disk

    expected = rows(tmp_path / "parquet")
    jsonl = [json.loads(line) for p in sorted((tmp_path / "jsonl").glob("*.jsonl")) for line in p.read_text().splitlines()]
    assert jsonl == expected
    assert load_from_disk(str(tmp_path / "hf")).to_list() == expected


@pytest.mark.parametrize("options, message", [
    (["--format", "megatron"], "--format megatron (its indexed datasets have no pair layout"),
    (["--pack", "512"], "--pack (a pair's sides are one row each"),
    (["--train-on", "all"], "--train-on all (the prompt is never trained"),
])
def test_options_preference_rows_cannot_have_are_usage_errors(tmp_path, options, message):
    result = CliRunner().invoke(main, ["convert", str(EXAMPLES / "stack_exchange.jsonl"), "-o", str(tmp_path), *options])
    assert result.exit_code == 2 and message in result.output and "--task sft" in result.output


def test_inputs_of_different_tasks_are_refused_together(tmp_path):
    sft = write_jsonl(tmp_path / "sft.jsonl", [{"messages": [{"role": "user", "content": "a"},
                                                             {"role": "assistant", "content": "b"}]}])
    result = CliRunner().invoke(main, ["convert", str(sft), str(EXAMPLES / "stack_exchange.jsonl"), "-o",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2 and "convert them apart" in result.output


def test_units_workers_and_resume_give_the_bytes_of_one_clean_run(tmp_path):
    rng = random.Random(3)
    source = write_jsonl(tmp_path / "pairs.jsonl", [adversarial_pair(rng) for _ in range(400)] + ["not json"])
    args = ["--unit-size", "20KB", "--shard-rows", "9"]
    assert convert(source, "-o", tmp_path / "clean", *args).exit_code == 0
    assert convert(source, "-o", tmp_path / "workers", *args, "-j", "2").exit_code == 0
    out = tmp_path / "out"
    blocker = out / "part-00003-shard-00001.parquet"
    blocker.mkdir(parents=True)  # unit 3 fails after its first shard
    assert convert(source, "-o", out, *args, "--resume").exit_code == 1
    blocker.rmdir()
    assert convert(source, "-o", out, *args, "--resume").exit_code == 0

    def files(folder):
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

    assert files(out) == files(tmp_path / "clean") == files(tmp_path / "workers")
    counts = manifest(out)["counts"]
    assert len(manifest(out)["shards"]) > 4
    assert counts["read"] == 401 == counts["written"] + counts["rejected"] + counts["dropped"]


def test_shared_kto_demo_converts_as_kto(tmp_path, shared_data):
    path = shared_data / "LLaMA-Factory" / "kto_en_demo.json"
    assert convert(path, "-o", tmp_path).exit_code == 0
    found = manifest(tmp_path)
    assert (found["shapes"], found["task"], found["layout"]) == ({str(path): "kto"}, "preference", "kto")
    assert (found["counts"]["read"], found["counts"]["written"], found["counts"]["rejected"]) == (300, 300, 0)
    written = rows(tmp_path)
    assert sum(r["label"] for r in written) == 150
    records = json.loads(path.read_text())
    for row, record in zip(written[:40], records):
        assert row["label"] is record["label"]
        assert row["input_ids"] == meta_llama3_ids([{**m, "content": m["content"].strip()} for m in record["messages"]])
        assert row["prompt_length"] == len(opening_ids(record["messages"][:-1]))
        assert not any(row["loss_mask"][:row["prompt_length"]]) and all(row["loss_mask"][row["prompt_length"]:])


def test_shared_hh_rlhf_converts_as_pairs(tmp_path, shared_data):
    """9 pairs have two Human turns in a row on a side; 4 end on an empty Assistant turn."""
    path = shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
    assert convert(path, "-o", tmp_path).exit_code == 0
    found = manifest(tmp_path)
    assert found["shapes"] == {str(path): "transcript-pair"}
    counts = found["counts"]
    assert (counts["read"], counts["written"], counts["rejected_by_reason"]) == (
        2312, 2299, {"consecutive_same_role": 9, "empty_answer": 4})
    assert counts["read"] == counts["written"] + counts["rejected"] + counts["dropped"]
    for row in rows(tmp_path):
        length = row["prompt_length"]
        assert row["chosen_input_ids"][:length] == row["rejected_input_ids"][:length]
        assert row["chosen_input_ids"][length:] != row["rejected_input_ids"][length:]
        assert not any(row["chosen_loss_mask"][:length]) and not any(row["rejected_loss_mask"][:length])
        assert row["chosen_loss_mask"][-1] == row["rejected_loss_mask"][-1] == 1


def validate(*args):
    result = CliRunner().invoke(main, ["validate", *map(str, args), "-q", "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def codes(report: dict) -> dict[str, int]:
    return {issue["code"]: issue["count"] for issue in report["issues"]}


def test_validate_checks_raw_preference_files_as_convert_reads_them(tmp_path):
    records = [{"prompt": "Q", "chosen": "good", "rejected": "good"},
               {"prompt": "Q", "chosen": "a " * 50, "rejected": "b"},  # a side of 62 tokens
               {"prompt": "Q", "chosen": "a " * 15, "rejected": "b " * 15}]  # two sides of 27: each fits
    exit_code, report = validate(write_jsonl(tmp_path / "p.jsonl", records), "--max-seq-len", "40")
    assert exit_code == 1 and report["kind"] == "raw"
    assert codes(report) == {"identical_answers": 1, "too_long": 1}
    assert [issue["examples"][0]["line"] for issue in report["issues"] if issue["code"] == "too_long"] == [2]
    exit_code, report = validate(EXAMPLES / "llamafactory_dpo.json")
    assert exit_code == 0 and report["stats"]["samples"] == 2


@pytest.mark.parametrize("output_format, suffix", [("parquet", "parquet"), ("hf", "arrow"), ("jsonl", "jsonl")])
def test_validate_checks_preference_output_folders(tmp_path, output_format, suffix):
    out = tmp_path / "out"
    assert convert(EXAMPLES / "trl_conversational.jsonl", "-o", out, "--format", output_format).exit_code == 0
    exit_code, report = validate(out)
    assert exit_code == 0 and report["stats"]["rows"] == 3 and not report["issues"]
    exit_code, report = validate(out, "--max-seq-len", "30")
    assert exit_code == 1 and codes(report) == {"too_long": 2}
    if output_format != "jsonl":
        return
    shard = next(out.glob(f"part-*.{suffix}"))
    rows = [json.loads(line) for line in shard.read_text().splitlines()]
    rows[0]["rejected_loss_mask"][2], rows[0]["rejected_labels"][2] = 1, rows[0]["rejected_input_ids"][2]
    rows[1]["rejected_input_ids"][5] = rows[1]["rejected_labels"][5] = 1  # inside the prompt, untrained
    rows[2]["rejected_input_ids"], rows[2]["rejected_labels"], rows[2]["rejected_loss_mask"] = (
        rows[2]["chosen_input_ids"], rows[2]["chosen_labels"], rows[2]["chosen_loss_mask"])
    rows[2]["rejected_length"] = rows[2]["chosen_length"]
    shard.write_text("".join(json.dumps(row) + "\n" for row in rows))
    exit_code, report = validate(out)
    found = codes(report)
    assert exit_code == 1
    assert {found.get("trained_prompt"), found.get("prompt_mismatch"), found.get("same_answers")} == {1}
    assert {issue["examples"][0]["row"] for issue in report["issues"]
            if issue["code"] in ("trained_prompt", "prompt_mismatch", "same_answers")} == {0, 1, 2}


def test_inspect_shows_the_prompt_once_and_both_answers_marked(tmp_path):
    path = EXAMPLES / "llamafactory_dpo.json"
    raw = CliRunner().invoke(main, ["inspect", str(path), "--index", "1", "--plain"])
    assert raw.exit_code == 0, raw.output
    assert raw.stdout.count("Is 91 prime?") == 1 and raw.stdout.count("Let me check.") == 1
    assert "--- chosen · 12 tokens · 12 trained ---\n[[No: 91 = 7 x 13.<|eot_id|>]]" in raw.stdout
    assert "--- rejected · 8 tokens · 8 trained ---\n[[Yes, 91 is prime.<|eot_id|>]]" in raw.stdout
    assert "[[" not in raw.stdout.split("--- chosen")[0]  # the prompt is never trained
    assert convert(path, "-o", tmp_path / "out", "--format", "hf").exit_code == 0
    stored = CliRunner().invoke(main, ["inspect", str(tmp_path / "out"), "--index", "1", "--plain"])
    assert stored.exit_code == 0
    assert stored.stdout.split("\n", 1)[1] == raw.stdout.split("\n", 1)[1]  # all but the header line's origin
    kto = CliRunner().invoke(main, ["inspect", str(EXAMPLES / "kto_sharegpt.json"), "--index", "1", "--plain"])
    assert "--- answer, label false · " in kto.stdout and "[[Books are boring, watch a video.<|eot_id|>]]" in kto.stdout


def test_llama31_pairs_render_each_side_with_the_sft_template(tmp_path, tokenizer):
    """Tool calls in an answer, tools defined: each side is the SFT template's rendering of prompt + answer."""
    from sftconv.conversation import Conversation, Location, Message, ToolCall
    from sftconv.template import Llama31Template

    tools = [{"type": "function", "function": {"name": "weather", "description": "Weather of a city",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    record = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}],
              "chosen": [{"role": "assistant", "content": None,
                          "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]}],
              "rejected": "I cannot know that.", "tools": tools}
    path = write_jsonl(tmp_path / "tools.jsonl", [record])
    assert convert(path, "-o", tmp_path / "out", "--template", "llama3.1").exit_code == 0
    row = rows(tmp_path / "out")[0]
    template = Llama31Template(tokenizer)
    prompt = (Message("system", "Be brief.", train=False), Message("user", "Weather in Paris?", train=False))
    answers = {"chosen": Message("assistant", "", tool_calls=(ToolCall("weather", {"city": "Paris"}),)),
               "rejected": Message("assistant", "I cannot know that.")}
    for side, answer in answers.items():
        expected = template.render(Conversation((*prompt, answer), Location("x"), tuple(tools)))
        assert (row[f"{side}_input_ids"], row[f"{side}_loss_mask"]) == (expected.input_ids, expected.loss_mask)
    opening = template.render(Conversation((*prompt, Message("assistant", "", train=True)), Location("x"), tuple(tools)))
    assert row["prompt_length"] == len(opening.input_ids) - 1
    length = row["prompt_length"]
    assert row["chosen_input_ids"][:length] == row["rejected_input_ids"][:length]
    assert tokenizer.decode(row["chosen_input_ids"][length - 4:length]) == "<|start_header_id|>assistant<|end_header_id|>\n\n"


def test_llama2_transcript_pairs_are_not_special_text(tmp_path):
    """Their `<s>`, `[INST]` marks are structure the transcript shapes read, not text the model sees."""
    records = [{"chosen": f"<s>[INST] Question {i}? [/INST] Good answer. </s>",
                "rejected": f"<s>[INST] Question {i}? [/INST] Bad answer. </s>"} for i in range(3)]
    out = tmp_path / "out"
    result = convert(write_jsonl(tmp_path / "p.jsonl", records), "-o", out, "--shape", "transcript-pair",
                     "--special-text", "reject")
    assert result.exit_code == 0, result.output
    found = manifest(out)
    assert found["shapes"] == {str(tmp_path / "p.jsonl"): "transcript-pair"}
    assert (found["counts"]["written"], found["counts"]["rejected"]) == (3, 0)
