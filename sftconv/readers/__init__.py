"""Readers: inputs -> located raw records. They know file formats and nothing about chat."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

from ..conversation import Record, Rejected
from .base import Reader, ReaderError
from .compression import inner_name
from .csv import CsvReader
from .hf import HUB_PREFIX, DiskDatasetReader, HubDatasetReader, is_saved_dataset
from .json import JsonReader
from .jsonl import JsonlReader
from .parquet import ParquetReader

READERS: dict[str, type[Reader]] = {
    reader.name: reader
    for reader in (JsonlReader, JsonReader, CsvReader, ParquetReader, DiskDatasetReader, HubDatasetReader)
}
FILE_SUFFIXES = tuple(s for reader in READERS.values() for s in reader.suffixes)


def reader_for(item: Path | str, *, split: str | None = None) -> Reader:
    """The reader for an input: a `hf:` name, a `save_to_disk` folder, or a file by its name's suffix.

    A `.gz`, `.zst` or `.zstd` ending is looked through (`train.jsonl.gz` is JSON Lines).

    Raises:
        ValueError: no reader knows the input; the message lists the file types that exist.
    """
    if str(item).startswith(HUB_PREFIX):
        return HubDatasetReader(split)
    path = Path(item)
    if path.is_dir():
        if is_saved_dataset(path):
            return DiskDatasetReader(split)
        raise ValueError(f"{path}: a folder that is not a Hugging Face save_to_disk dataset")
    name = inner_name(path.name.lower())
    for reader in READERS.values():
        if reader.suffixes and name.endswith(reader.suffixes):
            return reader()
    raise ValueError(f"{path}: no reader for this file type (known: {', '.join(FILE_SUFFIXES)}, "
                     "each optionally .gz or .zst; a save_to_disk folder; hf:NAME)")


def is_data_file(path: Path) -> bool:
    """True if a reader knows the file's type (used when a folder is walked)."""
    return inner_name(path.name.lower()).endswith(FILE_SUFFIXES)


def expand_inputs(inputs: list[str]) -> list[Path | str]:
    """The inputs to read: globs expanded, folders walked in sorted order, each once; `hf:` names kept.

    A folder written by `save_to_disk` is one input. Any other folder gives the data files it holds
    (by suffix, at any depth, hidden ones skipped); other files in it are not read.

    Raises:
        FileNotFoundError: an input matches nothing.
        ValueError: an input is neither a file nor a folder (a pipe or a device: it could not be read
            twice, once to detect its shape and once to convert it, and opening a pipe can wait forever).
    """
    found: dict[Path | str, None] = {}
    for item in inputs:
        if item.startswith(HUB_PREFIX):
            found[item] = None
            continue
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches or not os.path.exists(matches[0]):
            hint = f" (for a Hugging Face dataset name, write {HUB_PREFIX}{item})" if looks_like_name(item) else ""
            raise FileNotFoundError(f"no such file or folder: {item}{hint}")
        for match in map(Path, matches):
            if match.is_dir():
                found.update((path, None) for path in walk(match))
            elif not match.is_file():
                raise ValueError(f"{match} is not a regular file (a pipe or a device); save its data to a file "
                                 "first, e.g. zcat data.jsonl.gz > data.jsonl, or name the .gz file itself")
            else:
                found[match] = None
    return list(found)


def walk(folder: Path) -> Iterator[Path]:
    """A folder's datasets and data files, depth first in sorted order."""
    if is_saved_dataset(folder):
        yield folder
        return
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from walk(child)
        elif is_data_file(child):
            yield child


def looks_like_name(item: str) -> bool:
    """True for `owner/name`, the form of a Hugging Face dataset name."""
    parts = item.split("/")
    return len(parts) == 2 and all(parts) and "." not in parts[1]


def read_records(inputs: list[Path | str], *, split: str | None = None) -> Iterator[Record | Rejected]:
    """Every record of every input, in the order given.

    Raises:
        ReaderError: an input cannot be read.
    """
    for item in inputs:
        yield from reader_for(item, split=split).read(item)


__all__ = ["READERS", "Reader", "ReaderError", "expand_inputs", "read_records", "reader_for"]
