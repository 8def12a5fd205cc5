"""Where inspect's samples come from: raw files rendered by convert's own pipeline, or stored shards decoded.

Positions count samples, not records or rows: rejected records are skipped and a packed row's samples
count one by one, so `--index 5` on a raw file and on the unpacked folder `convert` wrote from it, in
any format, show the same sample. `--sample` draws with the same reservoir algorithm on both, so the
same seed picks the same positions. (Packing reorders samples, so a packed output's positions follow
its rows, not the input.)
"""

from __future__ import annotations

import glob
import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..conversation import Location, Rejected
from ..pairs import EncodedPair
from ..pipeline import InputError, Source, SourceOptions, encode_batches, open_source
from ..template import Encoded
from ..tokenizer import DEFAULT_TOKENIZER_NAME, Tokenizer
from ..validate.formats import SHARD_READERS, ShardReadError, TokenBatch
from ..validate.pairs import PairBatch, PairShards
from ..validate.shards import ManifestError, load_manifest
from ..writers import MANIFEST_FILE

STORED_COLUMNS = ["input_ids", "loss_mask"]  # of the Parquet shards `convert` writes (writers/arrow.py)


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
    """A sample picked for display, its 0-based position among the input's samples, and its place in a packed row."""

    index: int
    sample: Encoded
    place: int | None = None
    origin: str | None = None  # in a mix: the source and the sample's row in its cache

    @property
    def where(self) -> str:
        """Where the sample is: `file:line`, `shard[row N]`, or `shard[row N, sample K]` in a packed row.

        A mix's sample adds `from SOURCE row R`.
        """
        location = self.sample.location
        where = str(location) if self.place is None else f"{location.source}[row {location.row}, sample {self.place}]"
        return where if self.origin is None else f"{where} from {self.origin}"


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
                if isinstance(item, Rejected):
                    self._skip(item)
                else:
                    yield item

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
            samples = [item for item in results if not isinstance(item, Rejected)]
            yield (np.array([len(s.input_ids) for s in samples], dtype=np.int64),
                   np.array([s.trained_tokens for s in samples], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class StoredShard:
    """One shard's files and how many samples it holds."""

    files: tuple[Path, ...]
    samples: int


@dataclass(frozen=True)
class Stored:
    """Shards of one convert output that an input names, the folder they sit in and its manifest (None if lost)."""

    folder: Path
    manifest: dict | None
    shards: list[StoredShard]
    format: str
    packed: bool


class StoredSamples:
    """The samples in convert's shards, of any output format, decoded a batch of rows at a time, never a whole file.

    A packed row's samples are shown one by one, so positions count samples as in raw input, in the
    order packing laid them out. Shards are read through validate's readers, one per format.
    """

    def __init__(self, stored: Stored, tokenizer: Tokenizer, name: str, rejected: int = 0, *, note: str | None = None):
        self.stored = stored
        self.note = note  # said once on stderr: e.g. the shards are shown with another tokenizer than the one given
        self.reader = SHARD_READERS[stored.format](packed=stored.packed)
        self.tokenizer = tokenizer
        self.name = name
        self.rejected = rejected  # records convert did not write (its rejects.jsonl), where known
        self._starts = [0]
        for shard in stored.shards:
            self._starts.append(self._starts[-1] + shard.samples)
        self.total = self._starts.pop()

    def _batches(self, shard: StoredShard) -> Iterator[TokenBatch]:
        """The shard's rows a batch at a time; a shard that cannot be read is an InspectError naming the file."""
        try:
            yield from self.reader.batches(list(shard.files))
        except ShardReadError as error:
            raise InspectError(f"{error.path or shard.files[0]}: {error}; `sftconv validate {self.stored.folder}` "
                               "checks every shard") from error

    def _split(self, batch: TokenBatch, shard: StoredShard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The batch's samples: bounds, rows and places in their rows (see `TokenBatch.samples`)."""
        try:
            return batch.samples()
        except ShardReadError as error:
            raise InspectError(f"{self.reader.main_file(list(shard.files))}: {error}; "
                               f"`sftconv validate {self.stored.folder}` says more") from error

    def at(self, indices: list[int]) -> list[Shown]:
        """The samples at these positions, in the order asked, reading only their shards, each up to the last one.

        Only the wanted samples are decoded; the rows before them are read, not turned into lists.
        """
        for index in indices:
            if index >= self.total:
                raise SampleIndexError(index, self.total)
        wanted = sorted(set(indices))
        found: dict[int, Shown] = {}
        for number in sorted({bisect_right(self._starts, index) - 1 for index in wanted}):
            shard = self.stored.shards[number]
            main = str(self.reader.main_file(list(shard.files)))
            position = self._starts[number]
            last = wanted[bisect_left(wanted, position + shard.samples) - 1]
            for batch in self._batches(shard):
                offsets, rows, places = self._split(batch, shard)
                end = position + len(rows)
                for index in wanted[bisect_left(wanted, position):bisect_left(wanted, end)]:
                    sample = index - position
                    start, stop = offsets[sample], offsets[sample + 1]
                    encoded = Encoded(batch.input_ids.values[start:stop].tolist(),
                                      batch.loss_mask.values[start:stop].tolist(),
                                      Location(main, row=batch.first_row + int(rows[sample])))
                    found[index] = Shown(index, encoded, int(places[sample]) if self.stored.packed else None)
                position = end
                if position > last:
                    break
        for index in indices:
            if index not in found:
                raise InspectError(f"sample {index} is not in the shards, though the manifest counts it; "
                                   f"`sftconv validate {self.stored.folder}` says what is wrong")
        return [found[index] for index in indices]

    def head(self, count: int) -> list[Shown]:
        return self.at(list(range(min(count, self.total))))

    def sample(self, k: int, seed: int) -> list[Shown]:
        """The same positions `RawSamples.sample` keeps, found from the sample count without reading rows."""
        return self.at(sample_positions(self.total, k, seed))

    def sizes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(token counts, trained-token counts) of every sample, a batch of rows at a time."""
        for shard in self.stored.shards:
            for batch in self._batches(shard):
                offsets = self._split(batch, shard)[0]
                trained = np.concatenate([[0], np.cumsum(batch.loss_mask.values, dtype=np.int64)])
                yield np.diff(offsets), trained[offsets[1:]] - trained[offsets[:-1]]


class StoredPairs(StoredSamples):
    """The preference samples in convert's shards (pairs or KTO rows), read through validate's pair reader.

    Positions count rows, one pair (or KTO sample) each; they are found by reading the rows in order.
    """

    def __init__(self, stored: Stored, tokenizer: Tokenizer, name: str, rejected: int = 0, *, note: str | None = None):
        super().__init__(stored, tokenizer, name, rejected, note=note)
        self.reader = PairShards(self.reader, stored.manifest["layout"])
        self.first_rejected = None

    def _results(self) -> Iterator[list[EncodedPair]]:
        for shard in self.stored.shards:
            main = self.reader.main_file(list(shard.files))
            for batch in self._batches(shard):
                yield [stored_pair(batch, row, Location(str(main), row=batch.first_row + row))
                       for row in range(batch.rows)]

    __iter__, at, head, sample, sizes, _skip = (RawSamples.__iter__, RawSamples.at, RawSamples.head,
                                                RawSamples.sample, RawSamples.sizes, RawSamples._skip)


def stored_pair(batch: PairBatch, row: int, location: Location) -> EncodedPair:
    """One stored row as the pair `inspect` shows."""
    sides = [Encoded(*(values.tolist() for values in batch.side(row, which)), location)
             for which in range(1 if batch.chosen_length is None else 2)]
    label = None if batch.label is None else bool(batch.label[row])
    return EncodedPair(sides[0], sides[1] if len(sides) == 2 else None, int(batch.prompt_length[row]), label)


def read_manifest(folder: Path) -> dict | None:
    """A convert output's manifest, checked as validate checks it, or None where the folder has none."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = load_manifest(path)
    except ManifestError as error:
        raise InspectError(f"{path}: {error}") from error
    if manifest["format"] not in SHARD_READERS:
        raise InspectError(f"{path}: format {manifest['format']!r} is not one inspect reads "
                           f"({', '.join(SHARD_READERS)})")
    return manifest


def is_shard(path: Path) -> bool:
    """A Parquet file holding convert's token columns (a raw Parquet dataset has other columns)."""
    if not (path.is_file() and path.suffix == ".parquet"):
        return False
    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError):  # not Parquet after all
        return False
    return all(column in names for column in STORED_COLUMNS)


def from_manifest(folder: Path, manifest: dict, names: set[str] | None = None) -> Stored:
    """The shards the manifest lists (only those with a file in `names`, if given), checked to be there."""
    shards = []
    for shard in manifest["shards"]:
        files = tuple(folder / entry["file"] for entry in shard["files"])
        if names is not None and not names.intersection(f.name for f in files):
            continue
        for path in files:
            if not path.is_file():
                raise InspectError(f"{path} is listed in {folder / MANIFEST_FILE} but missing")
        shards.append(StoredShard(files, shard["samples"]))
    return Stored(folder, manifest, shards, manifest["format"], manifest["packing"] is not None)


def parquet_without_manifest(paths: list[Path], folder: Path) -> Stored | None:
    """Parquet shards whose manifest is gone: packed if they have `seq_lens`; None unless all are convert's."""
    if not paths or not all(map(is_shard, paths)):
        return None
    packed = "seq_lens" in pq.read_schema(paths[0]).names
    shards = []
    for path in paths:
        if packed:
            samples = len(pq.read_table(path, columns=["seq_lens"]).column(0).combine_chunks().flatten())
        else:
            samples = pq.read_metadata(path).num_rows
        shards.append(StoredShard((path,), samples))
    return Stored(folder, None, shards, "parquet", packed)


def stored_shards(item: str) -> Stored | None:
    """The stored shards an input names (a folder convert wrote, or some of its shard files), or None if raw data."""
    path = Path(item)
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest is None:
            return parquet_without_manifest(sorted(path.glob("part-*.parquet")), path)
        return from_manifest(path, manifest)
    matches = [Path(m) for m in sorted(glob.glob(item))] if glob.has_magic(item) else [path]
    if not matches or not all(m.is_file() for m in matches) or len({m.parent for m in matches}) > 1:
        return None
    folder = matches[0].parent
    # Only convert's own file names send us to a manifest: raw data may sit beside another tool's.
    manifest = read_manifest(folder) if all(m.name.startswith("part-") for m in matches) else None
    if manifest is None:
        return parquet_without_manifest(matches, folder)
    stored = from_manifest(folder, manifest, {m.name for m in matches})
    listed = {f.name for shard in stored.shards for f in shard.files}
    return stored if all(m.name in listed for m in matches) else None


def stored_tokenizer(manifest: dict | None, given: str | None, where: Path) -> tuple[Tokenizer, str | None]:
    """The tokenizer the shards were written with, and a note when `--tokenizer` named another one.

    A given tokenizer is used when it is the recorded one (the same fingerprint, or for manifests from
    before fingerprints, the same file); otherwise the recorded one is, where it can be found.
    """
    recorded = (manifest or {}).get("tokenizer", {})
    name = recorded.get("name", DEFAULT_TOKENIZER_NAME)
    if given is not None:
        tokenizer = load_for_inspect(given)
        if same_tokenizer(recorded, tokenizer):
            return tokenizer, None
        try:
            found = load_for_inspect(None if name == DEFAULT_TOKENIZER_NAME else name)
        except InspectError:
            found = None
        if found is None or not same_tokenizer(recorded, found):
            raise InspectError(f"{where} was written with the tokenizer {name} (fingerprint "
                               f"{recorded_id(recorded)[:12]}...), but {tokenizer.name} is a different tokenizer "
                               f"({tokenizer.fingerprint[:12]}...); pass --tokenizer with the one convert used")
        return found, (f"showing {where} with the tokenizer it was written with, {name}: --tokenizer {given} "
                       "is a different tokenizer")
    tokenizer = load_for_inspect(None if name == DEFAULT_TOKENIZER_NAME else name, where)
    if not same_tokenizer(recorded, tokenizer):
        raise InspectError(f"{where} was written with the tokenizer {name} (fingerprint "
                           f"{recorded_id(recorded)[:12]}...), but {tokenizer.name} is now a different tokenizer; "
                           "pass --tokenizer with the one convert used")
    return tokenizer, None


def load_for_inspect(name: str | None, where: Path | None = None) -> Tokenizer:
    """A tokenizer by name, or InspectError saying how to give the right one."""
    try:
        return Tokenizer(name)
    except FileNotFoundError as error:
        if where is not None:
            raise InspectError(f"{where} was written with the tokenizer {name}, which is not there; "
                               "pass --tokenizer with that file") from error
        raise InspectError(f"cannot load tokenizer: {error}") from error
    except (OSError, ValueError) as error:
        raise InspectError(f"cannot load tokenizer: {error}") from error


def same_tokenizer(recorded: dict, tokenizer: Tokenizer) -> bool:
    """Whether a manifest's tokenizer record names `tokenizer`: by fingerprint, or by file for older manifests."""
    if "fingerprint" in recorded:
        return recorded["fingerprint"] == tokenizer.fingerprint
    return recorded.get("sha256") in (None, tokenizer.sha256)


def recorded_id(recorded: dict) -> str:
    """What identifies a recorded tokenizer: its fingerprint, or the file's sha256 for older manifests."""
    return recorded.get("fingerprint") or recorded.get("sha256") or "?"


def open_samples(inputs: list[str], options: SourceOptions) -> RawSamples | StoredSamples:
    """Samples from raw files (through convert's pipeline) or from convert's output, whichever the inputs are.

    Raises:
        InputError: raw files mixed with convert outputs, shards of several outputs, or raw inputs named
            wrongly (missing, of an unknown type, no shape fits).
        InspectError: a broken output, or the wrong tokenizer.
        ConvertError: raw inputs that convert itself would refuse.
    """
    stored = [stored_shards(item) for item in inputs]
    if not any(stored):
        return RawSamples(open_source(inputs, options))
    if not all(stored):
        raw = ", ".join(item for item, found in zip(inputs, stored) if not found)
        raise InputError(f"cannot mix convert outputs with raw files ({raw}); inspect them one kind at a time")
    folders = {found.folder for found in stored}
    if len(folders) > 1:
        raise InputError(f"shards from more than one output ({', '.join(map(str, sorted(folders)))}); "
                         "inspect one output at a time")
    first = stored[0]
    shards = list(dict.fromkeys(shard for found in stored for shard in found.shards))
    tokenizer, note = stored_tokenizer(first.manifest, options.tokenizer, first.folder)
    whole_output = first.manifest is not None and any(Path(item).is_dir() for item in inputs)
    rejected = first.manifest["counts"]["rejected"] if whole_output else 0  # unknown per shard
    kind = StoredPairs if (first.manifest or {}).get("layout", "sft") != "sft" else StoredSamples
    return kind(replace(first, shards=shards), tokenizer, ", ".join(inputs), rejected, note=note)
