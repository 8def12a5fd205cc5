"""Hugging Face datasets: a `save_to_disk` folder, or a dataset name found in the local `datasets` cache."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..conversation import Location, Record, Rejected
from . import base
from .base import Chunk, Reader, ReaderError

if TYPE_CHECKING:
    import pyarrow as pa

HUB_PREFIX = "hf:"
BATCH_ROWS = 1024  # rows turned into Python objects at a time


def is_saved_dataset(path: Path) -> bool:
    """True for a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file())


def choose_split(splits: Mapping, split: str | None, where: str):
    """The split asked for, or the only one there is.

    Raises:
        ReaderError: the split does not exist, or there are several and none was chosen.
    """
    names = ", ".join(splits)
    if split is not None:
        if split not in splits:
            raise ReaderError(f"{where} has no split {split!r} (splits: {names})")
        return splits[split]
    if len(splits) == 1:
        return next(iter(splits.values()))
    raise ReaderError(f"{where} has several splits ({names}); choose one with --split")


def dataset_records(dataset, source: str) -> Iterator[Record]:
    """A Dataset's or IterableDataset's rows as `dataset[i]` gives them, a batch at a time, located by 0-based row.

    Rows are decoded by the dataset's features (a `Json` column becomes objects again), so the
    records are the ones a `datasets` user sees.
    """
    row = 0
    for batch in dataset.with_format(None).iter(batch_size=BATCH_ROWS):
        for values in zip(*batch.values()):
            yield Record(Location(source, row=row), dict(zip(batch, values)))
            row += 1


@dataclass(frozen=True)
class DatasetChunk(Chunk):
    """Consecutive rows of a Dataset, decoded by the dataset's features where the chunk is processed into
    the records that `dataset_records` gives.

    The rows travel as an Arrow IPC stream: a pickled slice of a table would carry the whole record
    batch it was cut from.
    """

    source: str
    first_row: int
    rows: pa.Buffer
    features: Any  # datasets.Features

    @classmethod
    def of(cls, source: str, first_row: int, table: pa.Table, features: Any) -> DatasetChunk:
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return cls(source, first_row, sink.getvalue(), features)

    def records(self) -> Iterator[Record | Rejected]:
        import pyarrow as pa
        from datasets.formatting import PythonFormatter

        table = pa.ipc.open_stream(self.rows).read_all()
        batch = PythonFormatter(features=self.features).format_batch(table)
        for row, values in enumerate(zip(*batch.values()), self.first_row):
            yield Record(Location(self.source, row=row), dict(zip(batch, values)))


class DiskDatasetReader(Reader):
    """Reads a `save_to_disk` folder (its Arrow files streamed, so only the rows being converted are in memory).

    Args:
        split: the split of a DatasetDict to read; may be omitted when it has one split.
    """

    name = "hf-disk"

    def __init__(self, split: str | None = None):
        self.split = split

    def read_file(self, path: Path) -> Iterator[Record | Rejected]:
        yield from dataset_records(self._load(path), str(path))

    def file_chunks(self, path: Path, span: None = None) -> Iterator[DatasetChunk]:
        import pyarrow as pa

        dataset, row = self._load(path), 0
        files = [f["filename"] for f in dataset.cache_files]
        if not files:  # held in memory: nothing to stream
            for table in dataset.with_format("arrow").iter(batch_size=base.CHUNK_RECORDS):
                yield DatasetChunk.of(str(path), row, table, dataset.features)
                row += table.num_rows
            return
        try:
            for name in files:
                # Read, not memory-mapped as `datasets` does: mapped pages stay in the process's RSS
                # once read, so memory would grow with the dataset.
                with pa.OSFile(name) as handle:
                    for batch in pa.ipc.open_stream(handle):
                        for start in range(0, batch.num_rows, base.CHUNK_RECORDS):
                            part = pa.Table.from_batches([batch.slice(start, base.CHUNK_RECORDS)])
                            yield DatasetChunk.of(str(path), row, part, dataset.features)
                            row += part.num_rows
        except pa.ArrowException as error:
            raise ReaderError(f"{path}: not a readable save_to_disk folder: {error}") from error

    def _load(self, path: Path):
        import datasets

        try:
            loaded = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as error:
            raise ReaderError(f"{path}: not a readable save_to_disk folder: {error}") from error
        if isinstance(loaded, datasets.DatasetDict):
            loaded = choose_split(loaded, self.split, str(path))
        return loaded


@contextmanager
def offline_and_quiet():
    """Make `datasets` use only its local cache, without its "using the cached version" warnings."""
    import datasets

    offline, verbosity = datasets.config.HF_HUB_OFFLINE, datasets.logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = offline
        datasets.logging.set_verbosity(verbosity)


class HubDatasetReader(Reader):
    """Reads `hf:NAME` or `hf:NAME:CONFIG`, streamed from the local `datasets` cache; sftconv never downloads.

    The dataset must have been loaded once with `datasets.load_dataset(NAME)`, which fills the cache.

    Args:
        split: the split to read; may be omitted when the dataset has one split.
    """

    name = "hf"

    def __init__(self, split: str | None = None):
        self.split = split

    def read_file(self, path: str) -> Iterator[Record | Rejected]:
        import datasets

        name, _, config = str(path).removeprefix(HUB_PREFIX).partition(":")
        with offline_and_quiet():
            try:
                splits = datasets.load_dataset(name, config or None, streaming=True)
            except (ConnectionError, FileNotFoundError, ValueError) as error:
                raise ReaderError(
                    f"{path}: not found in the local datasets cache ({datasets.config.HF_DATASETS_CACHE}); "
                    f"sftconv does not download, so load it once with datasets.load_dataset({name!r}) ({error})"
                ) from error
            yield from dataset_records(choose_split(splits, self.split, str(path)), str(path))
