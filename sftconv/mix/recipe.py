"""A mix recipe: run-wide settings, default convert options, and sources each with its inputs, options and share.

Option keys are convert's long flags with underscores (`train_on`, `max_seq_len`, `messages_field`...)
and are mapped onto `ConvertOptions` fields by name, so an option convert gains works in a recipe
with no change here.
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import dataclass, fields
from difflib import get_close_matches
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from ..lengths import Overflow
from ..packing import DEFAULT_WINDOW
from ..pipeline import ConvertOptions
from ..remote import is_url
from ..schema import validator
from ..shapes import FieldMapping, MappingError
from ..shapes.mapping import POLICY_KEYS
from ..tasks import SFT
from ..template.reasoning import ReasoningPolicy

SHARES = ("fraction", "samples", "repeat", "trained_tokens")
RUN_KEYS = ("seed", "format", "pack", "pack_window", "shard_rows", "shard_size")
SOURCE_KEYS = ("name", "inputs", *SHARES)
# ConvertOptions fields the mix decides for the whole run (the caches are always unpacked Parquet).
RUN_FIELDS = frozenset({"format", "shard_rows", "shard_bytes", "pack", "pack_window"})
FLAG_FIELDS = {"unit_size": "unit_bytes"}  # a flag whose name is not its field's
MAPPING_KEYS = {f"{f.name}_field": f.name for f in fields(FieldMapping) if f.name not in ("roles", *POLICY_KEYS)}
COUNT_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
BYTE_UNITS = {"": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
              "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


class RecipeError(ValueError):
    """A recipe that cannot be run; the message names the source and key, and what would work."""


@dataclass(frozen=True)
class Share:
    """How much of a source goes into the mix: `kind` is one of SHARES, `value` its amount (see README, Mixes)."""

    kind: str
    value: float | int

    def to_json(self) -> dict:
        return {self.kind: self.value}


@dataclass(frozen=True)
class SourceSpec:
    """One source of a recipe: its inputs (relative paths resolved), share and the options its cache is built with."""

    name: str
    inputs: tuple[str, ...]
    share: Share
    options: ConvertOptions


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe; `given` is the recipe as written, kept for the manifest."""

    sources: tuple[SourceSpec, ...]
    seed: int = 0
    format: str = "parquet"
    pack: int | None = None
    pack_window: int = DEFAULT_WINDOW
    shard_rows: int | None = 100_000
    shard_bytes: int | None = None
    given: dict | None = None


def option_keys() -> list[str]:
    """Every key `defaults` and a source accept as an option."""
    names = [f.name for f in fields(ConvertOptions) if f.name not in RUN_FIELDS | {"mapping", "reasoning"}]
    renamed = set(FLAG_FIELDS.values())
    return [*(n for n in names if n not in renamed), *FLAG_FIELDS, "mapping", "role_alias", *MAPPING_KEYS,
            *POLICY_KEYS]


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file (YAML, or JSON by its `.json` suffix).

    Raises:
        RecipeError: unreadable, an unknown key (named, with the closest known one), a wrong type,
            an impossible share, or options convert would refuse.

    Example:
        >>> load_recipe("recipe.yaml").sources[0].share
        Share(kind='repeat', value=3)
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"{path}: cannot read the recipe: {error}") from error
    return parse_recipe(data, base=path.parent)


def parse_recipe(data: Any, base: Path = Path(".")) -> Recipe:
    """A Recipe from its parsed YAML or JSON; relative input paths are read from `base`.

    Raises:
        RecipeError: as for `load_recipe`.
    """
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe is a mapping with `sources`, found {type(data).__name__}")
    check_keys(data, [*RUN_KEYS, "defaults", "sources"], "recipe")
    for number, source in enumerate(data.get("sources") or []):
        if isinstance(source, dict):
            check_keys(source, [*SOURCE_KEYS, *option_keys()], f"sources[{number}]")
            check_share(source, f"sources[{number}]")
    if isinstance(data.get("defaults"), dict):
        check_keys(data["defaults"], option_keys(), "defaults")
    problems = sorted(validator("recipe").iter_errors(data), key=lambda e: list(map(str, e.path)))
    if problems:
        where = "/".join(map(str, problems[0].path)) or "top level"
        raise RecipeError(f"{where}: {problems[0].message}")
    pack = data.get("pack")
    names = [s["name"] for s in data["sources"]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecipeError(f"source names must be unique: {', '.join(repeated)} appears more than once")
    if data.get("format") == "megatron" and pack is not None:
        raise RecipeError("format megatron writes one dataset per source for Megatron's own blending; "
                          "it takes no pack (drop `pack`, or choose parquet, hf or jsonl)")
    defaults = data.get("defaults") or {}
    sources = tuple(source_spec(source, defaults, base, pack) for source in data["sources"])
    shard_bytes = None if data.get("shard_size") is None else amount(data["shard_size"], BYTE_UNITS, "shard_size")
    shard_rows = data.get("shard_rows", None if shard_bytes is not None else 100_000)
    return Recipe(sources, seed=data.get("seed", 0), format=data.get("format", "parquet"), pack=pack,
                  pack_window=data.get("pack_window", DEFAULT_WINDOW), shard_rows=shard_rows, shard_bytes=shard_bytes,
                  given=data)


def check_keys(data: dict, known: list[str], where: str) -> None:
    """Refuse a key that is not known, naming the closest known one."""
    for key in data:
        if key not in known:
            close = get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise RecipeError(f"{where}: unknown key {key!r}{hint}")


def check_share(source: dict, where: str) -> None:
    """Refuse two shares for one source, and a fraction above 1 (upsampling is `repeat`)."""
    kinds = [kind for kind in SHARES if kind in source]
    if len(kinds) > 1:
        raise RecipeError(f"{where}: give one share, found {' and '.join(kinds)}")
    fraction = source.get("fraction")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and fraction > 1:
        raise RecipeError(f"{where}: fraction {fraction} is more than the whole source; to upsample, "
                          f"write repeat: {fraction}")


def source_spec(source: dict, defaults: dict, base: Path, pack: int | None) -> SourceSpec:
    """One source's spec: its options over the defaults, its share, its inputs from `base`."""
    name = source["name"]
    given = {**defaults, **{k: v for k, v in source.items() if k not in SOURCE_KEYS}}
    try:
        options = convert_options(given, base)
    except (ValueError, MappingError, OSError) as error:
        raise RecipeError(f"source {name}: {error}") from error
    if options.overflow is Overflow.TRUNCATE_TOKENS and options.max_seq_len is not None:
        # validate holds a mix to one limit, and could not tell such cuts from broken samples of another source
        raise RecipeError(f"source {name}: overflow truncate-tokens cuts trained turns short, which a mix's "
                          "validation cannot tell from broken samples; use overflow truncate (whole turns) or drop")
    if pack is not None and options.max_seq_len is not None and options.max_seq_len > pack:
        raise RecipeError(f"source {name}: max_seq_len {options.max_seq_len} is longer than pack {pack}: such a "
                          "sample cannot be packed; lower max_seq_len or leave it out")
    kinds = [kind for kind in SHARES if kind in source]
    share = Share(kinds[0], source[kinds[0]]) if kinds else Share("repeat", 1)
    if share.kind == "trained_tokens":
        share = Share(share.kind, amount(share.value, COUNT_UNITS, f"source {name}: trained_tokens"))
    inputs = source["inputs"]
    return SourceSpec(name, tuple(resolve(item, base) for item in ([inputs] if isinstance(inputs, str) else inputs)),
                      share, options)


def convert_options(given: dict, base: Path) -> ConvertOptions:
    """ConvertOptions for a source's cache from recipe keys, each mapped onto the field of its name.

    Raises:
        ValueError: a value of the wrong type or not among an option's choices, or options convert refuses.
        MappingError, OSError: a mapping file that cannot be used.
    """
    hints = get_type_hints(ConvertOptions)
    values: dict[str, Any] = {}
    mapping = FieldMapping()
    for key, value in given.items():
        if key == "mapping":
            mapping = FieldMapping.from_file(resolve(value, base)) if isinstance(value, str) else inline_mapping(value)
        elif key in MAPPING_KEYS or key in POLICY_KEYS or key == "role_alias":
            continue  # merged over the mapping below, so they win over it whatever the key order
        else:
            field = FLAG_FIELDS.get(key, key)
            values[field] = typed(key, value, hints[field])
    mapping = mapping.merged(**{MAPPING_KEYS[k]: given[k] for k in MAPPING_KEYS if k in given},
                             roles=given.get("role_alias"))
    if values.get("tokenizer") is not None:
        values["tokenizer"] = resolve(values["tokenizer"], base)
    if values.pop("task", SFT) != SFT:
        raise ValueError(f"task: {given['task']}: a mix blends SFT samples; convert preference data with sftconv "
                         "convert (task: sft reads a source's records as SFT samples)")
    if values.get("keep_columns"):
        raise ValueError("keep_columns: a mix's rows are traced by their source and source_row columns instead "
                         "(sftconv inspect MIX shows each sample's record)")
    reasoning = ReasoningPolicy.first_given(tuple(given.get(key) for key in POLICY_KEYS),
                                            tuple(getattr(mapping, key) for key in POLICY_KEYS))
    # task sft: preference records are rejected (preference_record, undesirable_answer) as in an SFT convert
    return ConvertOptions(**values, task=SFT, mapping=mapping, reasoning=reasoning, format="parquet", pack=None)


def inline_mapping(data: dict) -> FieldMapping:
    """A mapping written in the recipe, checked as a mapping file is.

    Raises:
        MappingError: a key or value the mapping schema refuses.
    """
    problems = sorted(validator("mapping").iter_errors(data), key=lambda e: list(map(str, e.path)))
    if problems:
        where = "/".join(map(str, problems[0].path)) or "top level"
        raise MappingError(f"mapping: {where}: {problems[0].message}")
    return FieldMapping(**data)


def typed(key: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type: an enum's member from its name; a size from `64MiB`; a tuple from a list;
    else checked as given.

    Raises:
        ValueError: the value does not fit, with the choices where there are some.
    """
    union = get_origin(hint) in (Union, types.UnionType)
    kinds = [a for a in get_args(hint) if a is not type(None)] if union else [hint]
    if value is None and len(kinds) < len(get_args(hint)):
        return None
    kind = kinds[0]
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{key}: {value!r} is not one of {', '.join(m.value for m in kind)}") from None
    if key in FLAG_FIELDS and isinstance(value, str):
        return amount(value, BYTE_UNITS, key)
    if get_origin(kind) in (tuple, frozenset) and isinstance(value, list):  # YAML has lists only
        return get_origin(kind)(value)
    plain = {bool: "true or false", int: "a whole number", str: "a string", float: "a number"}
    if kind in plain and not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        raise ValueError(f"{key}: expected {plain[kind]}, found {value!r}")
    return value


def amount(value: int | float | str, units: dict[str, int], key: str) -> int:
    """A whole amount of at least 1 from a number or text such as `50M`, `2.5k` (counts) or `500MB` (bytes).

    Raises:
        RecipeError: not a number with a known unit, or below 1.
    """
    match = AMOUNT.match(str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in units or isinstance(value, bool):
        raise RecipeError(f"{key}: {value!r} is not an amount (examples: "
                          f"{'50M, 2.5k, 1B' if units is COUNT_UNITS else '500MB, 2GiB'}, 100000)")
    number = round(float(match.group(1)) * units[unit])
    if number < 1:
        raise RecipeError(f"{key}: {value!r} is below 1")
    return number


def resolve(item: str, base: Path) -> str:
    """An input as given, or a relative local path read from the recipe's folder."""
    from ..readers import HUB_PREFIX

    if is_url(item) or item.startswith(HUB_PREFIX) or Path(item).is_absolute():
        return item
    return str(base / item)
