"""Mixes: a recipe of many sources, each converted once into a cache, then blended by their shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .blend import DATA_PATH_FILE, MixError, blend
from .cache import Cached, build_cache, default_cache
from .recipe import Recipe, RecipeError, SourceSpec, load_recipe, parse_recipe

if TYPE_CHECKING:
    from ..ray_engine import RayEngine


def make_mix(recipe: Recipe, out_dir: str, *, cache: Path | None = None, overwrite: bool = False, workers: int = 1,
             engine: RayEngine | None = None, progress: bool | None = False,
             announce: Callable[[SourceSpec, Path], None] | None = None) -> tuple[dict, list[Cached]]:
    """Build (or reuse) every source's cache, then blend them into `out_dir`; returns the manifest and the caches.

    Args:
        recipe: what to mix.
        out_dir: the mix's folder; refused if it holds files unless `overwrite`.
        cache: the folder of the caches [default: `default_cache()`].
        workers, engine, progress: as for `pipeline.convert`, for the sources that need converting.
        announce: called with a source's spec and cache folder before it is converted.

    Raises:
        ConvertError: a source cannot be converted.
        MixError: the blend cannot be made (see `blend`).

    Example:
        >>> manifest, caches = make_mix(load_recipe("recipe.yaml"), "mix/")
        >>> manifest["counts"]["written"] == sum(s["samples_taken"] for s in manifest["mix"]["sources"])
        True
    """
    root = Path(cache) if cache is not None else default_cache()
    caches = [build_cache(spec, root, workers=workers, engine=engine, progress=progress, announce=announce)
              for spec in recipe.sources]
    return blend(recipe, caches, out_dir, overwrite=overwrite), caches


__all__ = ["DATA_PATH_FILE", "Cached", "MixError", "Recipe", "RecipeError", "SourceSpec", "blend",
           "build_cache", "default_cache", "load_recipe", "make_mix", "parse_recipe"]
