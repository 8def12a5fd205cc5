"""Readers of finished shards, one per output format: a shard's files -> batches of flat token arrays.

A reader knows one file layout and nothing about what makes a row right (rows.py knows that). Both
`validate` and `inspect` read shards through these, so reading another output format means adding one
small class here, registered by the name the manifest's `format` field carries. Every reader holds a
bounded number of rows at a time (as the writers wrote them: 1,024 rows or 1Mi tokens), never a shard.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..writers.megatron import DATASETS, DTYPE_CODES, INDEX_MAGIC, INDEX_VERSION
from ..writers.shards import BATCH_ROWS, BATCH_TOKENS, offsets_of

TOKEN_COLUMNS = ("input_ids", "labels", "loss_mask")
PACKING_COLUMNS = ("position_ids", "seq_lens")


class ShardReadError(Exception):
    """A shard that cannot be read to the end: corrupt, truncated, or missing a column; `path` is the file at fault."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class ListColumn:
    """A column of integer lists as one flat array; row i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def slice(self, start: int, stop: int) -> ListColumn:
        """Rows `start:stop`, as views."""
        first, last = self.offsets[start], self.offsets[stop]
        return ListColumn(self.values[first:last], self.offsets[start:stop + 1] - first)


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """Consecutive rows of one shard; each column keeps its own offsets, because their agreeing is checked.

    A column the format does not store is None: `labels` in Megatron's format (they are the ids where
    `loss_mask` is 1), `length` there too, `position_ids` there and whenever unpacked, `seq_lens`
    whenever unpacked (each row is then one sample).
    """

    first_row: int
    input_ids: ListColumn
    labels: ListColumn | None
    loss_mask: ListColumn
    length: np.ndarray | None = None
    position_ids: ListColumn | None = None
    seq_lens: ListColumn | None = None

    @property
    def rows(self) -> int:
        return len(self.input_ids.offsets) - 1

    def slice(self, start: int, stop: int) -> TokenBatch:
        """Rows `start:stop`, as views."""
        def part(column: ListColumn | None) -> ListColumn | None:
            return None if column is None else column.slice(start, stop)

        return TokenBatch(self.first_row + start, part(self.input_ids), part(self.labels), part(self.loss_mask),
                          None if self.length is None else self.length[start:stop], part(self.position_ids),
                          part(self.seq_lens))

    def chunks(self, tokens: int) -> Iterator[TokenBatch]:
        """The batch in runs of rows of at most `tokens` input ids each (at least one row)."""
        offsets, start = self.input_ids.offsets, 0
        while start < self.rows:
            stop = int(np.searchsorted(offsets, offsets[start] + tokens, side="right")) - 1
            stop = min(max(stop, start + 1), self.rows)
            yield self.slice(start, stop)
            start = stop

    def bad_seq_lens(self) -> np.ndarray:
        """Per row: its `seq_lens` are empty, hold a sample under one token, or do not add up to its tokens."""
        if self.seq_lens is None:
            return np.zeros(self.rows, dtype=bool)
        lengths, offsets = self.seq_lens.values.astype(np.int64), self.seq_lens.offsets
        sums = np.concatenate([[0], np.cumsum(lengths)])
        empties = np.concatenate([[0], np.cumsum(lengths < 1)])
        return ((sums[offsets[1:]] - sums[offsets[:-1]] != self.input_ids.lengths)
                | (empties[offsets[1:]] > empties[offsets[:-1]]) | (self.seq_lens.lengths == 0))

    def samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every sample's bounds in the flat arrays, its row, and its place in the row: (offsets, rows, places).

        Raises:
            ShardReadError: a row's `seq_lens` do not add up to its tokens (`validate` names every such row).
        """
        rows = np.arange(self.rows)
        if self.seq_lens is None:
            return self.input_ids.offsets, rows, np.zeros(self.rows, dtype=np.int64)
        bad = np.flatnonzero(self.bad_seq_lens())
        if len(bad):
            raise ShardReadError(f"row {self.first_row + int(bad[0])}: its seq_lens do not add up to its tokens")
        counts = self.seq_lens.lengths
        places = np.arange(len(self.seq_lens.values)) - np.repeat(self.seq_lens.offsets[:-1], counts)
        return offsets_of(self.seq_lens.values.astype(np.int64)), np.repeat(rows, counts), places


class ShardReader:
    """Reads one format's shards. `suffixes` names each file of a shard by how its name ends, main file first.

    Args:
        packed: the output was packed (the manifest's `packing`), so rows carry several samples.
    """

    name = ""
    suffixes: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()  # files a loader globbing the folder would pick up
    side_files: tuple[str, ...] = ()  # files beside the shards that loaders read (not in the manifest's shards)

    def __init__(self, *, packed: bool):
        self.packed = packed

    def files(self, paths: list[Path]) -> dict[str, Path]:
        """A shard's files by suffix.

        Raises:
            ShardReadError: a file of the layout is not among them.
        """
        found = {}
        for suffix in self.suffixes:
            matches = [p for p in paths if p.name.endswith(suffix)]
            if len(matches) != 1:
                raise ShardReadError(f"the manifest lists {len(matches)} *{suffix} files for this shard, not one")
            found[suffix] = matches[0]
        return found

    def main_file(self, paths: list[Path]) -> Path:
        """The file that rows of the shard are located in."""
        return self.files(paths)[self.suffixes[0]]

    def batches(self, paths: list[Path]) -> Iterator[TokenBatch]:
        """The shard's rows, a batch at a time.

        Raises:
            ShardReadError: the files are corrupt, cut short or not of this format.
        """
        raise NotImplementedError

    def check_side_files(self, folder: Path, shard_files: list[str]) -> list[tuple[Path, str]]:
        """Problems with the files beside the shards that loaders read, as (file, detail)."""
        return []

    def check(self, batch: TokenBatch, rules) -> dict:
        """The findings of every bad row in the batch (see rows.py), keyed by row number in the shard."""
        from .rows import check_rows  # rows.py builds on this module's TokenBatch

        return check_rows(batch, rules)

    @property
    def columns(self) -> tuple[str, ...]:
        """The list columns a shard of this output stores."""
        return TOKEN_COLUMNS + (PACKING_COLUMNS if self.packed else ())


def check_arrow_schema(schema, columns: tuple[str, ...]) -> None:
    """Every column there, each a list of integers, and `length` an integer."""
    import pyarrow as pa

    missing = [c for c in (*columns, "length") if c not in schema.names]
    if missing:
        raise ShardReadError(f"no {', '.join(missing)} column (columns: {', '.join(schema.names)})")
    for name in (*columns, "length"):
        kind = schema.field(name).type
        ok = pa.types.is_integer(kind) if name == "length" else (
            pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_integer(kind.value_type)
        if not ok:
            wanted = "an integer" if name == "length" else "a list of integers"
            raise ShardReadError(f"column {name} is {kind}, not {wanted}")


def arrow_batch(table, first_row: int, columns: tuple[str, ...]) -> TokenBatch:
    """Flat numpy views of an Arrow table's list columns."""
    flat = {}
    for name in columns:
        column = table.column(name).combine_chunks()
        if column.null_count:
            raise ShardReadError(f"{column.null_count} null {name} value(s) at rows from {first_row}")
        offsets = column.offsets.to_numpy()
        flat[name] = ListColumn(column.flatten().to_numpy(), (offsets - offsets[0]).astype(np.int64))
    length = table.column("length").to_numpy()
    return TokenBatch(first_row, flat["input_ids"], flat["labels"], flat["loss_mask"], length,
                      flat.get("position_ids"), flat.get("seq_lens"))


class ParquetShards(ShardReader):
    """Reads `part-00000-shard-00000.parquet`, ... one row group at a time."""

    name = "parquet"
    suffixes = (".parquet",)
    patterns = ("*.parquet",)

    def batches(self, paths: list[Path]) -> Iterator[TokenBatch]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.main_file(paths)
        try:
            file = pq.ParquetFile(path)
            check_arrow_schema(file.schema_arrow, self.columns)
            first_row = 0
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=[*self.columns, "length"])
                yield arrow_batch(table, first_row, self.columns)
                first_row += table.num_rows
        except (pa.ArrowException, OSError, ValueError) as error:
            raise ShardReadError(f"cannot read as Parquet: {error}", path) from error


class HfShards(ShardReader):
    """Reads the Arrow stream files of a `datasets` folder one record batch at a time, and checks its `state.json`."""

    name = "hf"
    suffixes = (".arrow",)
    patterns = ("*.arrow",)
    side_files = ("state.json", "dataset_info.json")

    def batches(self, paths: list[Path]) -> Iterator[TokenBatch]:
        import pyarrow as pa

        path = self.main_file(paths)
        try:
            with pa.OSFile(str(path)) as source:  # read, not mapped: memory holds one batch
                stream = pa.ipc.open_stream(source)
                check_arrow_schema(stream.schema, self.columns)
                first_row = 0
                for batch in stream:
                    yield arrow_batch(pa.Table.from_batches([batch]), first_row, self.columns)
                    first_row += batch.num_rows
        except (pa.ArrowException, OSError, ValueError) as error:
            raise ShardReadError(f"cannot read as an Arrow stream: {error}", path) from error

    def check_side_files(self, folder: Path, shard_files: list[str]) -> list[tuple[Path, str]]:
        """`load_from_disk` reads the files `state.json` lists: they must be the manifest's shards, in order."""
        problems = []
        for name in self.side_files:
            path = folder / name
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                problems.append((path, "missing: datasets.load_from_disk needs it"))
                continue
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                problems.append((path, f"not readable JSON: {error}"))
                continue
            if name == "state.json":
                entries = data.get("_data_files") if isinstance(data, dict) else None
                listed = [e.get("filename") if isinstance(e, dict) else e for e in entries or []]
                arrow = [f for f in shard_files if f.endswith(".arrow")]
                if listed != arrow:
                    first = next(i for i in range(max(len(listed), len(arrow)))
                                 if listed[i:i + 1] != arrow[i:i + 1])
                    problems.append((path, f"lists {len(listed):,} data files for the manifest's {len(arrow):,} "
                                           f"shards; number {first + 1} is {nth(listed, first)}, in the manifest "
                                           f"{nth(arrow, first)}: datasets.load_from_disk would not read what the "
                                           "manifest describes"))
        return problems


def nth(names: list, index: int) -> str:
    """A list's item at `index`, quoted, or "nothing" past its end."""
    return repr(names[index]) if index < len(names) else "nothing"


class JsonlShards(ShardReader):
    """Reads `part-00000-shard-00000.jsonl`, ... a bounded number of lines at a time."""

    name = "jsonl"
    suffixes = (".jsonl",)
    patterns = ("part-*.jsonl",)  # not `*.jsonl`: that would also match rejects.jsonl

    def batches(self, paths: list[Path]) -> Iterator[TokenBatch]:
        path = self.main_file(paths)
        rows: list[dict[str, np.ndarray]] = []
        first_row = tokens = 0
        try:
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if not line.endswith("\n"):  # every line convert writes ends with one
                        raise ShardReadError(f"line {number} does not end with a newline: cut short?")
                    rows.append(self._row(line, number))
                    tokens += len(rows[-1]["input_ids"])
                    if len(rows) == BATCH_ROWS or tokens >= BATCH_TOKENS:
                        yield self._batch(rows, first_row)
                        first_row, rows, tokens = first_row + len(rows), [], 0
        except (OSError, UnicodeDecodeError) as error:
            raise ShardReadError(f"cannot read: {error}", path) from error
        except ShardReadError as error:
            raise ShardReadError(str(error), path) from error
        if rows:
            yield self._batch(rows, first_row)

    def _row(self, line: str, number: int) -> dict[str, np.ndarray]:
        """One line's columns as arrays, every value checked to be an integer."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ShardReadError(f"line {number} is not JSON ({error}): cut short?") from error
        if not isinstance(data, dict):
            raise ShardReadError(f"line {number} is not a JSON object")
        row = {}
        for name in (*self.columns, "length"):
            if name not in data:
                raise ShardReadError(f"line {number} has no {name} (keys: {', '.join(data)})")
            try:
                values = np.array(data[name])
            except (ValueError, OverflowError):
                values = np.array([None])
            if values.ndim != (0 if name == "length" else 1) or (values.size and values.dtype.kind not in "iu"):
                wanted = "an integer" if name == "length" else "a list of integers"
                raise ShardReadError(f"line {number}: {name} is not {wanted}")
            row[name] = values.astype(np.int64)
        return row

    def _batch(self, rows: list[dict[str, np.ndarray]], first_row: int) -> TokenBatch:
        def column(name: str) -> ListColumn:
            parts = [row[name] for row in rows]
            return ListColumn(np.concatenate(parts), offsets_of(np.array([len(p) for p in parts])))

        flat = {name: column(name) for name in self.columns}
        return TokenBatch(first_row, flat["input_ids"], flat["labels"], flat["loss_mask"],
                          np.array([row["length"] for row in rows]), flat.get("position_ids"), flat.get("seq_lens"))


@dataclass(frozen=True, slots=True)
class MegatronIndex:
    """One `.idx` file: each sequence's length, and the sequence numbers at which documents start and end."""

    lengths: np.ndarray
    documents: np.ndarray


def read_index(path: Path, dtype: np.dtype) -> MegatronIndex:
    """Parse and check an `.idx` file as `writers/megatron.py` describes the format.

    Raises:
        ShardReadError: wrong magic, version or dtype, cut short, or pointers and documents that do
            not lay the sequences end to end.
    """
    header = struct.Struct("<QBQQ")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(INDEX_MAGIC) + header.size)
        size = path.stat().st_size
    except OSError as error:
        raise ShardReadError(f"cannot read: {error}", path) from error
    if len(head) < len(INDEX_MAGIC) + header.size or not head.startswith(INDEX_MAGIC):
        raise ShardReadError("not a Megatron index: no MMIDIDX header", path)
    version, code, sequences, documents = header.unpack(head[len(INDEX_MAGIC):])
    if version != INDEX_VERSION or code != DTYPE_CODES[dtype]:
        raise ShardReadError(f"index version {version}, dtype code {code}; expected version {INDEX_VERSION}, "
                             f"dtype code {DTYPE_CODES[dtype]} ({dtype})", path)
    start = len(head)
    expected = start + sequences * 12 + documents * 8
    if size != expected:
        raise ShardReadError(f"{size:,} bytes, but its header describes {expected:,}: "
                             f"{'cut short' if size < expected else 'extra bytes at the end'}", path)
    lengths = np.fromfile(path, dtype="<i4", count=sequences, offset=start)
    pointers = np.fromfile(path, dtype="<i8", count=sequences, offset=start + sequences * 4)
    docs = np.fromfile(path, dtype="<i8", count=documents, offset=start + sequences * 12)
    if (lengths < 0).any() or (pointers != offsets_of(lengths)[:-1] * dtype.itemsize).any():
        raise ShardReadError("sequence pointers do not lay the sequences end to end in the .bin", path)
    if not len(docs) or docs[0] != 0 or docs[-1] != sequences or (np.diff(docs) < 0).any():
        raise ShardReadError("document indices must rise from 0 to the sequence count", path)
    return MegatronIndex(np.asarray(lengths, dtype=np.int64), np.asarray(docs, dtype=np.int64))


class MegatronShards(ShardReader):
    """Reads a shard's two indexed datasets, `input_ids` and `loss_mask`, a bounded number of documents at a time.

    A document is a row; its sequences are the row's samples. Labels and position ids are not stored:
    they follow from the mask and the sequence lengths.
    """

    name = "megatron"
    suffixes = (".input_ids.bin", ".input_ids.idx", ".loss_mask.bin", ".loss_mask.idx")
    patterns = ("*.bin", "*.idx")

    def batches(self, paths: list[Path]) -> Iterator[TokenBatch]:
        files = self.files(paths)
        indexes = {name: read_index(files[f".{name}.idx"], dtype) for name, dtype in DATASETS.items()}
        ids_index, mask_index = indexes["input_ids"], indexes["loss_mask"]
        if not (np.array_equal(ids_index.lengths, mask_index.lengths)
                and np.array_equal(ids_index.documents, mask_index.documents)):
            raise ShardReadError("the input_ids and loss_mask indexes disagree on sequences or documents: "
                                 "every sequence needs its mask", files[".loss_mask.idx"])
        sequence_offsets = offsets_of(ids_index.lengths)
        for name, dtype in DATASETS.items():
            self._check_size(files[f".{name}.bin"], dtype, int(sequence_offsets[-1]))
        documents = ids_index.documents
        if not self.packed and len(documents) - 1 != len(ids_index.lengths):
            raise ShardReadError("a document holds more than one sequence, but the output is not packed",
                                 files[".input_ids.idx"])
        row_offsets = sequence_offsets[documents]
        first_row, rows = 0, len(documents) - 1
        while first_row < rows:
            last = self._batch_end(row_offsets, first_row)
            start, stop = row_offsets[first_row], row_offsets[last]
            offsets = row_offsets[first_row:last + 1] - start
            ids, mask = (ListColumn(self._read(files[f".{name}.bin"], dtype, start, stop), offsets)
                         for name, dtype in DATASETS.items())
            seq_lens = None
            if self.packed:
                first_seq, last_seq = documents[first_row], documents[last]
                seq_lens = ListColumn(ids_index.lengths[first_seq:last_seq], documents[first_row:last + 1] - first_seq)
            yield TokenBatch(first_row, ids, None, mask, seq_lens=seq_lens)
            first_row = last

    @staticmethod
    def _batch_end(row_offsets: np.ndarray, first: int) -> int:
        """The row after the last of a batch from `first`: at most BATCH_ROWS rows and, past one row, BATCH_TOKENS."""
        last = min(first + BATCH_ROWS, len(row_offsets) - 1)
        fits = int(np.searchsorted(row_offsets[first + 1:last + 1] - row_offsets[first], BATCH_TOKENS, side="right"))
        return first + max(fits, 1) if fits < last - first else last

    @staticmethod
    def _check_size(path: Path, dtype: np.dtype, count: int) -> None:
        """The `.bin` must hold exactly the values its index describes."""
        try:
            size = path.stat().st_size
        except OSError as error:
            raise ShardReadError(f"cannot read: {error}", path) from error
        if size != count * dtype.itemsize:
            raise ShardReadError(f"{size:,} bytes, but its index describes {count:,} values of {dtype.itemsize} "
                                 f"byte(s): {'cut short' if size < count * dtype.itemsize else 'extra bytes'}", path)

    @staticmethod
    def _read(path: Path, dtype: np.dtype, start: int, stop: int) -> np.ndarray:
        """Values `start:stop` of a `.bin`, read from disk (not mapped), so memory holds one batch."""
        try:
            values = np.fromfile(path, dtype=dtype, count=stop - start, offset=start * dtype.itemsize)
        except OSError as error:
            raise ShardReadError(f"cannot read: {error}", path) from error
        return values.astype(np.int64)


SHARD_READERS: dict[str, type[ShardReader]] = {
    reader.name: reader for reader in (ParquetShards, HfShards, MegatronShards, JsonlShards)
}
