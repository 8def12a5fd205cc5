"""Where inspect's samples come from: raw files rendered by convert's own pipeline, or stored shards decoded.

Positions count samples, not records: rejected records are skipped, so `--index 5` on a raw file and
on the folder `convert` wrote from it show the same sample. `--sample` draws with the same reservoir
algorithm on both, so the same seed picks the same positions.
"""

from __future__ import annotations

import glob
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..conversation import Location, Rejected
from ..pipeline import Source, SourceOptions, encode_batches, open_source
from ..template import Encoded
from ..tokenizer import DEFAULT_TOKENIZER_NAME, Tokenizer
from ..writers import MANIFEST_FILE

STORED_COLUMNS = ["input_ids", "loss_mask"]  # of the shards `convert` writes (writers/parquet.py)


class InspectError(Exception):
    """Inputs that cannot be shown; the message says what to do."""


class SampleIndexError(InspectError):
    """An `--index` past the last sample."""

    def __init__(self, index: int, total: int):
        super().__init__(f"there is no sample {index}: the input holds {total:,} samples (positions 0 to {total - 1:,})"
                         if total else f"there is no sample {index}: the input holds no samples")
        self.index = index
        self.total = total


@dataclass(frozen=True, slots=True)
class Shown:
    """A sample picked for display and its 0-based position among the input's samples."""

    index: int
    sample: Encoded


def uniform(rng: random.Random) -> float:
    """A uniform float in (0, 1): never 0, whose log would fail."""
    while not (u := rng.random()):
        pass
    return u


def log1mexp(x: float) -> float:
    """log(1 - e**x) for x < 0, accurate both near 0 and far below it."""
    return math.log(-math.expm1(x)) if x > -math.log(2) else math.log1p(-math.exp(x))


def reservoir_picks(k: int, seed: int) -> Iterator[tuple[int, int]]:
    """Reservoir sampling (Li's Algorithm L): the (position, slot) of each pick, in position order, forever.

    A stream of n items keeps, in slot s, the last pick at a position below n with slot s; it skips
    ahead instead of drawing a number per item, so a known length costs O(k log(n/k)) draws.
    """
    rng = random.Random(seed)
    yield from ((i, i) for i in range(k))
    position, log_w = k - 1, math.log(uniform(rng)) / k
    while True:
        position += math.floor(math.log(uniform(rng)) / log1mexp(log_w)) + 1
        yield position, rng.randrange(k)
        log_w += math.log(uniform(rng)) / k


def sample_positions(total: int, k: int, seed: int) -> list[int]:
    """The positions `reservoir_picks` keeps from `total` items, in order."""
    slots = {}
    for position, slot in reservoir_picks(k, seed):
        if position >= total:
            break
        slots[slot] = position
    return sorted(slots.values())


class RawSamples:
    """The samples convert would write from raw files, streamed; rejected records are counted, not shown."""

    def __init__(self, source: Source):
        self.source = source
        self.tokenizer = source.tokenizer
        self.rejected = 0  # records read so far that did not become samples
        self.first_rejected: Rejected | None = None

    @property
    def name(self) -> str:
        return ", ".join(map(str, self.source.paths))

    def _results(self) -> Iterator[list[Encoded | Rejected]]:
        source = self.source
        return encode_batches(source.records(), source.shape, source.template)

    def _skip(self, rejected: Rejected) -> None:
        self.rejected += 1
        self.first_rejected = self.first_rejected or rejected

    def __iter__(self) -> Iterator[Encoded]:
        """Every sample in input order; a rejected record is counted when the stream passes it."""
        for results in self._results():
            for item in results:
                if isinstance(item, Encoded):
                    yield item
                else:
                    self._skip(item)

    def at(self, indices: list[int]) -> list[Shown]:
        """The samples at these positions, in the order asked, reading only as far as the last one."""
        wanted, found = set(indices), {}
        read = 0
        for position, sample in enumerate(self):
            read = position + 1
            if position in wanted:
                found[position] = sample
                if len(found) == len(wanted):
                    break
        for index in indices:
            if index not in found:
                raise SampleIndexError(index, read)
        return [Shown(i, found[i]) for i in indices]

    def head(self, count: int) -> list[Shown]:
        shown = []
        for index, sample in enumerate(self):
            if index == count:
                break
            shown.append(Shown(index, sample))
        return shown

    def sample(self, k: int, seed: int) -> list[Shown]:
        """k samples drawn uniformly in one pass, holding only k in memory; in input order."""
        picks = reservoir_picks(k, seed)
        next_position, slot = next(picks)
        kept = {}
        for position, sample in enumerate(self):
            if position == next_position:
                kept[slot] = Shown(position, sample)
                next_position, slot = next(picks)
        return sorted(kept.values(), key=lambda shown: shown.index)

    def sizes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(token counts, trained-token counts) of every sample, a batch at a time."""
        for results in self._results():
            for item in results:
                if isinstance(item, Rejected):
                    self._skip(item)
            samples = [item for item in results if isinstance(item, Encoded)]
            yield (np.array([len(s.input_ids) for s in samples], dtype=np.int64),
                   np.array([s.trained_tokens for s in samples], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class RowGroup:
    """One Parquet row group of a shard and the position of its first row among all samples."""

    path: Path
    group: int
    start: int
    first_row: int  # within its shard


class StoredSamples:
    """The samples in convert's shards, decoded; read one row group at a time, never a whole file."""

    def __init__(self, shards: list[Path], tokenizer: Tokenizer, name: str, rejected: int = 0):
        self.tokenizer = tokenizer
        self.name = name
        self.rejected = rejected  # records convert did not write (its rejects.jsonl), where known
        self.groups: list[RowGroup] = []
        start = 0
        for path in shards:
            metadata = pq.read_metadata(path)
            first_row = 0
            for group in range(metadata.num_row_groups):
                self.groups.append(RowGroup(path, group, start, first_row))
                rows = metadata.row_group(group).num_rows
                start += rows
                first_row += rows
        self.total = start
        self._starts = [g.start for g in self.groups]

    def _read(self, group: RowGroup, columns: list[str]):
        return pq.ParquetFile(group.path).read_row_group(group.group, columns=columns)

    def _decode(self, group: RowGroup) -> list[Encoded]:
        """A row group's samples, each located at its shard and row."""
        table = self._read(group, STORED_COLUMNS)
        return [Encoded(ids, mask, Location(str(group.path), row=group.first_row + i))
                for i, (ids, mask) in enumerate(zip(table.column("input_ids").to_pylist(),
                                                    table.column("loss_mask").to_pylist()))]

    def at(self, indices: list[int]) -> list[Shown]:
        """The samples at these positions, in the order asked, reading only their row groups."""
        for index in indices:
            if index >= self.total:
                raise SampleIndexError(index, self.total)
        decoded: dict[int, list[Encoded]] = {}
        shown = []
        for index in indices:
            number = bisect_right(self._starts, index) - 1
            if number not in decoded:
                decoded[number] = self._decode(self.groups[number])
            shown.append(Shown(index, decoded[number][index - self.groups[number].start]))
        return shown

    def head(self, count: int) -> list[Shown]:
        return self.at(list(range(min(count, self.total))))

    def sample(self, k: int, seed: int) -> list[Shown]:
        """The same positions `RawSamples.sample` keeps, found from the row count without reading rows."""
        return self.at(sample_positions(self.total, k, seed))

    def sizes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(token counts, trained-token counts) per row group, from the loss masks alone."""
        for group in self.groups:
            masks = self._read(group, ["loss_mask"]).column("loss_mask").combine_chunks()
            lengths = masks.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
            values = masks.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            ends = np.cumsum(lengths)
            totals = np.concatenate(([0], np.cumsum(values)))
            yield lengths, totals[ends] - totals[ends - lengths]


def read_manifest(folder: Path) -> dict | None:
    """A convert output's manifest, or None where the folder has none."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InspectError(f"{path}: not a readable manifest ({error})") from error


def is_shard(path: Path) -> bool:
    """A Parquet file holding convert's token columns (a raw Parquet dataset has other columns)."""
    if not (path.is_file() and path.suffix == ".parquet"):
        return False
    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError):  # not Parquet after all
        return False
    return all(column in names for column in STORED_COLUMNS)


def stored_shards(item: str) -> tuple[list[Path], Path] | None:
    """The shards an input names and the folder they sit in, or None if it is raw data."""
    path = Path(item)
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest is None:
            shards = sorted(path.glob("shard-*.parquet"))
            return (shards, path) if shards and all(map(is_shard, shards)) else None
        shards = [path / shard["file"] for shard in manifest.get("shards", [])]
        for shard in shards:
            if not shard.is_file():
                raise InspectError(f"{shard} is listed in {path / MANIFEST_FILE} but missing")
        return shards, path
    matches = [Path(m) for m in sorted(glob.glob(item))] if glob.has_magic(item) else [path]
    if matches and all(is_shard(m) for m in matches):
        return matches, matches[0].parent
    return None


def stored_tokenizer(manifest: dict | None, given: str | None, where: Path) -> Tokenizer:
    """The tokenizer the shards were written with: the manifest's, checked against `--tokenizer` if given."""
    recorded = (manifest or {}).get("tokenizer", {})
    name = given or recorded.get("name", DEFAULT_TOKENIZER_NAME)
    path = None if name == DEFAULT_TOKENIZER_NAME else name
    if path is not None and not Path(path).is_file():
        raise InspectError(f"{where} was written with the tokenizer {path}, which is not there; "
                           "pass --tokenizer with that file")
    try:
        tokenizer = Tokenizer(path)
    except (OSError, ValueError) as error:
        raise InspectError(f"cannot load tokenizer: {error}") from error
    if recorded.get("sha256") not in (None, tokenizer.sha256):
        raise InspectError(f"{where} was written with the tokenizer {recorded.get('name')} "
                           f"(sha256 {recorded['sha256'][:12]}...), but {tokenizer.name} is a different file "
                           f"(sha256 {tokenizer.sha256[:12]}...); pass --tokenizer with the file convert used")
    return tokenizer


def open_samples(inputs: list[str], options: SourceOptions) -> RawSamples | StoredSamples:
    """Samples from raw files (through convert's pipeline) or from convert's output, whichever the inputs are.

    Raises:
        InspectError: raw files mixed with convert outputs, a broken output, or the wrong tokenizer.
        ConvertError: raw inputs that convert itself would refuse.
    """
    stored = [stored_shards(item) for item in inputs]
    if not any(stored):
        return RawSamples(open_source(inputs, options))
    if not all(stored):
        raw = ", ".join(item for item, found in zip(inputs, stored) if not found)
        raise InspectError(f"cannot mix convert outputs with raw files ({raw}); inspect them one kind at a time")
    folders = {folder for _, folder in stored}
    if len(folders) > 1:
        raise InspectError(f"shards from more than one output ({', '.join(map(str, sorted(folders)))}); "
                           "inspect one output at a time")
    folder = folders.pop()
    manifest = read_manifest(folder)
    shards = list(dict.fromkeys(shard for found, _ in stored for shard in found))
    tokenizer = stored_tokenizer(manifest, options.tokenizer, folder)
    whole_output = manifest is not None and any(Path(item).is_dir() for item in inputs)
    rejected = manifest.get("counts", {}).get("rejected", 0) if whole_output else 0  # unknown per shard
    return StoredSamples(shards, tokenizer, ", ".join(inputs), rejected)
