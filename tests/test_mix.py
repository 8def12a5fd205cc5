"""Mixes: recipes, per-source caches, the blend's shares, order, packing, formats, tracing and checks."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
import s3fs
import yaml
from click.testing import CliRunner

from sftconv import pipeline
from sftconv.cli import main
from sftconv.conversation import Location
from sftconv.mix import MixError, RecipeError, make_mix, parse_recipe
from sftconv.mix import cache as cache_module
from sftconv.mix.blend import read_caches
from sftconv.mix.cache import build_cache, cache_folder
from sftconv.mix.recipe import option_keys, typed
from sftconv.mix.trace import record_location
from sftconv.pipeline import ConvertOptions
from sftconv.schema import validator
from sftconv.tokenizer import Tokenizer

from .conftest import SHARED_DATA

# Five sources in four shapes, one of each share (and `samples` past the source's size).
RECIPE = {
    "seed": 11,
    "defaults": {"train_on": "assistant"},
    "sources": [
        {"name": "cookbook", "inputs": "openai-cookbook/toy_chat_fine_tuning.jsonl", "repeat": 3},
        {"name": "fastchat", "inputs": ["FastChat/dummy_conversation.json"], "fraction": 0.25,
         "system": "You are a helpful assistant."},
        {"name": "alpaca", "inputs": "LLaMA-Factory/alpaca_en_demo.json", "samples": 300, "train_on": "all"},
        {"name": "guardrail", "inputs": "mistral_llm_sft_guardrail/train.parquet", "trained_tokens": "20k"},
        {"name": "codegen", "inputs": "GPTeacher/codegen-instruct.json", "samples": 5000},
    ],
}
AVAILABLE = {"cookbook": 4, "fastchat": 500, "alpaca": 999, "guardrail": 3186, "codegen": 4535}


def recipe_with(**changes):
    """RECIPE with some sources' keys replaced: changes={name: {key: value}}."""
    data = json.loads(json.dumps(RECIPE))
    for source in data["sources"]:
        source.update(changes.get(source["name"], {}))
    return parse_recipe(data, base=SHARED_DATA)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The recipe mixed once: (manifest, caches, output folder, cache root)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared sample data is not here ({SHARED_DATA})")
    root = tmp_path_factory.mktemp("mix")
    manifest, caches = make_mix(recipe_with(), str(root / "out"), cache=root / "cache")
    return manifest, caches, root / "out", root / "cache"


def output_rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("part-*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_each_share_takes_exactly_what_it_asks(built):
    manifest, caches, out, _ = built
    entries = {e["name"]: e for e in manifest["mix"]["sources"]}
    assert {name: e["samples_available"] for name, e in entries.items()} == AVAILABLE
    taken = {name: e["samples_taken"] for name, e in entries.items()}
    assert taken["cookbook"] == 12 and entries["cookbook"]["repeat_factor"] == 3.0  # repeat 3 of 4
    assert taken["fastchat"] == 125  # a quarter of 500
    assert taken["alpaca"] == 300
    assert taken["codegen"] == 5000  # past its 4,535: one whole pass, then 465 more
    # trained_tokens: the fewest samples (in the source's drawn order) whose trained tokens reach 20,000
    rows = output_rows(out)
    guardrail = [r for r in rows if r["source"] == "guardrail"]
    trained = [sum(r["loss_mask"]) for r in guardrail]
    assert len(guardrail) == taken["guardrail"]
    assert sum(trained) >= 20_000 > sum(trained) - max(trained)
    assert Counter(r["source"] for r in rows) == taken
    codegen_rows = Counter(r["source_row"] for r in rows if r["source"] == "codegen")
    assert len(codegen_rows) == 4535 and sorted(Counter(codegen_rows.values()).items()) == [(1, 4070), (2, 465)]
    assert any("codegen: samples 5,000 is more than its 4,535" in w for w in manifest["mix"]["warnings"])


def test_counts_and_token_shares_add_up(built):
    manifest, _, out, _ = built
    rows = output_rows(out)
    entries = manifest["mix"]["sources"]
    for entry in entries:
        mine = [r for r in rows if r["source"] == entry["name"]]
        assert entry["tokens"] == sum(len(r["input_ids"]) for r in mine)
        assert entry["trained_tokens"] == sum(sum(r["loss_mask"]) for r in mine)
    total = sum(e["trained_tokens"] for e in entries)
    assert total == manifest["counts"]["trained_tokens"] == manifest["mix"]["trained_tokens"]
    assert sum(e["samples_taken"] for e in entries) == manifest["counts"]["written"] == len(rows)
    assert sum(e["tokens"] for e in entries) == manifest["counts"]["tokens"]
    assert sum(e["trained_share"] for e in entries) == pytest.approx(1, abs=1e-5)
    for entry in entries:
        assert entry["trained_share"] == pytest.approx(entry["trained_tokens"] / total, abs=1e-6)


def test_rows_trace_back_to_their_cache_rows_and_records(built):
    manifest, caches, out, _ = built
    samples = {c.spec.name: read_caches([c])[0] for c in caches}
    for row in output_rows(out)[:200]:
        cache = samples[row["source"]]
        start, stop = cache.offsets[row["source_row"]], cache.offsets[row["source_row"] + 1]
        assert row["input_ids"] == cache.input_ids[start:stop].tolist()
    cookbook = next(e for e in manifest["mix"]["sources"] if e["name"] == "cookbook")
    path = str(SHARED_DATA / "openai-cookbook/toy_chat_fine_tuning.jsonl")
    # line 4 is rejected (assistant_before_user), so the cache's rows are lines 1, 2, 3 and 5
    assert [record_location(cookbook, r) for r in range(4)] == [Location(path, line=n) for n in (1, 2, 3, 5)]


def test_the_same_recipe_gives_the_same_bytes(built, tmp_path):
    manifest, _, out, cache = built
    again, caches = make_mix(recipe_with(), str(tmp_path / "again"), cache=cache)
    assert not any(c.built for c in caches)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_changing_a_weight_remixes_without_the_tokenizer(built, tmp_path, monkeypatch):
    manifest, _, out, cache = built

    def refuse(*args, **kwargs):
        raise AssertionError("the re-mix tokenized")

    monkeypatch.setattr(Tokenizer, "__init__", refuse)
    monkeypatch.setattr(Tokenizer, "encode", refuse)
    monkeypatch.setattr(cache_module, "convert", refuse)
    again, caches = make_mix(recipe_with(fastchat={"fraction": 0.5}), str(tmp_path / "remix"), cache=cache)
    assert not any(c.built for c in caches)
    before, after = output_rows(out), output_rows(tmp_path / "remix")
    picked = {name: [Counter(r["source_row"] for r in rows if r["source"] == name) for rows in (before, after)]
              for name in AVAILABLE}
    for name in AVAILABLE.keys() - {"fastchat"}:
        assert picked[name][0] == picked[name][1]  # the other sources give the very same rows
    old, new = picked["fastchat"]
    assert sum(new.values()) == 250 and set(old) < set(new)  # a larger fraction only adds rows


def test_a_changed_seed_or_pack_remixes_from_the_same_caches(built, tmp_path, monkeypatch):
    manifest, _, out, cache = built
    monkeypatch.setattr(cache_module, "convert", lambda *a, **k: pytest.fail("the re-mix converted"))
    data = json.loads(json.dumps(RECIPE))
    data.update(seed=12, pack=1024, pack_window=64)
    packed, _ = make_mix(parse_recipe(data, base=SHARED_DATA), str(tmp_path / "packed"), cache=cache)
    assert packed["packing"]["seq_len"] == 1024 and packed["packing"]["rows"] < packed["counts"]["written"]
    for row in output_rows(tmp_path / "packed"):
        assert row["length"] <= 1024
        assert len(row["source"]) == len(row["source_row"]) == len(row["seq_lens"])
    entries = {e["name"]: e for e in packed["mix"]["sources"]}
    for entry in entries.values():  # samples longer than a row are not available, and counted
        assert entry["samples_available"] + entry["too_long_for_pack"] == AVAILABLE[entry["name"]]
    assert sum(e["too_long_for_pack"] for e in entries.values()) > 0
    assert entries["fastchat"]["samples_taken"] == int(0.25 * entries["fastchat"]["samples_available"] + 0.5)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "packed"), "-q"])
    assert result.exit_code == 0, result.output
    first = output_rows(tmp_path / "packed")[0]
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "packed"), "--index", "1", "--plain"]).output
    assert f"[row 0, sample 1] from {first['source'][1]} row {first['source_row'][1]}" in shown


def test_edits_invalidate_exactly_the_caches_they_affect(tmp_path):
    for name in ("a", "b"):
        chat = [{"role": "user", "content": f"hi {name}"}, {"role": "assistant", "content": "hello"}]
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"messages": chat}) + "\n")
    data = {"sources": [{"name": "a", "inputs": "a.jsonl"}, {"name": "b", "inputs": "b.jsonl"}]}
    root = tmp_path / "cache"

    def folders(recipe: dict) -> list[Path]:
        return [cache_folder(root, spec) for spec in parse_recipe(recipe, base=tmp_path).sources]

    first = folders(data)
    assert folders(json.loads(json.dumps(data))) == first
    make_mix(parse_recipe(data, base=tmp_path), str(tmp_path / "one"), cache=root)
    with open(tmp_path / "a.jsonl", "a") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": "more"},
                                                         {"role": "assistant", "content": "yes"}]}) + "\n")
    edited = folders(data)
    assert edited[0] != first[0] and edited[1] == first[1]
    _, caches = make_mix(parse_recipe(data, base=tmp_path), str(tmp_path / "two"), cache=root)
    assert [c.built for c in caches] == [True, False]
    data["sources"][1]["system"] = "Be brief."
    optioned = folders(data)
    assert optioned[0] == edited[0] and optioned[1] != edited[1]
    data["sources"][0]["fraction"] = 0.5  # a share is not an option of the cache
    assert folders(data) == optioned
    data["defaults"] = {"train_on": "last"}
    assert all(new != old for new, old in zip(folders(data), optioned))


def test_an_interrupted_cache_build_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    lines = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
             for i in range(50)]
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    spec = parse_recipe({"sources": [{"name": "chat", "inputs": "chat.jsonl", "unit_size": 500}]},
                        base=tmp_path).sources[0]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "finish_run", killed)
        with pytest.raises(KeyboardInterrupt):
            build_cache(spec, tmp_path / "cache")
    folder = cache_folder(tmp_path / "cache", spec)
    assert folder.is_dir() and not (folder / "manifest.json").exists()  # not taken for a finished cache
    resumed = build_cache(spec, tmp_path / "cache")
    assert resumed.built and resumed.folder == folder
    clean = build_cache(spec, tmp_path / "clean")
    assert [p.name for p in sorted(folder.iterdir())] == [p.name for p in sorted(clean.folder.iterdir())]
    for path in sorted(clean.folder.glob("part-*")):
        assert (folder / path.name).read_bytes() == path.read_bytes()


def test_outputs_in_every_format_carry_the_source(built, tmp_path):
    _, _, _, cache = built
    from datasets import load_from_disk

    small = {**RECIPE, "sources": RECIPE["sources"][:2]}
    for fmt in ("jsonl", "hf"):
        manifest, _ = make_mix(parse_recipe({**small, "format": fmt}, base=SHARED_DATA), str(tmp_path / fmt),
                               cache=cache)
        expected = {e["name"]: e["samples_taken"] for e in manifest["mix"]["sources"]}
        if fmt == "jsonl":
            rows = [json.loads(line) for p in sorted((tmp_path / fmt).glob("part-*.jsonl")) for line in open(p)]
        else:
            rows = load_from_disk(str(tmp_path / fmt)).to_list()
        assert Counter(r["source"] for r in rows) == expected
        assert CliRunner().invoke(main, ["validate", str(tmp_path / fmt), "-q"]).exit_code == 0


def test_megatron_writes_a_dataset_per_source_and_the_blend_weights(built, tmp_path):
    _, _, _, cache = built
    small = {**RECIPE, "format": "megatron", "sources": RECIPE["sources"][:3]}
    manifest, _ = make_mix(parse_recipe(small, base=SHARED_DATA), str(tmp_path / "m"), cache=cache)
    data_path = (tmp_path / "m" / "megatron_data_path.txt").read_text().split()
    taken = [e["samples_taken"] for e in manifest["mix"]["sources"]]  # 12, 125, 300
    weights, prefixes = [float(w) for w in data_path[0::2]], data_path[1::2]
    assert weights == pytest.approx([t / sum(taken) for t in taken], abs=1e-6)
    assert prefixes == [f"part-{i:05d}-shard-00000.input_ids" for i in range(3)]
    for prefix, entry in zip(prefixes, manifest["mix"]["sources"]):
        count = np.frombuffer((tmp_path / "m" / f"{prefix}.idx").read_bytes()[18:26], dtype="<u8")[0]
        assert count == entry["samples_available"]
    assert CliRunner().invoke(main, ["validate", str(tmp_path / "m"), "-q"]).exit_code == 0


def test_validate_finds_a_mix_whose_rows_disagree_with_its_sources(built, tmp_path):
    _, _, out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["mix"]["sources"][0]["samples_taken"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["validate", str(copy), "-q"])
    assert result.exit_code == 1
    assert "source cookbook: the manifest counts 13 samples, the shards hold 12" in result.output


def test_inspect_shows_each_samples_source_and_record(built):
    _, _, out, _ = built
    result = CliRunner().invoke(main, ["inspect", str(out), "--index", "0", "--index", "1", "--plain"])
    assert result.exit_code == 0, result.output
    headers = [line for line in result.output.splitlines() if line.startswith("=== sample")]
    rows = output_rows(out)[:2]
    for header, row in zip(headers, rows):
        assert f" from {row['source']} row {row['source_row']} (" in header


def test_the_mix_command_prints_a_table_and_reuses_caches(built, tmp_path):
    _, _, _, cache = built
    recipe = tmp_path / "recipe.yaml"
    data = json.loads(json.dumps(RECIPE))
    for source in data["sources"]:
        source["inputs"] = [str(SHARED_DATA / i) for i in ([source["inputs"]] if isinstance(source["inputs"], str)
                                                            else source["inputs"])]
    recipe.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["mix", str(recipe), "-o", str(tmp_path / "out"), "--cache", str(cache), "-q"])
    assert result.exit_code == 0, result.output
    assert "codegen: samples 5,000 is more than" in result.stderr
    result = CliRunner().invoke(main, ["mix", str(recipe), "-o", str(tmp_path / "out"), "--cache", str(cache)])
    assert result.exit_code == 1 and "is not empty" in result.stderr and "--overwrite" in result.stderr
    result = CliRunner().invoke(main, ["mix", str(recipe), "-o", str(tmp_path / "out"), "--cache", str(cache),
                                       "--overwrite"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].split()[:5] == ["cookbook", "reused", "4", "12", "3.00"]
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "mix").symlink_to(cache)  # where validate finds caches by default
    check = CliRunner().invoke(main, ["validate", str(recipe)], env={"SFTCONV_CACHE_DIR": str(tmp_path / "root")})
    assert check.exit_code == 0 and check.stdout.count(", cached (") == 5


@pytest.mark.parametrize(("change", "message"), [
    ({"trian_on": "last"}, "sources[0]: unknown key 'trian_on'; did you mean 'train_on'?"),
    ({"fraction": 1.5}, "sources[0]: fraction 1.5 is more than the whole source; to upsample, write repeat: 1.5"),
    ({"fraction": 0.5, "samples": 3}, "sources[0]: give one share, found fraction and samples"),
    ({"train_on": "everything"}, "source s: train_on: 'everything' is not one of assistant, last, all"),
    ({"drop_empty_turns": "yes"}, "source s: drop_empty_turns: expected true or false, found 'yes'"),
    ({"trained_tokens": "5 lots"}, "source s: trained_tokens: '5 lots' is not an amount"),
    ({"samples": 0}, "sources/0/samples: 0 is less than the minimum of 1"),
    ({"mapping": {"mesages": "dialog"}}, "source s: mapping: top level: Additional properties"),
    ({"max_seq_len": 64, "overflow": "truncate-tokens"}, "source s: overflow truncate-tokens cuts trained turns"),
])
def test_a_bad_recipe_is_refused_naming_the_key(change, message):
    with pytest.raises(RecipeError) as error:
        parse_recipe({"sources": [{"name": "s", "inputs": "x.jsonl", **change}]})
    assert message in str(error.value)


def test_recipe_amounts_and_run_keys():
    recipe = parse_recipe({"seed": 3, "pack": 4096, "shard_size": "2GiB", "sources": [
        {"name": "a", "inputs": "a.jsonl", "trained_tokens": "2.5k"},
        {"name": "b", "inputs": "/abs/b.jsonl", "trained_tokens": "50M", "unit_size": "64MiB"},
        {"name": "c", "inputs": "s3://bucket/c.jsonl", "trained_tokens": 7}]}, base=Path("/recipes"))
    assert [s.share.value for s in recipe.sources] == [2500, 50_000_000, 7]
    assert [s.inputs for s in recipe.sources] == [("/recipes/a.jsonl",), ("/abs/b.jsonl",), ("s3://bucket/c.jsonl",)]
    assert recipe.shard_bytes == 2 * 2**30 and recipe.shard_rows is None and recipe.pack == 4096
    assert recipe.sources[1].options.unit_bytes == 64 * 2**20
    with pytest.raises(RecipeError, match="unknown key 'sed'; did you mean 'seed'"):
        parse_recipe({"sed": 1, "sources": [{"name": "a", "inputs": "a.jsonl"}]})
    with pytest.raises(RecipeError, match="max_seq_len 8192 is longer than pack 4096"):
        parse_recipe({"pack": 4096, "defaults": {"max_seq_len": 8192}, "sources": [{"name": "a", "inputs": "a"}]})
    with pytest.raises(RecipeError, match="a appears more than once"):
        parse_recipe({"sources": [{"name": "a", "inputs": "a"}, {"name": "a", "inputs": "b"}]})


def test_every_convert_option_is_a_recipe_key():
    """Options are mapped onto ConvertOptions by name, so one convert gains works in a recipe unchanged."""
    keys = set(option_keys())
    run_wide = {"format", "shard_rows", "shard_bytes", "pack", "pack_window", "mapping"}
    renamed = {"unit_bytes": "unit_size"}
    for field in ConvertOptions.__dataclass_fields__:
        if field == "reasoning":  # the policy, given as its three settings
            assert {"keep_reasoning", "train_reasoning", "empty_reasoning"} <= keys
        elif field not in run_wide:
            assert renamed.get(field, field) in keys
    spec = parse_recipe({"sources": [{"name": "a", "inputs": "a", "special_text": "reject", "drop_empty_turns": True,
                                      "messages_field": "dialog", "role_alias": {"bot": "assistant"},
                                      "template": "llama3.1", "tools_in": "system", "overflow": "truncate",
                                      "max_seq_len": 100}]}).sources[0]
    options = spec.options
    assert (options.special_text, options.drop_empty_turns, options.template, options.tools_in.value,
            options.overflow.value, options.max_seq_len) == ("reject", True, "llama3.1", "system", "truncate", 100)
    assert options.mapping.messages == "dialog" and options.mapping.roles == {"bot": "assistant"}
    # option types convert may gain: a tuple from YAML's list, an optional one left unset
    assert typed("keep_columns", ["id", "lang"], tuple[str, ...]) == ("id", "lang")
    assert typed("limit", None, int | None) is None
    with pytest.raises(ValueError, match="limit: expected a whole number, found True"):
        typed("limit", True, int | None)


def test_the_schema_checks_recipes():
    check = validator("recipe")
    assert not list(check.iter_errors(RECIPE))
    assert list(check.iter_errors({**RECIPE, "format": "csv"}))
    assert list(check.iter_errors({"sources": [{"name": "bad name", "inputs": "a"}]}))
    assert list(check.iter_errors({"sources": [{"name": "a", "inputs": "a", "repeat": 2, "samples": 3}]}))


def test_validate_refuses_a_recipe_with_a_missing_input(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": [{"name": "a", "inputs": "missing.jsonl"}]}))
    result = CliRunner().invoke(main, ["validate", str(recipe)])
    assert result.exit_code == 1
    assert "source a:" in result.stderr and "missing.jsonl" in result.stderr


def test_a_share_no_sample_can_meet_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}) + "\n")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "assistant", "content": "x"}]}) + "\n")
    base = [{"name": "a", "inputs": "a.jsonl"}]
    for share, message in (({"samples": 3}, "samples 3 cannot be met: it has no samples to take"),
                           ({"trained_tokens": 10}, "trained_tokens 10 cannot be met: it has no samples")):
        recipe = parse_recipe({"sources": [*base, {"name": "bad", "inputs": "bad.jsonl", **share}]}, base=tmp_path)
        with pytest.raises(MixError, match=message):
            make_mix(recipe, str(tmp_path / "out"), cache=tmp_path / "cache")
    manifest, _ = make_mix(parse_recipe({"sources": [*base, {"name": "bad", "inputs": "bad.jsonl", "fraction": 0.5}]},
                                        base=tmp_path), str(tmp_path / "out"), cache=tmp_path / "cache")
    assert manifest["mix"]["warnings"] == ["source bad: no samples to take (see its cache's manifest for why); "
                                           "it adds nothing"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": [*base, {"name": "bad", "inputs": "bad.jsonl", "samples": 3}]}))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "mix").symlink_to(tmp_path / "cache")  # where validate finds caches by default
    check = CliRunner().invoke(main, ["validate", str(recipe)], env={"SFTCONV_CACHE_DIR": str(tmp_path / "root")})
    assert check.exit_code == 1 and "source bad: samples 3 cannot be met: its cache (" in check.stderr


def test_the_readme_recipe_runs_as_documented(built, tmp_path):
    _, _, _, cache = built
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme[readme.index("## Mixes"):].split("```yaml\n", 1)[1].split("```", 1)[0]
    manifest, caches = make_mix(parse_recipe(yaml.safe_load(block), base=SHARED_DATA), str(tmp_path / "mix"),
                                cache=cache)
    entries = {e["name"]: e for e in manifest["mix"]["sources"]}
    assert entries["cookbook"]["too_long_for_pack"] == 1 and entries["cookbook"]["samples_taken"] == 9
    assert entries["alpaca"]["samples_taken"] == 300
    assert entries["codegen"]["samples_taken"] == 5000 and manifest["packing"]["seq_len"] == 4096
    assert sum(c.built for c in caches) == 0  # the same sources and options as the recipe above: its caches


def test_a_source_at_a_url_is_cached_by_its_object_version(s3, tmp_path):
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    (tmp_path / "local.jsonl").write_text(json.dumps({"messages": chat}) + "\n")
    bucket = s3.removeprefix("s3://")
    boto3.client("s3").put_object(Bucket=bucket, Key="chat.jsonl", Body=json.dumps({"messages": chat * 2}) + "\n")
    data = {"sources": [{"name": "remote", "inputs": f"{s3}/chat.jsonl", "repeat": 2},
                        {"name": "local", "inputs": "local.jsonl"}]}
    manifest, caches = make_mix(parse_recipe(data, base=tmp_path), str(tmp_path / "one"), cache=tmp_path / "cache")
    assert [e["samples_taken"] for e in manifest["mix"]["sources"]] == [2, 1]
    boto3.client("s3").put_object(Bucket=bucket, Key="chat.jsonl", Body=json.dumps({"messages": chat * 3}) + "\n")
    s3fs.S3FileSystem.clear_instance_cache()  # as a later run would, in a new process
    _, again = make_mix(parse_recipe(data, base=tmp_path), str(tmp_path / "two"), cache=tmp_path / "cache")
    assert [c.built for c in again] == [True, False] and again[0].folder != caches[0].folder


def test_a_record_is_not_named_once_its_input_changed(tmp_path):
    lines = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
             for i in range(3)]
    (tmp_path / "chat.jsonl").write_text("\n".join(["{broken", *lines]) + "\n")
    recipe = parse_recipe({"sources": [{"name": "chat", "inputs": "chat.jsonl"}]}, base=tmp_path)
    manifest, _ = make_mix(recipe, str(tmp_path / "out"), cache=tmp_path / "cache")
    source = manifest["mix"]["sources"][0]
    assert record_location(source, 2) == Location(str(tmp_path / "chat.jsonl"), line=4)  # line 1 is rejected
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    assert record_location(source, 2) is None


def test_a_damaged_cache_says_which_folder_to_remove(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    recipe = parse_recipe({"sources": [{"name": "a", "inputs": "a.jsonl"}]}, base=tmp_path)
    _, caches = make_mix(recipe, str(tmp_path / "one"), cache=tmp_path / "cache")
    for shard in caches[0].folder.glob("part-*.parquet"):
        shard.write_bytes(b"not parquet")
    with pytest.raises(MixError, match=f"source a: its cache {caches[0].folder} cannot be read .*remove that folder"):
        make_mix(recipe, str(tmp_path / "two"), cache=tmp_path / "cache")


def test_the_mix_command_says_which_source_it_converts(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"sources": [{"name": "a", "inputs": "a.jsonl"}]}))
    command = ["mix", str(tmp_path / "recipe.yaml"), "--cache", str(tmp_path / "cache"), "-j", "1"]
    first = CliRunner().invoke(main, [*command, "-o", str(tmp_path / "one")])
    assert first.exit_code == 0, first.output
    assert f"converting source a into {tmp_path / 'cache'}/a-" in first.stderr
    again = CliRunner().invoke(main, [*command, "-o", str(tmp_path / "two")])
    assert "converting" not in again.stderr and again.stdout.splitlines()[1].split()[:2] == ["a", "reused"]


def test_reasoning_settings_in_a_recipe_reach_the_source_and_a_mix_blends_sft_only():
    spec = parse_recipe({"defaults": {"keep_reasoning": "last"},
                         "sources": [{"name": "a", "inputs": "a", "train_reasoning": False}]}).sources[0]
    assert spec.options.reasoning.to_json() == {"keep": "last", "train": False, "empty": False}
    assert spec.options.task == "sft"  # preference records are rejected, as in an SFT convert, never blended
    for key, value, message in (("task", "preference", "a mix blends SFT samples"),
                                ("keep_columns", ["id"], "traced by their source and source_row")):
        with pytest.raises(RecipeError, match=message):
            parse_recipe({"sources": [{"name": "a", "inputs": "a", key: value}]})


def test_a_mix_with_no_samples_exits_1_unless_an_empty_result_is_allowed(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": [{"name": "bad", "inputs": str(data)}]}))
    args = ["mix", str(recipe), "-o", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "-q", "-j", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "no samples in the mix" in result.stderr, result.output
    assert CliRunner().invoke(main, [*args, "--overwrite", "--allow-empty"]).exit_code == 0
