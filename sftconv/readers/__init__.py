"""Readers: inputs -> located raw records. They know file formats and nothing about chat."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..conversation import Record, Rejected
from ..remote import filesystem, is_url, local_path, store_errors
from .arrow import ArrowReader
from .base import Reader, ReaderError
from .compression import inner_name
from .csv import CsvReader
from .hf import HUB_PREFIX, DiskDatasetReader, HubDatasetReader, is_saved_dataset
from .json import JsonReader
from .jsonl import JsonlReader
from .parquet import ParquetReader

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

READERS: dict[str, type[Reader]] = {
    reader.name: reader
    for reader in (JsonlReader, JsonReader, CsvReader, ParquetReader, ArrowReader, DiskDatasetReader, HubDatasetReader)
}
FILE_SUFFIXES = tuple(s for reader in READERS.values() for s in reader.suffixes)


def reader_for(item: Path | str, *, split: str | None = None, records: str | None = None) -> Reader:
    """The reader for an input: a `hf:` name, a `save_to_disk` folder, or a file by its name's suffix (a URL's too).

    A `.gz`, `.zst` or `.zstd` ending is looked through (`train.jsonl.gz` is JSON Lines). `records`
    names the list holding a `.json` document's records (`data`, or a path `a.b`), for files that wrap them.

    Raises:
        ValueError: no reader knows the input, or `records` is given for an input that is not `.json`;
            the message lists the file types that exist.
    """
    reader = file_reader(item, split)
    if records is None:
        return reader
    if not isinstance(reader, JsonReader):
        raise ValueError(f"{item}: --records-field names the list of records in a .json document; this input is "
                         f"read by the {reader.name} reader, whose records are its lines or rows")
    return JsonReader(records)


def file_reader(item: Path | str, split: str | None) -> Reader:
    """`reader_for` without `records`."""
    if str(item).startswith(HUB_PREFIX):
        return HubDatasetReader(split)
    if is_url(item):
        name = item.rstrip("/").rpartition("/")[2]
    else:
        path = Path(local_path(item) if isinstance(item, str) else item)
        if path.is_dir():
            if is_saved_dataset(path):
                return DiskDatasetReader(split)
            raise ValueError(f"{path}: a folder that is not a Hugging Face save_to_disk dataset")
        name = path.name
    name = inner_name(name.lower())
    for reader in READERS.values():
        if reader.suffixes and name.endswith(reader.suffixes):
            return reader()
    raise ValueError(f"{item}: no reader for this file type (known: {', '.join(FILE_SUFFIXES)}, "
                     "each optionally .gz or .zst; a save_to_disk folder; hf:NAME)")


def is_data_file(name: str) -> bool:
    """True if a reader knows the file's type by its name (used when a folder is walked)."""
    return inner_name(name.lower()).endswith(FILE_SUFFIXES)


def expand_inputs(inputs: list[str]) -> list[Path | str]:
    """The inputs to read: globs expanded, folders walked in sorted order, each once; `hf:` names kept.

    A folder written by `save_to_disk` is one input. Any other folder gives the data files it holds
    (by suffix, at any depth, hidden ones skipped); other files in it are not read. A URL (`s3://...`)
    is expanded the same way by its filesystem and stays a `str`, in full; a `file://` URL is a local path.

    Raises:
        FileNotFoundError: an input matches nothing.
        ValueError: an input is neither a file nor a folder (a pipe or a device: it could not be read
            twice, once to detect its shape and once to convert it, and opening a pipe can wait forever),
            a URL's filesystem is unknown or not installed, or a URL names a `save_to_disk` folder.
    """
    found: dict[Path | str, None] = {}
    for item in inputs:
        if item.startswith(HUB_PREFIX):
            found[item] = None
            continue
        if is_url(item):
            found.update((url, None) for url in expand_url(item))
            continue
        item = local_path(item)
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
        elif is_data_file(child.name):
            yield child


def expand_url(url: str) -> list[str]:
    """The files a URL names, as full URLs: itself, a glob's matches (sorted), or a folder's data files as `walk` finds them.

    Raises:
        FileNotFoundError: nothing is at the URL, or its glob matches nothing.
        ValueError: the URL's filesystem is unknown or not installed, its store cannot be reached (no
            credentials, no network, no permission), or it names a `save_to_disk` folder.
    """
    fs, path = filesystem(url)
    try:
        matches = url_matches(fs, path, url)
        files = []
        for match, info in sorted(matches.items()):
            if info["type"] == "directory":
                files += [fs.unstrip_protocol(found) for found in walk_url(fs, match, url)]
            else:
                files.append(url if match == path else fs.unstrip_protocol(match))
    except FileNotFoundError:
        raise
    except (OSError, *store_errors()) as error:
        raise ValueError(f"{url}: cannot be read: {type(error).__name__}: {error}") from error
    return files


def url_matches(fs: AbstractFileSystem, path: str, url: str) -> dict[str, dict]:
    """What a URL's path names on its filesystem: each match and its info (`type` tells a folder from a file)."""
    if not glob.has_magic(path):
        if not fs.exists(path):
            raise FileNotFoundError(f"no such file or folder: {url}")
        return {path: fs.info(path)}
    try:
        matches = fs.glob(path, detail=True)
    except ValueError as error:  # a pattern fsspec refuses, such as `a**b`
        raise ValueError(f"{url}: {error}") from error
    if not any(part.startswith(".") for part in path.split("/")):  # as with glob, `*` does not match `.name`
        matches = {match: info for match, info in matches.items()
                   if not any(part.startswith(".") for part in match.split("/"))}
    if not matches:
        raise FileNotFoundError(f"no such file or folder: {url}")
    return matches


def walk_url(fs: AbstractFileSystem, folder: str, url: str) -> list[str]:
    """A URL folder's data files, in the order `walk` gives a local folder's (depth first, sorted, hidden skipped)."""
    found = {}
    for path in fs.find(folder):
        parts = tuple(path[len(folder):].strip("/").split("/"))
        if not any(part.startswith(".") for part in parts):
            found[parts] = path
    for parts in found:
        if parts[-1] == "dataset_dict.json" or (parts[-1] == "state.json" and (*parts[:-1], "dataset_info.json") in found):
            where = "/".join([url.rstrip("/"), *parts[:-1]])
            raise ValueError(f"{where} is a Hugging Face save_to_disk folder, which sftconv reads only from a local "
                             "folder; copy it to this machine first, or save the dataset as Parquet (to_parquet)")
    return [found[parts] for parts in sorted(found) if is_data_file(parts[-1])]


def looks_like_name(item: str) -> bool:
    """True for `owner/name`, the form of a Hugging Face dataset name."""
    parts = item.split("/")
    return len(parts) == 2 and all(parts) and "." not in parts[1]


def read_records(inputs: list[Path | str], *, split: str | None = None,
                 records: str | None = None) -> Iterator[Record | Rejected]:
    """Every record of every input, in the order given (`split` and `records` as for `reader_for`).

    Raises:
        ReaderError: an input cannot be read.
    """
    for item in inputs:
        yield from reader_for(item, split=split, records=records).read(item)


__all__ = ["READERS", "Reader", "ReaderError", "expand_inputs", "read_records", "reader_for"]
