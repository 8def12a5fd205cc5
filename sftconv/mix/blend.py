"""The blend: each source's rows chosen by its share, shuffled across sources, packed if asked, written.

Only rows already tokenized are read, from each source's cache; no reader, shape or template runs.

Choice: a source's available samples (with `pack`, those that fit in a row) are put in an order drawn
from the seed and the source's name alone, and its share takes a prefix of that order, cycled whole
as often as a share above the source's size needs. So changing one source's share never changes
which rows another gives, and a larger fraction only adds rows.

Order: a full shuffle of every chosen sample (seeded), so sources are spread evenly through the
mix; packing then goes through the mix `pack_window` samples at a time, as convert does. Memory:
every cache's tokens, held once (5 bytes a token: id and mask), plus about 40 bytes a chosen sample.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..packing import Packer, PackedRows
from ..template import Samples
from ..writers import WRITERS, ShardInfo, write_manifest
from ..writers.folder import Folder
from ..writers.shards import Columns
from .output import TracedLayout

if TYPE_CHECKING:  # the blend reads finished caches only: it needs no reader, shape or pipeline
    from .cache import Cached
    from .recipe import Recipe, Share

BLEND_BATCH = 4096  # samples gathered and written together
DATA_PATH_FILE = "megatron_data_path.txt"  # format megatron: the blend as Megatron's --data-path takes it


class MixError(Exception):
    """A mix that cannot be made; the message says what to change."""


@dataclass
class SourceRows:
    """A cache's samples, held in the mix's joined samples from `first` on, and which of them the mix takes."""

    cached: Cached
    first: int
    lengths: np.ndarray  # tokens of each sample
    trained: np.ndarray  # trained tokens of each sample
    available: np.ndarray  # rows that may be taken (with pack: those that fit in a row)
    taken: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rows taken, in draw order


def read_caches(caches: list[Cached]) -> tuple[Samples, np.ndarray]:
    """Every sample of these caches (unpacked Parquet, as convert wrote it), joined in order, and each one's
    trained tokens.

    The arrays are sized from the caches' manifests first, so the tokens are held once, not once per
    cache and again joined.

    Raises:
        MixError: a cache cannot be read (a shard deleted or damaged since it was built).
    """
    counts = [cached.manifest["counts"] for cached in caches]
    joined = Samples(np.empty(sum(c["tokens"] for c in counts), np.int32),
                     np.empty(sum(c["tokens"] for c in counts), np.uint8),
                     np.empty(sum(c["written"] for c in counts), np.int64))
    trained = np.empty(len(joined), np.int64)
    token, sample = 0, 0
    for cached, count in zip(caches, counts):
        try:
            read_cache(cached, joined, trained, token, sample)
        except (OSError, ValueError) as error:  # pyarrow's errors are ValueErrors too
            raise MixError(f"source {cached.spec.name}: its cache {cached.folder} cannot be read ({error}); "
                           "remove that folder and run the mix again") from error
        token, sample = token + count["tokens"], sample + count["written"]
    return joined, trained


def read_cache(cached: Cached, joined: Samples, trained: np.ndarray, token: int, sample: int) -> None:
    """Put a cache's samples into `joined` from token `token` and sample `sample` on, and their trained tokens."""
    import pyarrow.parquet as pq

    for shard in cached.manifest["shards"]:
        for entry in shard["files"]:
            shard_file = pq.ParquetFile(cached.folder / entry["file"])
            # a row group at a time, in this thread: pyarrow's own readers hold several times the data
            for group in range(shard_file.num_row_groups):
                table = shard_file.read_row_group(group, columns=["input_ids", "loss_mask"], use_threads=False)
                ids, mask = (table.column(name).combine_chunks() for name in ("input_ids", "loss_mask"))
                offsets = ids.offsets.to_numpy()
                lengths, starts = np.diff(offsets), offsets[:-1] - offsets[0]
                stop, rows = token + int(lengths.sum()), slice(sample, sample + len(lengths))
                joined.input_ids[token:stop] = ids.flatten().to_numpy()
                joined.loss_mask[token:stop] = mask.flatten().to_numpy()
                joined.lengths[rows] = lengths
                if len(lengths):
                    trained[rows] = np.add.reduceat(joined.loss_mask[token:stop], starts, dtype=np.int64)
                token, sample = stop, rows.stop


def source_rng(seed: int, name: str) -> np.random.Generator:
    """The generator that orders a source's rows: from the seed and the source's name, nothing else."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")])


def share_count(share: Share, trained: np.ndarray, name: str) -> int:
    """How many samples a share takes of a source whose samples, in draw order, train `trained` tokens each.

    fraction and repeat round half up (and take nothing of an empty source); trained_tokens takes
    samples until their trained tokens reach the budget (the last one may pass it), in whole passes first where the budget exceeds the source.

    Raises:
        MixError: samples or trained tokens asked of a source with none.
    """
    count = len(trained)
    if share.kind in ("fraction", "repeat"):
        return math.floor(share.value * count + 0.5)
    if count == 0:
        raise MixError(f"source {name}: {share.kind} {share.value:,} cannot be met: it has no samples to take "
                       "(with pack, only those that fit in a row count; its cache's manifest.json and "
                       "rejects.jsonl say why it has none); give it a fraction or repeat, or remove it")
    if share.kind == "samples":
        return share.value
    total = int(trained.sum())
    if total == 0:
        raise MixError(f"source {name}: trained_tokens {share.value:,} cannot be met: its samples train no "
                       "token (check its train_on), so give it a fraction, samples or repeat instead")
    passes, rest = divmod(share.value, total)
    return passes * count + (int(np.searchsorted(np.cumsum(trained), rest, side="left")) + 1 if rest else 0)


def select(share: Share, trained: np.ndarray, rng: np.random.Generator, name: str) -> np.ndarray:
    """Positions the share takes: a permutation from `rng`, cycled whole as often as needed, then its prefix."""
    order = rng.permutation(len(trained))
    count = share_count(share, trained[order], name)
    if not count:
        return order[:0]
    passes, rest = divmod(count, len(order))
    return np.concatenate([np.tile(order, passes), order[:rest]])


def open_sources(recipe: Recipe, caches: list[Cached]) -> tuple[list[SourceRows], Samples]:
    """Each cache read, its available rows known and its share drawn; returns them and every cache's samples joined.

    Raises:
        MixError: caches made with different tokenizers, or a share that cannot be met.
    """
    # one tokenizer by what decides the ids: Meta's file and its tokenizer.json are the same one
    tokenizers = {c.manifest["tokenizer"].get("fingerprint") or c.manifest["tokenizer"]["sha256"] for c in caches}
    if len(tokenizers) > 1:
        raise MixError("the sources were tokenized with different tokenizers; a mix needs one: give `tokenizer` "
                       "in the recipe's defaults only")
    everything, trained_all = read_caches(caches)
    sources, first = [], 0
    for cached in caches:
        stop = first + cached.manifest["counts"]["written"]
        lengths, trained = everything.lengths[first:stop], trained_all[first:stop]
        fits = lengths <= recipe.pack if recipe.pack is not None else np.ones(len(lengths), dtype=bool)
        rows = SourceRows(cached, first, lengths, trained, np.flatnonzero(fits))
        chosen = select(cached.spec.share, trained[rows.available], source_rng(recipe.seed, cached.spec.name),
                        cached.spec.name)
        rows.taken = rows.available[chosen]
        sources.append(rows)
        first = stop
    return sources, everything


def blend(recipe: Recipe, caches: list[Cached], out_dir: str, *, overwrite: bool = False) -> dict:
    """Write the mix of these caches to `out_dir` and return its manifest (also written there, last).

    Raises:
        MixError: `out_dir` holds files and `overwrite` is not set, or a share cannot be met (see `open_sources`).
    """
    sources, everything = open_sources(recipe, caches)
    warnings = share_warnings(sources)
    with Folder.at(out_dir) as folder:
        prepare(folder, overwrite)
        if recipe.format == "megatron":
            shards = write_megatron(folder, sources, everything)
        else:
            shards = write_blend(folder, recipe, sources, everything)
        manifest = mix_manifest(recipe, sources, shards, warnings)
        if recipe.format == "megatron":
            folder.write_text(DATA_PATH_FILE, " ".join(manifest["mix"]["megatron_data_path"]) + "\n")
        write_manifest(folder, manifest)
    return manifest


def prepare(folder: Folder, overwrite: bool) -> None:
    """Make the output folder ready: refused if it holds files, unless `overwrite` (then our files go).

    Raises:
        MixError: the folder holds files and `overwrite` is not set.
    """
    from ..pipeline import is_ours

    folder.make()
    entries = folder.entries()
    if entries and not overwrite:
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise MixError(f"{folder.location} is not empty ({shown}); pass --overwrite to replace it")
    for name, is_file in entries.items():
        if is_file and (is_ours(name) or name == DATA_PATH_FILE):
            folder.remove(name)


def write_blend(folder: Folder, recipe: Recipe, sources: list[SourceRows], everything: Samples) -> list[ShardInfo]:
    """The chosen samples of every source, shuffled together, packed if asked, written with their origins."""
    bases = np.array([s.first for s in sources], dtype=np.int64)
    origin = np.concatenate([np.full(len(s.taken), i, dtype=np.int64) for i, s in enumerate(sources)])
    rows = np.concatenate([s.taken for s in sources]).astype(np.int64)
    order = np.random.default_rng([recipe.seed]).permutation(len(rows))
    origin, rows = origin[order], rows[order]
    picks = bases[origin] + rows  # each chosen sample's place in `everything`
    packed = recipe.pack is not None
    layout = TracedLayout(packed, [s.cached.spec.name for s in sources])
    writer = WRITERS[recipe.format](folder.local, shard_rows=recipe.shard_rows, shard_bytes=recipe.shard_bytes,
                                    packed=packed, prefix="part-00000-", publish=folder.publish, layout=layout)
    try:
        if not packed:
            for start in range(0, len(picks), BLEND_BATCH):
                part = slice(start, start + BLEND_BATCH)
                layout.queue(origin[part], rows[part])
                writer.write_columns(Columns.from_samples(everything.take(picks[part])))
        else:
            def write_packed(tagged: PackedRows) -> None:
                # Each tag sample's ids all hold its position in the mix, so its first one says which sample it is.
                positions = tagged.samples.input_ids[tagged.samples.offsets[:-1]]
                columns = Columns.from_packed(PackedRows(everything.take(picks[positions]), tagged.row_sizes))
                layout.queue(origin[positions], rows[positions])
                writer.write_columns(columns)

            # The packer places samples by their lengths alone, so it packs stand-ins holding their positions.
            packer = Packer(recipe.pack, recipe.pack_window)
            for start in range(0, len(picks), BLEND_BATCH):
                positions = np.arange(start, min(start + BLEND_BATCH, len(picks)), dtype=np.int32)
                lengths = everything.lengths[picks[positions]]
                write_packed(packer.add_samples(Samples(np.repeat(positions, lengths), np.zeros(int(lengths.sum()),
                                                        dtype=np.uint8), lengths)))
            write_packed(packer.flush_samples())
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    return type(writer).finish(folder, shards, packed=packed, layout=layout)


def write_megatron(folder: Folder, sources: list[SourceRows], everything: Samples) -> list[ShardInfo]:
    """One indexed dataset per source holding all its available samples (`part-0000I-shard-00000`), in cache order."""
    shards = []
    for number, source in enumerate(sources):
        writer = WRITERS["megatron"](folder.local, shard_rows=None, prefix=f"part-{number:05d}-",
                                     publish=folder.publish)
        try:
            for start in range(0, len(source.available), BLEND_BATCH):
                part = source.available[start:start + BLEND_BATCH] + source.first
                writer.write_columns(Columns.from_samples(everything.take(part)))
            shards += writer.close()
        except BaseException:
            writer.abort()
            raise
    return shards


def share_warnings(sources: list[SourceRows]) -> list[str]:
    """What a person should know of the shares as drawn: sources repeated past their size, or giving nothing."""
    warnings = []
    for source in sources:
        name, share, available = source.cached.spec.name, source.cached.spec.share, len(source.available)
        if not available:
            warnings.append(f"source {name}: no samples to take (see its cache's manifest for why); it adds nothing")
        elif share.kind in ("samples", "trained_tokens") and len(source.taken) > available:
            warnings.append(f"source {name}: {share.kind} {share.value:,} is more than its {available:,} samples "
                            f"hold, so they repeat ({len(source.taken) / available:.2f} times each on average)")
    return warnings


def mix_manifest(recipe: Recipe, sources: list[SourceRows], shards: list[ShardInfo], warnings: list[str]) -> dict:
    """The mix's manifest: convert's fields (so validate and inspect read a mix as any output), plus `mix`.

    For format megatron the shards hold every available sample and `samples_taken` is what the
    blend weights draw for one pass.
    """
    per_source, total_trained = [], 0
    for source in sources:
        counts = source.cached.manifest["counts"]
        taken = source.taken
        entry = {
            "name": source.cached.spec.name,
            "inputs": list(source.cached.spec.inputs),
            "share": source.cached.spec.share.to_json(),
            "options": source.cached.spec.options.to_json(),
            "cache": str(source.cached.folder),
            "input_versions": source.cached.versions,
            "records_read": counts["read"],
            "rejected": counts["rejected"],
            "dropped": counts["dropped"],
            "samples_available": len(source.available),
            "too_long_for_pack": len(source.lengths) - len(source.available),
            "samples_taken": len(taken),
            "repeat_factor": round(len(taken) / len(source.available), 6) if len(source.available) else 0.0,
            "tokens": int(source.lengths[taken].sum()),
            "trained_tokens": int(source.trained[taken].sum()),
        }
        total_trained += entry["trained_tokens"]
        per_source.append(entry)
    for entry in per_source:
        entry["trained_share"] = round(entry["trained_tokens"] / total_trained, 6) if total_trained else 0.0
    written = sum(s.samples for s in shards)
    rows = sum(s.rows for s in shards)
    tokens = sum(s.tokens for s in shards)
    policies = {entry["options"]["train_on"] for entry in per_source}
    mix = {"recipe": recipe.given, "seed": recipe.seed, "order": "full shuffle", "sources": per_source,
           "samples": sum(e["samples_taken"] for e in per_source),
           "trained_tokens": total_trained, "warnings": warnings}
    if recipe.format == "megatron":
        mix["megatron_data_path"] = [  # a source with no samples has no dataset, and takes no weight
            item for number, entry in enumerate(per_source) if entry["samples_available"]
            for item in (f"{entry['samples_taken'] / max(mix['samples'], 1):.6g}",
                         f"part-{number:05d}-shard-00000.input_ids")]
    return {
        "sftconv_version": __version__,
        "format": recipe.format,
        "inputs": [str(s.cached.folder) for s in sources],
        "shapes": {path: shape for s in sources for path, shape in s.cached.manifest["shapes"].items()},
        "options": {
            "seed": recipe.seed, "pack": recipe.pack, "pack_window": recipe.pack_window,
            "shard_rows": recipe.shard_rows, "shard_bytes": recipe.shard_bytes,
            # "all" where any source trains everything: validate then allows trained headers
            "train_on": "all" if "all" in policies else policies.pop() if len(policies) == 1 else "mixed",
        },
        "tokenizer": sources[0].cached.manifest["tokenizer"],  # the same for all (see open_sources)
        "counts": {"read": written, "written": written, "rejected": 0, "dropped": 0, "rejected_by_reason": {},
                   "dropped_by_reason": {}, "rows": rows, "tokens": tokens,
                   "trained_tokens": sum(s.trained_tokens for s in shards)},
        "lengths": None,
        "packing": None if recipe.pack is None else {
            "seq_len": recipe.pack, "window": recipe.pack_window, "rows": rows, "samples": written,
            "tokens": tokens, "efficiency": round(tokens / (rows * recipe.pack), 6) if rows else 0.0},
        "shards": [s.to_json() for s in shards],
        "mix": mix,
    }

