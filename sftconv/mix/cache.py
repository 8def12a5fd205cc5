"""Each source tokenized once: an ordinary convert output folder per source, named by what decides its bytes.

A cache folder is `ROOT/NAME-KEY`, where KEY hashes the source's inputs (each file's size and mtime,
a URL's object version), its options, the tokenizer's sha256 and the sftconv version; editing an
input or an option gives a new key, so only that source is converted again. A folder counts as
done once its `manifest.json` is there, which convert writes last; a killed build leaves a folder
without one, and the next mix resumes it as `convert --resume` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__, tokenizer_sources
from ..pipeline import ConvertError, InputError, convert, input_identity
from ..readers import expand_inputs
from ..writers import MANIFEST_FILE
from .recipe import SourceSpec

if TYPE_CHECKING:
    from ..ray_engine import RayEngine

def default_cache() -> Path:
    """`mix` in sftconv's cache folder: $SFTCONV_CACHE_DIR/mix, else $XDG_CACHE_HOME/sftconv/mix, else
    ~/.cache/sftconv/mix (`--cache` overrides it)."""
    return tokenizer_sources.cache_dir() / "mix"


@dataclass(frozen=True)
class Cached:
    """A source's cache folder, the versions of the inputs it holds, and whether this run built it (False: reused)."""

    spec: SourceSpec
    folder: Path
    versions: list[dict]  # each input's `input_identity`
    built: bool

    @cached_property
    def manifest(self) -> dict:
        """The cache's manifest.json, as convert wrote it."""
        return json.loads((self.folder / MANIFEST_FILE).read_text(encoding="utf-8"))


@cache
def tokenizer_sha256(given: str | None) -> str:
    """The sha256 of the tokenizer file `--tokenizer` names (a file, a model folder's, one in the local hub
    cache; None: Meta's), read once per run."""
    path = tokenizer_sources.locate(given) if given else tokenizer_sources.default_tokenizer_path()
    return hashlib.sha256((tokenizer_sources.tokenizer_file(path) if path.is_dir() else path).read_bytes()).hexdigest()


def cache_identity(spec: SourceSpec) -> dict:
    """What decides the bytes of a source's cache.

    `fields` repeats every option by its repr, so an option that convert gains changes the key even
    before its manifest records it.

    Raises:
        InputError: an input or the tokenizer is missing.
        ConvertError: an input or the tokenizer cannot be read.
    """
    try:
        paths = expand_inputs(list(spec.inputs))
        tokenizer = tokenizer_sha256(spec.options.tokenizer)
    except FileNotFoundError as error:
        raise InputError(f"source {spec.name}: {error}") from error
    except (OSError, ValueError) as error:
        raise ConvertError(f"source {spec.name}: {error}") from error
    if not paths:
        raise InputError(f"source {spec.name}: no input files found in {', '.join(spec.inputs)}")
    return {"name": spec.name, "sftconv_version": __version__, "inputs": [input_identity(path) for path in paths],
            # the backend never changes the ids, so it never invalidates a cache
            "options": spec.options.to_json(),
            "fields": repr(replace(spec.options, tokenizer=None, tokenizer_backend="auto")),
            "tokenizer": tokenizer}


def cache_folder(root: Path, spec: SourceSpec) -> Path:
    """The folder holding (or to hold) this source's cache."""
    return locate(root, cache_identity(spec))


def locate(root: Path, identity: dict) -> Path:
    """The cache folder of a source of this identity."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{identity['name']}-{key}"


def build_cache(spec: SourceSpec, root: Path, *, workers: int = 1, engine: RayEngine | None = None,
                progress: bool | None = False, announce: Callable[[SourceSpec, Path], None] | None = None) -> Cached:
    """The source's cache: reused if finished, else converted (an interrupted build resumed).

    `announce`, if given, is called with the spec and the cache folder before converting.

    Raises:
        ConvertError: the source cannot be converted (see `pipeline.convert`).
    """
    identity = cache_identity(spec)
    folder = locate(root, identity)
    if (folder / MANIFEST_FILE).is_file():
        return Cached(spec, folder, identity["inputs"], built=False)
    if announce is not None:
        announce(spec, folder)
    convert(list(spec.inputs), folder, spec.options, resume=True, progress=progress, workers=workers, engine=engine)
    return Cached(spec, folder, identity["inputs"], built=True)
