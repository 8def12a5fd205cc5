"""Tokenizers as users have them: Meta's file, a tokenizer.json, a model folder, a model in the local hub cache.

Equivalent files are one tokenizer (one fingerprint, byte-identical shards); a fine-tune's renamed and
added tokens keep their ids and stay plain text; a tokenizer that is not Llama 3's is refused, saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sftconv.cli import main
from sftconv.tokenizer import Tokenizer
from sftconv.tokenizer_backends import derive_merges
from sftconv.tokenizer_sources import LLAMA3_MERGES

from .conftest import write_jsonl
from .references import meta_llama3_ids
from .tokenizer_files import llama3_json, model_folder, renamed_and_added, write_json

CHATS = [
    {"messages": [{"role": "system", "content": "Answer in one line."},
                  {"role": "user", "content": f"What is {i} + {i}? <|think|> <tool_call> <|eot_id|>"},
                  {"role": "assistant", "content": f" {2 * i}, 日本語 🎌\r\n\r\n 👩‍👩‍👧 e\u0301 <|my_sep|>"}]}
    for i in range(20)
]
RENAMED = {128002: "<|think|>", 128255: "<|my_sep|>"}  # a reserved token, and the one the template's batches use
ADDED = ["<tool_call>", "<|added_special|>"]


@pytest.fixture(scope="module")
def document() -> dict:
    return llama3_json()


@pytest.fixture(scope="module")
def files(tmp_path_factory, document) -> dict[str, Path]:
    """Meta's Llama 3 tokenizer as a tokenizer.json, as a model folder, and a fine-tune's variant of it."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {
        "json": write_json(root / "plain" / "tokenizer.json", document),
        "folder": model_folder(root / "folder", document),
        "variant": model_folder(root / "variant", renamed_and_added(document, RENAMED, ADDED)),
    }


def run(*args) -> object:
    return CliRunner().invoke(main, [*map(str, args)])


def test_one_fingerprint_for_equivalent_files(tokenizer, files):
    from_json, from_folder = Tokenizer(files["json"]), Tokenizer(files["folder"])
    assert tokenizer.fingerprint == from_json.fingerprint == from_folder.fingerprint
    assert tokenizer.sha256 != from_json.sha256 == from_folder.sha256
    assert from_json.special_tokens == tokenizer.special_tokens and from_json.vocab_size == 128_256
    text = "Hello, world! 数字 123456789 <|eot_id|>\r\n\r\n" + "a" * 3000
    assert from_json.encode(text) == tokenizer.encode(text)
    assert Tokenizer(files["variant"]).fingerprint != tokenizer.fingerprint


def test_shards_are_byte_identical_whichever_file(tmp_path, files, shared_data):
    inputs = [shared_data / "xtuner" / "mllm_sft_text_example_data.jsonl", write_jsonl(tmp_path / "chats.jsonl", CHATS)]
    outputs = {}
    for name, given in (("meta", None), ("json", files["json"]), ("folder", files["folder"])):
        out = tmp_path / name
        result = run("convert", *inputs, "-o", out, "-q", *(("--tokenizer", given) if given else ()))
        assert result.exit_code == 0, result.output
        outputs[name] = out
    shards = {name: sorted(p.name for p in out.glob("*.parquet")) for name, out in outputs.items()}
    assert shards["meta"] and shards["meta"] == shards["json"] == shards["folder"]
    for shard in shards["meta"]:
        data = (outputs["meta"] / shard).read_bytes()
        assert data == (outputs["json"] / shard).read_bytes() == (outputs["folder"] / shard).read_bytes()
    records = {name: json.loads((out / "manifest.json").read_text())["tokenizer"] for name, out in outputs.items()}
    assert records["meta"]["fingerprint"] == records["json"]["fingerprint"] == records["folder"]["fingerprint"]
    assert records["json"]["source"] == "tokenizer.json" and records["meta"]["source"] == "tiktoken"
    assert records["folder"]["name"] == str(files["folder"])


def test_renamed_and_added_tokens(tmp_path, files):
    variant = Tokenizer(files["variant"])
    assert variant.special_tokens["<|think|>"] == 128_002 and "<|reserved_special_token_0|>" not in variant.special_tokens
    assert variant.special_tokens["<tool_call>"] == 128_256 and variant.special_tokens["<|added_special|>"] == 128_257
    assert variant.vocab_size == 128_258
    text = "<|think|> <tool_call> <|added_special|> <|my_sep|>"
    assert variant.encode(text) == Tokenizer().encode(text) and max(variant.encode(text)) < 128_000
    assert variant.decode([128_002, 128_257]) == "<|think|><|added_special|>"

    source = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    result = run("convert", source, "-o", tmp_path / "out", "--tokenizer", files["variant"])
    assert result.exit_code == 0, result.output
    assert "20 record(s) hold special-token text" in result.output  # counted as with Meta's file
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tokenizer"]["vocab_size"] == 128_258
    assert manifest["tokenizer"]["control_ids"]["<|eot_id|>"] == 128_009
    import pyarrow.parquet as pq

    rows = pq.read_table(next((tmp_path / "out").glob("*.parquet"))).to_pylist()
    assert [row["input_ids"] for row in rows] == [meta_llama3_ids(strip(chat["messages"])) for chat in CHATS]
    result = run("validate", tmp_path / "out")  # checks the control tokens at the ids the manifest records
    assert result.exit_code == 0, result.output


def strip(messages: list[dict]) -> list[dict]:
    return [{**m, "content": m["content"].strip()} for m in messages]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex=r"\s+|\w+"),
     r"its pre-tokenizer pattern is '\\\\s\+\|\\\\w\+', Llama 3's is"),
    (lambda d: d["model"].update(type="WordPiece"), "its model is WordPiece, Llama 3's is byte-level BPE"),
    (lambda d: d["model"]["vocab"].update({"Ġthe": 259, "Ġt": 279}), r"rank 259 is b' the', Llama 3's is b' t'"),
    (lambda d: d["model"].update(merges=d["model"]["merges"][:-1]), "its merges are not the ones"),
    (lambda d: d.update(normalizer={"type": "NFC"}), "it normalizes text"),
])
def test_not_llama3_is_refused_before_any_record_is_read(tmp_path, document, edit, message):
    changed = json.loads(json.dumps(document))
    edit(changed)
    path = write_json(tmp_path / "tokenizer.json", changed)
    with pytest.raises(ValueError, match="not Llama 3's tokenizer: " + message):
        Tokenizer(path)
    unreadable = tmp_path / "broken.jsonl"
    unreadable.write_bytes(b"\xff not json\n")
    result = run("convert", unreadable, "-o", tmp_path / "out", "--tokenizer", path)
    assert result.exit_code == 1 and "Error: cannot load tokenizer: not Llama 3's tokenizer" in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_control_token_is_named(tmp_path, document):
    renamed = write_json(tmp_path / "t" / "tokenizer.json", renamed_and_added(document, {128010: "<|tool|>"}, []))
    source = write_jsonl(tmp_path / "c.jsonl", CHATS[:1])
    assert run("convert", source, "-o", tmp_path / "a", "-q", "--tokenizer", renamed).exit_code == 0
    result = run("convert", source, "-o", tmp_path / "b", "--tokenizer", renamed, "--template", "llama3.1")
    assert result.exit_code == 1
    assert f"the tokenizer {renamed} has no special token <|python_tag|>, which the llama3.1 template needs" \
           in result.output


def test_model_name_in_the_local_hub_cache(tmp_path, monkeypatch, document):
    snapshot = tmp_path / "hub" / "models--acme--llama3-ft" / "snapshots" / "abc123"
    model_folder(snapshot, document)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert Tokenizer("acme/llama3-ft").fingerprint == Tokenizer().fingerprint
    result = run("convert", write_jsonl(tmp_path / "c.jsonl", CHATS[:1]), "-o", tmp_path / "out",
                 "--tokenizer", "acme/other")
    assert result.exit_code == 2
    assert "sftconv never downloads: fetch it with `huggingface-cli download acme/other" in result.output


def test_chat_template_of_a_model_folder(tmp_path, files, document):
    source = write_jsonl(tmp_path / "c.jsonl", CHATS[:1])
    result = run("convert", source, "-o", tmp_path / "a", "--tokenizer", files["folder"])
    assert result.exit_code == 0 and "renders" not in result.output
    result = run("convert", source, "-o", tmp_path / "b", "--tokenizer", files["folder"], "--template", "llama3.1")
    assert result.exit_code == 0
    assert f"{files['folder']}'s chat_template renders like --template llama3, not llama3.1" in result.output
    chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    other = model_folder(tmp_path / "chatml", document, chat_template=chatml)
    result = run("convert", source, "-o", tmp_path / "c", "--tokenizer", other)
    assert result.exit_code == 0 and "renders a probe conversation unlike sftconv's llama3 and llama3.1" in result.output


def test_inspect_uses_the_recorded_tokenizer(tmp_path, files):
    source = write_jsonl(tmp_path / "c.jsonl", CHATS[:2])
    assert run("convert", source, "-o", tmp_path / "out", "-q", "--tokenizer", files["folder"]).exit_code == 0
    same = run("inspect", tmp_path / "out", "--index", 0, "--plain")  # the folder, as recorded
    meta = run("inspect", tmp_path / "out", "--index", 0, "--plain", "--tokenizer", files["json"])
    assert same.exit_code == meta.exit_code == 0 and same.output == meta.output  # the same fingerprint
    other = run("inspect", tmp_path / "out", "--index", 0, "--plain", "--tokenizer", files["variant"])
    assert other.exit_code == 0
    assert f"note: showing {tmp_path / 'out'} with the tokenizer it was written with, {files['folder']}: " \
           f"--tokenizer {files['variant']} is a different tokenizer" in other.output


def test_the_ranks_of_a_tokenizer_json_are_cached(tmp_path, monkeypatch, files):
    monkeypatch.setenv("SFTCONV_CACHE_DIR", str(tmp_path / "cache"))
    first = Tokenizer(files["json"])
    cached = tmp_path / "cache" / "ranks" / f"{first.sha256}.tiktoken"
    assert cached.is_file()
    assert Tokenizer(files["json"]).encode("cached ranks") == first.encode("cached ranks")


def test_merges_are_derived_as_hugging_face_derives_them(tokenizer, document):
    """The fast backend's tokenizer.json is built from the ranks with the merges Hugging Face's converter makes."""
    merges = derive_merges(tokenizer.source.ranks)
    assert len(merges) == LLAMA3_MERGES
    assert [list(m) for m in merges] == [m.split(" ", 1) if isinstance(m, str) else m for m in document["model"]["merges"]]
