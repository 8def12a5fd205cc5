"""`sftconv inspect` through the CLI: exact plain renderings, stored shards decoded, picks, tokens and stats."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.inspect.samples import reservoir_picks, sample_positions
from sftconv.inspect.stats import length_histogram, share_histogram
from sftconv.inspect.text import render_text

from .conftest import write_jsonl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "chat_logs.jsonl"
CHAT = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": " 6\n"},
]}
HEADER_LINE = re.compile(r"^=== sample (\d+) · (.+) · ([\d,]+) tokens · ([\d,]+) trained \([\d.]+%\)$", re.M)


def inspect(*args) -> object:
    return CliRunner().invoke(main, ["inspect", *map(str, args)], catch_exceptions=False)


def convert(*args) -> None:
    result = CliRunner().invoke(main, ["convert", *map(str, args), "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def bodies(output: str) -> list[tuple[int, str, str]]:
    """(position, location, text) of each sample in the text view's output."""
    heads = list(HEADER_LINE.finditer(output))
    ends = [h.start() for h in heads[1:]] + [len(output)]
    return [(int(h[1]), h[2], output[h.end() + 1:end].removesuffix("\n").removesuffix("\n"))
            for h, end in zip(heads, ends)]


@pytest.mark.parametrize("policy, expected", [
    ("assistant",
     "=== sample 0 · {path}:1 · 44 tokens · 4 trained (9.1%)\n"
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
     "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
     "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "[[4<|eot_id|>]]<|start_header_id|>user<|end_header_id|>\n\n"
     "And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "[[6<|eot_id|>]]\n"),
    ("last",
     "=== sample 0 · {path}:1 · 44 tokens · 2 trained (4.5%)\n"
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
     "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
     "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
     "And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "[[6<|eot_id|>]]\n"),
    ("all",
     "=== sample 0 · {path}:1 · 44 tokens · 43 trained (97.7%)\n"
     "<|begin_of_text|>[[<|start_header_id|>system<|end_header_id|>\n\n"
     "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
     "What is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
     "And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
     "6<|eot_id|>]]\n"),
])
def test_plain_rendering_per_policy(tmp_path, policy, expected):
    path = write_jsonl(tmp_path / "chat.jsonl", [CHAT])
    result = inspect(path, "--plain", "--train-on", policy)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected.format(path=path)
    assert result.stderr == ""


def test_plain_rendering_follows_the_data_own_weights(tmp_path):
    chat = json.loads(json.dumps(CHAT))
    chat["messages"][2]["weight"] = 0
    chat["messages"][1]["weight"] = 1
    result = inspect(write_jsonl(tmp_path / "chat.jsonl", [chat]), "--plain")
    assert result.stdout.splitlines()[1:] == [
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>", "",
        "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>", "",
        "[[What is 2+2?<|eot_id|>]]<|start_header_id|>assistant<|end_header_id|>", "",
        "4<|eot_id|><|start_header_id|>user<|end_header_id|>", "",
        "And 3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>", "",
        "[[6<|eot_id|>]]",
    ]


def test_colour_view_marks_trained_text_green_and_dims_the_rest(tmp_path, tokenizer):
    from sftconv.inspect.samples import Shown
    from sftconv.conversation import Conversation, Location, Message
    from sftconv.template import Llama3Template

    messages = (Message("user", "Hi"), Message("assistant", "Hello!"))
    sample = Llama3Template(tokenizer).render(Conversation(messages, Location("x.jsonl", line=1)))
    assert render_text(Shown(0, sample), tokenizer, color=True) == (
        "\x1b[1m=== sample 0 · x.jsonl:1 · 14 tokens · 3 trained (21.4%)\x1b[0m\n"
        "\x1b[2m<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n\x1b[0m\x1b[32mHello!<|eot_id|>\x1b[0m")


def expected_plain(record: dict) -> str:
    """The Llama 3 text of a raw record, written out from its JSON: trimmed contents, trained ones in [[ ]]."""
    text = "<|begin_of_text|>"
    for message in record["messages"]:
        body = message["content"].strip() + "<|eot_id|>"
        trained = message.get("weight", int(message["role"] == "assistant")) == 1
        text += f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n" + (f"[[{body}]]" if trained else body)
    return text


def test_stored_shards_decode_to_the_raw_conversations(tmp_path):
    extra = [{"messages": [{"role": "user", "content": "  Typed <|eot_id|> and [[brackets]] here \n"},
                           {"role": "assistant", "content": "\tOK 🎌 東京\n\n"}]}]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(EXAMPLES.read_bytes())
    write_jsonl(raw / "b.jsonl", extra)
    convert(raw, "-o", tmp_path / "out", "--shard-rows", 4)
    rejected = {json.loads(line)["line"] for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()}
    records = [json.loads(line) for number, line in enumerate(EXAMPLES.read_text().splitlines(), 1)
               if number not in rejected] + extra
    assert len(records) == 12

    result = inspect(tmp_path / "out", "--plain", "--head", 100)
    assert result.exit_code == 0 and result.stderr == ""
    shown = bodies(result.stdout)
    assert [position for position, _, _ in shown] == list(range(12))
    # Each input is a unit with its own shards: the first's 11 samples in shards of 4, 4 and 3, then the second's 1.
    places = [(0, i // 4, i % 4) for i in range(11)] + [(1, 0, 0)]
    assert [location for _, location, _ in shown] == [
        f"{tmp_path / 'out' / f'part-0000{unit}-shard-0000{shard}.parquet'}[row {row}]" for unit, shard, row in places]
    for (_, _, text), record in zip(shown, records):
        assert text == expected_plain(record)


def test_raw_and_stored_show_the_same_samples_for_an_index_or_a_seed(tmp_path):
    convert(EXAMPLES, "-o", tmp_path / "out", "--shard-rows", 3)
    for args in (["--index", 7, "--index", 2], ["--sample", 4, "--seed", 7], ["--sample", 4, "--seed", 8]):
        raw, stored = inspect(EXAMPLES, "--plain", *args), inspect(tmp_path / "out", "--plain", *args)
        assert raw.exit_code == stored.exit_code == 0
        raw_shown, stored_shown = bodies(raw.stdout), bodies(stored.stdout)
        assert len(raw_shown) == (2 if args[0] == "--index" else 4)
        assert [(p, t) for p, _, t in raw_shown] == [(p, t) for p, _, t in stored_shown]
    assert [p for p, _, _ in bodies(inspect(EXAMPLES, "--index", 7, "--index", 2).stdout)] == [7, 2]
    picks = [[p for p, _, _ in bodies(inspect(EXAMPLES, "--sample", 4, "--seed", s).stdout)] for s in (7, 8)]
    assert picks[0] != picks[1] and all(p == sorted(p) for p in picks)


def test_reservoir_is_the_same_streamed_or_counted_and_uniform():
    for total in (0, 1, 3, 5, 50, 1000):
        for k in (1, 3, 10):
            kept: dict[int, int] = {}
            for position, slot in reservoir_picks(k, seed=3):
                if position >= total:
                    break
                kept[slot] = position
            assert sample_positions(total, k, seed=3) == sorted(kept.values())
            assert len(kept) == min(k, total)
    counts = np.zeros(20)
    for seed in range(4000):
        counts[sample_positions(20, 5, seed)] += 1
    assert abs(counts - 1000).max() < 120  # each of 20 positions is kept in 5/20 of 4000 draws


def test_index_past_the_end_and_rejected_records_are_explained(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(EXAMPLES), "--index", "11"])
    assert result.exit_code == 2
    assert ("Invalid value for '--index': there is no sample 11: the input holds 11 samples (positions 0 to 10)"
            in result.stderr)
    result = inspect(EXAMPLES, "--head", 20)
    assert len(bodies(result.stdout)) == 11
    assert result.stderr == ("note: 3 rejected records were skipped (positions count samples only); the first: "
                             f"{EXAMPLES}:12: no_assistant_turn: no assistant turn, so nothing to learn from\n")


def test_stored_output_notes_options_that_do_not_apply(tmp_path):
    convert(EXAMPLES, "-o", tmp_path / "out")
    result = inspect(tmp_path / "out", "--train-on", "last", "--index", 0)
    assert result.exit_code == 0 and "[[Check three things" in result.stdout
    assert result.stderr == "note: ignored for stored samples, which keep the ids and masks convert wrote: --train-on\n"


def test_a_shard_on_its_own_and_a_wrong_tokenizer(tmp_path):
    convert(EXAMPLES, "-o", tmp_path / "out", "--shard-rows", 5)
    shard = tmp_path / "out" / "part-00000-shard-00001.parquet"
    result = inspect(shard, "--index", 0, "--plain")
    assert result.exit_code == 0 and bodies(result.stdout)[0][1] == f"{shard}[row 0]"
    assert bodies(result.stdout)[0][2] == bodies(inspect(EXAMPLES, "--index", 5).stdout)[0][2]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest["tokenizer"]["fingerprint"] = "0" * 64
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'out'} was written with the tokenizer llama-models:llama3/tokenizer.model " \
           "(fingerprint 000000000000...), but llama-models:llama3/tokenizer.model is now a different tokenizer" \
           in result.stderr


def test_token_table(tmp_path):
    from .references import meta_llama3_ids

    messages = [{"role": "user", "content": "Say <|eot_id|>"}, {"role": "assistant", "content": "🎌"}]
    path = write_jsonl(tmp_path / "t.jsonl", [{"messages": messages}])
    result = inspect(path, "--tokens")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"=== sample 0 · {path}:1 · 21 tokens · 4 trained (19.0%)"
    assert lines[1] == "pos      id   label  text"
    assert lines[2:7] == ["  0  128000    -100  <|begin_of_text|>", "  1  128006    -100  <|start_header_id|>",
                          '  2     882    -100  "user"', "  3  128007    -100  <|end_header_id|>",
                          '  4     271    -100  "\\n\\n"']
    rows = [line.split(None, 3) for line in lines[2:]]
    ids = [int(row[1]) for row in rows]
    assert ids == meta_llama3_ids(messages) and len(rows) == 21
    assert [int(row[2]) for row in rows] == [-100] * 17 + ids[17:]  # the emoji's tokens and <|eot_id|>
    typed = [row[3] for row in rows[5:12]]  # "Say <|eot_id|>" as ordinary text: every piece quoted
    assert all(t.startswith('"') for t in typed) and "".join(t[1:-1] for t in typed) == "Say <|eot_id|>"
    emoji = [row[3] for row in rows[17:20]]  # one character split over three tokens, shown byte by byte
    assert all(re.fullmatch(r'"(\\x[0-9a-f]{2})+"', t) for t in emoji)
    assert bytes.fromhex("".join(t[1:-1] for t in emoji).replace("\\x", "")).decode() == "🎌"
    assert rows[-1][3] == "<|eot_id|>"


def test_stats_are_the_same_from_raw_files_and_from_their_output(tmp_path):
    convert(EXAMPLES, "-o", tmp_path / "out", "--shard-rows", 4)
    raw, stored = inspect(EXAMPLES, "--stats"), inspect(tmp_path / "out", "--stats")
    assert raw.exit_code == stored.exit_code == 0
    assert raw.stdout.startswith(f"{EXAMPLES}: 11 samples · 897 tokens · 509 trained (56.7%) · "
                                 "3 records rejected (not counted)\n\n")
    assert stored.stdout.startswith(f"{tmp_path / 'out'}: 11 samples · 897 tokens · 509 trained (56.7%) · "
                                    "3 records rejected (not counted)\n\n")
    assert raw.stdout.split("\n", 1)[1] == stored.stdout.split("\n", 1)[1]
    counts = [int(line.rsplit(" ", 1)[1]) for line in raw.stdout.splitlines() if line.startswith("  ")]
    assert len(counts) > 10 and sum(counts) == 22  # each histogram counts all 11 samples


def test_histogram_bins():
    lengths = np.array([35, 40, 63, 99, 100, 249])
    histogram = length_histogram(lengths)
    assert histogram.labels == ["0-49", "50-99", "100-149", "150-199", "200-249"]
    assert histogram.counts == [2, 2, 1, 0, 1]
    assert histogram.summary == "min 35 · median 63 · mean 97.7 · p95 249 · max 249"
    tail = length_histogram(np.array([100 + i % 7 for i in range(999)] + [20_000]))
    assert tail.labels == ["100", "101", "102", "103", "104", "105", "106", ">=107"]
    assert tail.counts == [143, 143, 143, 143, 143, 142, 142, 1]
    share = share_histogram(np.array([10, 10, 10, 3]), np.array([0, 1, 10, 2]))
    assert share.counts == [1, 1, 0, 0, 0, 0, 1, 0, 0, 1]


def test_plot_svg_and_png(tmp_path):
    from PIL import Image

    svg, png = tmp_path / "stats.svg", tmp_path / "stats.png"
    result = inspect(EXAMPLES, "--plot", svg)
    assert result.exit_code == 0 and result.stdout.startswith(f"{EXAMPLES}: 11 samples")
    assert result.stderr.startswith(f"wrote the histograms to {svg}\n")
    root = ET.parse(svg).getroot()
    namespace = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{namespace}rect") if r.get("fill") == "#2da44e"]
    texts = [t.text for t in root.iter(f"{namespace}text")]
    assert len(bars) == 4 + 7  # the non-empty bins of both histograms
    assert "tokens per sample" in texts and "50-99" in texts and "90-100%" in texts
    assert inspect(EXAMPLES, "--stats", "--plot", png).exit_code == 0
    image = Image.open(png).convert("RGB")
    assert image.size[0] > 1000 and (45, 164, 78) in {color for _, color in image.getcolors(1 << 16)}


@pytest.mark.parametrize("args, message", [
    (["--index", "1", "--sample", "2"], "choose samples with --index or with --sample, not both"),
    (["--stats", "--index", "1"], "--stats covers every sample; drop --index and --sample"),
    (["--tokens", "--html", "x.html"], "--tokens and --html are different views; choose one"),
    (["--plot", "x.pdf"], "Invalid value for '--plot': x.pdf must end in .svg or .png"),
    (["--train-on", "users"], "Invalid value for '--train-on'"),
])
def test_bad_usage_exits_2(args, message):
    result = CliRunner().invoke(main, ["inspect", str(EXAMPLES), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_mixed_inputs_and_missing_files_are_usage_errors(tmp_path):
    convert(EXAMPLES, "-o", tmp_path / "out")
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "out"), str(EXAMPLES)])
    assert result.exit_code == 2 and "cannot mix convert outputs with raw files" in result.stderr
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file or folder" in result.stderr


def test_empty_input(tmp_path):
    result = inspect(write_jsonl(tmp_path / "empty.jsonl", []))
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == f"no samples in {tmp_path}/empty.jsonl\n"
    result = inspect(tmp_path / "empty.jsonl", "--stats")
    assert result.stdout == f"{tmp_path}/empty.jsonl: 0 samples · 0 tokens · 0 trained\n"


def test_inspect_has_help():
    result = CliRunner().invoke(main, ["inspect", "--help"])
    assert result.exit_code == 0 and "Example:\n      sftconv inspect examples/chat_logs.jsonl --index 3\n" in result.output
