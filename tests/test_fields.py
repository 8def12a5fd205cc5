"""Fields that mean something: used, rejected or counted, never dropped; field flags that name real fields, paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.conversation import UNDESIRABLE_ANSWER, RecordError
from sftconv.shapes.mapping import FieldMapping, UnknownField, lookup
from sftconv.shapes.meaning import (KTO_LABEL, MEDIA_FIELD, MEDIA_PLACEHOLDER, PREFERENCE_RECORD,
                                    PREFERENCE_SIDE_ONLY, meaning_codes)

from .conftest import write_jsonl

CHAT = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


# --- meaningful fields: the table's rules -------------------------------------------------------------------

@pytest.mark.parametrize("record, reason", [
    ({"messages": CHAT, "images": ["a.png"]}, MEDIA_FIELD),
    ({"messages": CHAT, "audio": "clip.wav"}, MEDIA_FIELD),
    ({"messages": CHAT, "videos": {"path": "v.mp4"}}, MEDIA_FIELD),
    ({"conversations": [], "chosen": "a", "rejected": "b"}, PREFERENCE_RECORD),
    ({"messages": CHAT, "label": False}, UNDESIRABLE_ANSWER),
    ({"messages": CHAT, "kto_tag": False}, UNDESIRABLE_ANSWER),
])
def test_a_field_whose_meaning_sft_would_betray_rejects_the_record(record, reason):
    with pytest.raises(RecordError) as caught:
        meaning_codes(record)
    assert caught.value.reason == reason
    name = next(k for k in record if k not in ("messages", "conversations"))
    assert f"'{name}'" in caught.value.detail


@pytest.mark.parametrize("record, read, codes", [
    ({"messages": CHAT}, (), ()),
    ({"messages": CHAT, "images": [], "label": None, "video": ""}, (), ()),  # empty or null: nothing to betray
    ({"messages": CHAT, "label": "positive"}, (), ()),  # a classification label, not KTO's boolean
    ({"messages": CHAT, "label": True}, (), (KTO_LABEL,)),
    ({"chosen": "x", "rejected": "y"}, ("chosen",), (PREFERENCE_SIDE_ONLY,)),
    ({"messages": [{"role": "user", "content": "<image>What is it?"}, CHAT[1]]}, (), (MEDIA_PLACEHOLDER,)),
    ({"messages": CHAT, "label": False, "images": ["a.png"]}, ("label", "images"), ()),  # a mode reading them
])
def test_fields_converted_as_sft_are_counted_by_warning_code(record, read, codes):
    assert meaning_codes(record, read) == codes


def test_kto_false_labels_are_rejected_and_true_ones_counted_in_summary_manifest_and_validate(tmp_path):
    data = write_jsonl(tmp_path / "kto.jsonl", [{"messages": CHAT, "label": True}, {"messages": CHAT, "label": False},
                                               {"messages": CHAT, "label": True}])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out, "--task", "sft")  # auto reads them as KTO samples (test_preference.py)
    assert result.exit_code == 0, result.output
    counts = manifest(out)["counts"]
    assert (counts["written"], counts["rejected_by_reason"], counts["warned_by_code"]) == (
        2, {UNDESIRABLE_ANSWER: 1}, {KTO_LABEL: 2})
    assert "warning: 2 record(s) with a true KTO label" in result.stderr and "(kto_label)" in result.stderr
    assert rejects(out)[0]["line"] == 2
    report = run("validate", data, "--format", "json", "--task", "sft")
    issues = {issue["code"]: issue for issue in json.loads(report.stdout)["issues"]}
    assert issues[UNDESIRABLE_ANSWER]["severity"] == "error" and issues[UNDESIRABLE_ANSWER]["count"] == 1
    assert issues[KTO_LABEL]["severity"] == "warning" and issues[KTO_LABEL]["count"] == 2


def test_a_run_without_such_fields_writes_no_warned_counts(tmp_path):
    data = write_jsonl(tmp_path / "plain.jsonl", [{"messages": CHAT}])
    assert run("convert", data, "-o", tmp_path / "out").exit_code == 0
    assert "warned_by_code" not in manifest(tmp_path / "out")["counts"]


def test_real_kto_data_trains_no_undesired_answer(shared_data, tmp_path):
    out = tmp_path / "out"
    result = run("convert", shared_data / "LLaMA-Factory/kto_en_demo.json", "-o", out, "-q", "--task", "sft")
    assert result.exit_code == 0, result.output
    records = json.loads((shared_data / "LLaMA-Factory/kto_en_demo.json").read_text())
    undesired = sum(record["label"] is False for record in records)
    counts = manifest(out)["counts"]
    assert undesired and counts["rejected_by_reason"] == {UNDESIRABLE_ANSWER: undesired}
    assert counts["written"] + counts["rejected"] == len(records) == counts["read"]


def test_hh_rlhf_chosen_side_is_trained_with_the_other_side_counted(shared_data, tmp_path):
    out = tmp_path / "out"
    result = run("convert", shared_data / "hh-rlhf/harmless-base/test.jsonl.gz", "--transcript-field", "chosen",
                 "-o", out, "-q", "--task", "sft")
    assert result.exit_code == 0, result.output
    counts = manifest(out)["counts"]
    assert counts["warned_by_code"] == {PREFERENCE_SIDE_ONLY: counts["written"]}


def test_images_and_placeholders_do_not_pass_as_plain_text(tmp_path):
    data = write_jsonl(tmp_path / "mm.jsonl", [
        {"messages": [{"role": "user", "content": "<image>Describe it."}, CHAT[1]], "images": ["cat.png"]},
        {"messages": [{"role": "user", "content": "What does <image> mean in HTML?"}, CHAT[1]]},
    ])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out)
    assert result.exit_code == 0, result.output
    counts = manifest(out)["counts"]
    assert counts["rejected_by_reason"] == {MEDIA_FIELD: 1} and counts["warned_by_code"] == {MEDIA_PLACEHOLDER: 1}
    assert "'images' holds 1 item(s)" in rejects(out)[0]["detail"]


# --- field flags name real fields ----------------------------------------------------------------------------

def test_a_mistyped_field_flag_is_a_usage_error_with_the_closest_name(tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT, "id": 1}])
    for command in (["convert", data, "-o", tmp_path / "out"], ["validate", data], ["inspect", data]):
        result = run(*command, "--messages-field", "mesages")
        assert result.exit_code == 2, result.output
        assert ("--messages-field (mapping key 'messages') names 'mesages', which is in no sampled record "
                "(fields seen: messages, id); did you mean 'messages'?") in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_turn_field_flag_is_looked_for_inside_the_turns(tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [{"dialog": [{"speaker": "user", "text": "Hi"}]}])
    result = run("validate", data, "--messages-field", "dialog", "--role-field", "speaker", "--content-field", "txt")
    assert result.exit_code == 2
    assert "names 'txt', which is in no turn of the sampled records (fields seen: speaker, text)" in result.stderr
    assert "did you mean 'text'?" in result.stderr


def test_a_mapping_file_key_naming_no_field_is_a_usage_error(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Why?", "answer": "Because."}])
    (tmp_path / "map.yaml").write_text("prompt: question\ncompletion: anwser\n")
    result = run("convert", data, "-o", tmp_path / "out", "--mapping", tmp_path / "map.yaml")
    assert result.exit_code == 2 and "'anwser'" in result.stderr and "did you mean 'answer'?" in result.stderr


# --- field paths ---------------------------------------------------------------------------------------------

def test_lookup_reaches_nested_fields_and_a_dotted_name_wins():
    assert lookup({"a": {"b": {"c": 1}}}, "a.b.c") == 1
    assert lookup({"a.b": 2, "a": {"b": 3}}, "a.b") == 2
    assert lookup({"a": {"b": None}}, "a.b") is None
    with pytest.raises(UnknownField, match="did you mean 'meta.question'"):
        FieldMapping(prompt="meta.questoin").check_names([{"meta": {"question": "q"}}])


def test_nested_fields_are_reached_by_path_in_every_flag(tmp_path):
    data = write_jsonl(tmp_path / "nested.jsonl", [
        {"meta": {"q": "Why?"}, "out": {"text": "Because."}},
        {"log": {"turns": [{"who": {"name": "user"}, "say": "Hi"}, {"who": {"name": "assistant"}, "say": "Hello"}]}},
    ])
    out = tmp_path / "pc"
    result = run("convert", data, "-o", out, "--shape", "prompt-completion", "--prompt-field", "meta.q",
                 "--completion-field", "out.text")
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["written"] == 1
    out = tmp_path / "chat"
    result = run("convert", data, "-o", out, "--shape", "openai", "--messages-field", "log.turns",
                 "--role-field", "who.name", "--content-field", "say")
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["written"] == 1


# --- messages speak the user's field names, count from 0, and say null ---------------------------------------

def test_reject_details_name_the_users_fields_and_nulls(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"question": None, "answer": "a"}, {"question": "q", "answer": 5},
                                               {"chosen": ["not", "text"]}])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out, "--shape", "prompt-completion", "--prompt-field", "question",
                 "--completion-field", "answer", "--allow-empty")
    assert result.exit_code == 0, result.output
    assert [(r["reason"], r["detail"]) for r in rejects(out)][:2] == [
        ("missing_field", "'question' is null"), ("content_not_string", "'answer' is int, not a string")]
    out = tmp_path / "transcript"
    assert run("convert", data, "-o", out, "--shape", "transcript", "--transcript-field", "chosen",
               "--allow-empty").exit_code == 0
    assert rejects(out)[2]["detail"] == "'chosen' is list, not a string"


def test_turn_fields_are_named_as_the_user_named_them(tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [{"dialog": [{"who": "user", "text": "Hi"},
                                                             {"who": "assistant", "text": None}]}])
    out = tmp_path / "out"
    assert run("convert", data, "-o", out, "--messages-field", "dialog", "--role-field", "who",
               "--content-field", "text", "--allow-empty").exit_code == 0
    assert rejects(out)[0]["detail"] == "dialog[1].text is null, not a string"


def test_turns_are_counted_from_zero_in_every_message(tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                      {"role": "assistant", "content": "c"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None,
                                                         "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                      {"role": "tool", "content": "1"}, {"role": "assistant", "content": "done"}]},
    ])
    out = tmp_path / "out"
    assert run("convert", data, "-o", out, "--allow-empty").exit_code == 0
    assert [r["detail"].split(";")[0] for r in rejects(out)] == [
        "turns 0 and 1 are both user", "turn 1 (assistant) has no content", "turn 1 calls a tool"]


# --- when no shape fits: the flags that would work, chosen when only one layout fits ------------------------

def test_no_shape_fits_proposes_the_flags_for_a_preference_file_read_as_sft(shared_data, tmp_path):
    path = shared_data / "hh-rlhf/harmless-base/test.jsonl.gz"  # auto: HH-RLHF pairs (test_preference.py)
    result = run("convert", path, "-o", tmp_path / "out", "--task", "sft")
    assert result.exit_code == 2
    assert (f"Error: {path}: no record shape fits (fields seen: chosen, rejected); rerun with --shape transcript "
            "--transcript-field chosen (100 of 100 sampled records fit).") in result.stderr
    proposed = run("convert", path, "-o", tmp_path / "out", "--shape", "transcript", "--transcript-field", "chosen",
                   "-q", "--task", "sft")
    assert proposed.exit_code == 0, proposed.output


def test_a_chat_under_other_names_is_read_and_the_summary_says_how(tmp_path):
    data = write_jsonl(tmp_path / "logs.jsonl", [
        {"id": i, "dialog": [{"speaker": "human", "utterance": "Hi", "ts": 1}, {"speaker": "bot", "utterance": "Yo", "ts": 2}]}
        for i in range(3)])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out)
    assert result.exit_code == 0, result.output
    assert ("read with --shape openai --messages-field dialog --role-field speaker --content-field utterance, "
            "the one layout every sampled record fits") in result.stderr
    written = manifest(out)
    assert written["counts"]["written"] == 3 and written["shapes"] == {str(data): "openai"}
    assert written["options"]["mapping"] == {"messages": "dialog", "role": "speaker", "content": "utterance"}
    explicit = tmp_path / "explicit"
    assert run("convert", data, "-o", explicit, "--shape", "openai", "--messages-field", "dialog", "--role-field",
               "speaker", "--content-field", "utterance").exit_code == 0
    assert (explicit / "part-00000-shard-00000.parquet").read_bytes() == (out / "part-00000-shard-00000.parquet").read_bytes()


def test_a_nested_question_answer_pair_is_a_prompt_completion_candidate(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"meta": {"Question": "Why?"}, "Answer": "Because."}] * 2)
    result = run("validate", data)
    assert result.exit_code == 0, result.output
    assert "layout_chosen" in result.stdout
    assert "read with --shape prompt-completion --prompt-field meta.Question --completion-field Answer" in result.stdout
    assert run("validate", data, "--strict").exit_code == 1  # strict: name the fields yourself


def test_two_candidate_layouts_are_proposed_not_chosen(tmp_path):
    data = write_jsonl(tmp_path / "both.jsonl", [
        {"question": "Why?", "answer": "Because.", "log": [{"role": "user", "text": "Hi"}, {"role": "bot", "text": "Yo"}]}])
    result = run("validate", data)
    assert result.exit_code == 2  # validate: no shape fits is bad usage
    assert "rerun with --shape openai --messages-field log --role-field role --content-field text (1 of 1" in result.stderr
    assert "rerun with --shape prompt-completion --prompt-field question --completion-field answer (1 of 1" in result.stderr


# --- Llama 2 era transcripts ---------------------------------------------------------------------------------

LLAMA2 = {
    "<s>Human: What is 2+2? </s><s>Assistant: 4 </s><s>Human: And 3+3?</s><s>Assistant: 6</s>":
        [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?"), ("assistant", "6")],
    "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST] 6 </s>":
        [("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?"),
         ("assistant", "6")],
    "[INST] What is 2+2? [/INST] 4": [("user", "What is 2+2?"), ("assistant", "4")],
}


@pytest.mark.parametrize("text", LLAMA2)
def test_llama2_transcripts_read_as_their_turns(text):
    from sftconv.shapes import TranscriptShape

    assert [(m.role, m.content.strip()) for m in TranscriptShape()({"transcript": text})] == LLAMA2[text]


@pytest.mark.parametrize("text, detail", [
    ("<s>Human: Hi</s> trailing words", "text outside a <s>Human:/Assistant: ...</s> turn at character 16"),
    ("[INST] Hi [/INST] Yo </s> stray", "text outside an [INST] ... [/INST] exchange"),
])
def test_text_outside_llama2_turns_is_a_bad_transcript(text, detail):
    from sftconv.shapes import TranscriptShape

    with pytest.raises(RecordError, match="bad_transcript") as caught:
        TranscriptShape()({"transcript": text})
    assert detail in caught.value.detail


def test_llama2_transcripts_render_as_the_same_chat_in_messages(tmp_path):
    import pyarrow.parquet as pq

    texts = write_jsonl(tmp_path / "llama2.jsonl", [{"text": text} for text in LLAMA2])
    chats = write_jsonl(tmp_path / "chats.jsonl", [{"messages": [{"role": r, "content": c} for r, c in turns]}
                                                   for turns in LLAMA2.values()])
    result = run("convert", texts, "-o", tmp_path / "a", "--transcript-field", "text", "-q")
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "a")["shapes"] == {str(texts): "transcript"}
    assert run("convert", chats, "-o", tmp_path / "b", "-q").exit_code == 0
    read = [pq.read_table(tmp_path / out / "part-00000-shard-00000.parquet").select(["input_ids", "loss_mask"])
            for out in ("a", "b")]
    assert read[0].num_rows == 3 and read[0].equals(read[1])


# --- JSON documents that wrap their records ------------------------------------------------------------------

def test_records_wrapped_in_a_json_document_are_read_with_records_field(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 2, "meta": {"rows": [{"messages": CHAT}, {"messages": CHAT}]},
                                "data": [{"messages": CHAT}, {"messages": []}, {"messages": CHAT}]}))
    out = tmp_path / "out"
    result = run("convert", path, "-o", out, "--records-field", "data", "-q")
    assert result.exit_code == 0, result.output
    written = manifest(out)
    assert (written["counts"]["read"], written["counts"]["written"]) == (3, 2)
    assert written["options"]["records_field"] == "data"
    assert rejects(out)[0]["row"] == 1
    nested = run("convert", path, "-o", tmp_path / "nested", "--records-field", "meta.rows", "-q")
    assert nested.exit_code == 0 and manifest(tmp_path / "nested")["counts"]["written"] == 2


def test_without_records_field_the_message_says_to_use_it(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 2, "data": [{"messages": CHAT}]}))
    result = run("convert", path, "-o", tmp_path / "out")
    assert "if the records are the objects in 'data', rerun with --records-field data" in result.stderr


def test_a_records_field_naming_no_list_is_a_usage_error(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 2, "data": [{"messages": CHAT}]}))
    result = run("convert", path, "-o", tmp_path / "out", "--records-field", "dat")
    assert result.exit_code == 2
    assert (f"{path}: --records-field 'dat' is not in the document (top-level fields: version, data); "
            "did you mean 'data'?") in result.stderr
    result = run("validate", path, "--records-field", "version")
    assert result.exit_code == 2 and "--records-field 'version' is int, not a list of records" in result.stderr


def test_a_preference_record_is_not_trained_as_a_plain_chat(tmp_path):
    """`conversations` + `chosen` + `rejected` (LLaMA-Factory's preference format) fit the sharegpt shape by name."""
    prompt = [{"from": "human", "value": "Pick one."}]
    data = write_jsonl(tmp_path / "dpo.jsonl", [
        {"conversations": prompt, "chosen": {"from": "gpt", "value": "A"}, "rejected": {"from": "gpt", "value": "B"}},
        {"conversations": [*prompt, {"from": "gpt", "value": "A"}]},
    ])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["rejected_by_reason"] == {PREFERENCE_RECORD: 1}
    assert rejects(out)[0]["line"] == 1 and "'chosen' and 'rejected' are a preference pair" in rejects(out)[0]["detail"]


def test_a_llama2_transcripts_marks_are_structure_not_special_text(tmp_path):
    data = write_jsonl(tmp_path / "llama2.jsonl", [{"text": text} for text in LLAMA2] + [
        {"text": "<s>Human: Hi <|im_end|></s><s>Assistant: Yo</s>"}])
    out = tmp_path / "out"
    result = run("convert", data, "-o", out, "--transcript-field", "text", "--special-text", "reject", "-q")
    assert result.exit_code == 0, result.output
    assert manifest(out)["counts"]["rejected_by_reason"] == {"special_text": 1}
    assert rejects(out)[0]["detail"] == "text: <|im_end|> (ChatML (Qwen, Yi, OpenHermes)) at character 13"
    report = json.loads(run("validate", data, "--transcript-field", "text", "--format", "json").stdout)
    assert [(i["code"], i["count"]) for i in report["issues"]] == [("foreign_template_marker", 1)]


def test_a_mistyped_reasoning_field_is_a_usage_error(tmp_path):
    data = write_jsonl(tmp_path / "r1.jsonl", [{"instruction": "2+2?", "output": "4", "thought": "add them"}])
    result = run("convert", data, "-o", tmp_path / "out", "--reasoning-field", "thougth")
    assert result.exit_code == 2, result.output
    assert ("--reasoning-field (mapping key 'reasoning') names 'thougth', which is in no sampled record nor any of "
            "its turns (fields seen: instruction, output, thought); did you mean 'thought'?") in result.stderr
    assert run("convert", data, "-o", tmp_path / "out", "--reasoning-field", "thought", "-q").exit_code == 0
