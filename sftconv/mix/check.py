"""Checks of mixes: a recipe before anything runs, and a mix's output against its manifest's per-source counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..conversation import Location
from ..pipeline import ConvertError
from ..validate.codes import COUNTS_MISMATCH
from ..validate.report import Finding, Report
from ..writers import MANIFEST_FILE
from .cache import cache_folder, default_cache
from .output import read_trace
from .recipe import RecipeError, load_recipe

RECIPE_SUFFIXES = (".yaml", ".yml")
RECIPE_PEEK_BYTES = 1 << 20  # a .json file larger than this is data, not a recipe


def is_recipe(path: str) -> bool:
    """Whether a validate input is a mix recipe: YAML, or a small JSON object with `sources`."""
    file = Path(path)
    if not file.is_file():
        return False
    if file.suffix in RECIPE_SUFFIXES:
        return True
    if file.suffix != ".json" or file.stat().st_size > RECIPE_PEEK_BYTES:
        return False
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "sources" in data


def check_recipe(path: str, cache: Path | None = None) -> tuple[list[str], list[str]]:
    """A recipe checked without converting anything: (a line per source, the problems found).

    Checks its keys, types and shares, each source's options as convert would take them, that
    every input is there, and says whether each source's cache is already built; where it is, that
    the source has the samples and trained tokens its share asks for.
    """
    try:
        recipe = load_recipe(path)
    except RecipeError as error:
        return [], [str(error)]
    root = Path(cache) if cache is not None else default_cache()
    lines, problems = [], []
    for spec in recipe.sources:
        try:
            folder = cache_folder(root, spec)
        except ConvertError as error:
            problems.append(str(error))
            continue
        state = "cached" if (folder / MANIFEST_FILE).is_file() else "to convert"
        share = ", ".join(f"{kind} {value}" for kind, value in spec.share.to_json().items())
        if state == "cached" and spec.share.kind in ("samples", "trained_tokens"):
            counts = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["counts"]
            held = counts["written" if spec.share.kind == "samples" else "trained_tokens"]
            if not held:
                problems.append(f"source {spec.name}: {share} cannot be met: its cache ({folder}) holds no "
                                f"{'samples' if spec.share.kind == 'samples' else 'trained tokens'}")
        lines.append(f"{spec.name}: {len(spec.inputs)} input(s), {share}, {state} ({folder})")
    return lines, problems


def check_mix(folder: Path, report: Report) -> None:
    """Add to `report` where a mix's rows or totals disagree with its per-source counts; other folders pass as they are.

    The manifest itself, the shards' hashes and every row are checked by `validate_shards`.
    """
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        sources = manifest["mix"]["sources"]
    except (OSError, ValueError, TypeError, KeyError):  # not a mix; validate_shards has said what is wrong
        return
    where = Location(str(folder / MANIFEST_FILE))
    megatron = manifest["format"] == "megatron"
    expected = {e["name"]: e["samples_available" if megatron else "samples_taken"] for e in sources}
    if megatron:  # a dataset per source that has samples, in the sources' order
        found = Counter({e["name"]: shard["samples"]
                         for e, shard in zip([e for e in sources if e["samples_available"]], manifest["shards"])})
    else:
        try:
            found = Counter(name for shard in manifest["shards"] for entry in shard["files"]
                            for name in source_column(folder / entry["file"], manifest["format"]))
        except (OSError, ValueError, KeyError):  # a missing or broken shard, which validate_shards reported
            return
    for name in sorted(set(expected) | set(found)):
        if expected.get(name, 0) != found[name]:
            report.add_file(where, Finding(COUNTS_MISMATCH, f"source {name}: the manifest counts "
                                                            f"{expected.get(name, 0):,} samples, the shards hold "
                                                            f"{found[name]:,}", "mix.sources"))
    totals = {"samples": sum(e["samples_taken"] for e in sources),
              "trained_tokens": sum(e["trained_tokens"] for e in sources)}
    for key, total in totals.items():
        if manifest["mix"][key] != total or not megatron and manifest["counts"][
                "written" if key == "samples" else key] != total:
            report.add_file(where, Finding(COUNTS_MISMATCH, f"the sources' {key} add up to {total:,}, the mix "
                                                            f"counts {manifest['mix'][key]:,}", f"mix.{key}"))


def source_column(path: Path, format: str) -> list[str]:
    """Every sample's `source` in one shard file, packed rows' lists flattened."""
    names = [row["source"] for row in read_trace(path, format)]
    return [name for value in names for name in (value if isinstance(value, list) else [value])]
