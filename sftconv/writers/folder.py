"""The output folder: a local one, or one at a URL (`s3://...`) that each finished file is uploaded into whole."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..remote import filesystem, is_url, join, local_path
from .atomic import sha256_file, write_text


class Folder:
    """A local output folder: files are made in it under temporary names and renamed once complete (`atomic`).

    Writers make files in `local` and hand each complete one to `publish`; everything else reads
    and removes through the folder's methods, which take names relative to it (`.sftconv-run/run.json`).
    Use it as a context manager, so a URL folder's staging space is removed.
    """

    def __init__(self, path: Path | str):
        self.local = Path(path)  # where writers make files
        self.location = str(self.local)  # for messages, and for a unit to find the folder

    @staticmethod
    def at(location: Path | str) -> Folder:
        """The folder at a local path, a `file://` URL or another filesystem's URL."""
        location = str(location)
        return RemoteFolder(location) if is_url(location) else Folder(local_path(location))

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def make(self) -> None:
        self.local.mkdir(parents=True, exist_ok=True)

    def publish(self, path: Path) -> None:
        """Put a complete file made under `local` in its place; a local folder already has it there."""

    def entries(self) -> dict[str, bool]:
        """The names in the folder (not below it), each with whether it is a file; empty if there is no folder."""
        if not self.local.is_dir():
            return {}
        return {child.name: child.is_file() for child in self.local.iterdir()}

    def is_file(self, name: str) -> bool:
        return (self.local / name).is_file()

    def open(self, name: str) -> BinaryIO:
        return open(self.local / name, "rb")

    def read_text(self, name: str) -> str:
        with self.open(name) as handle:
            return handle.read().decode("utf-8")

    def write_text(self, name: str, text: str) -> None:
        """Write a whole text file, atomically."""
        path = self.local / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
        self.publish(path)

    def verify(self, name: str, size: int, sha256: str) -> bool:
        """Whether the file is there with these contents (its sha256 checked)."""
        path = self.local / name
        return path.is_file() and path.stat().st_size == size and sha256_file(path) == sha256

    def remove(self, name: str) -> None:
        """Remove a file, or a folder with all it holds; nothing if it is not there."""
        path = self.local / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class RemoteFolder(Folder):
    """A folder at an fsspec URL: files are made in a local staging folder, then uploaded, each under its final name.

    An object store (S3, GCS, Azure Blob) shows an upload only once it is complete, as a rename does
    locally, so a reader never sees part of a shard. Files are verified there by their size: hashing
    them would mean downloading the whole output.
    """

    def __init__(self, url: str):
        self.location = url
        self.fs, self.root = filesystem(url)
        self.local = Path(tempfile.mkdtemp(prefix="sftconv-staging-"))

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.local, ignore_errors=True)

    def make(self) -> None:
        """Nothing: an object store has no folders to make (and a missing bucket is an error at the first write)."""

    def path(self, name: str) -> str:
        return join(self.root, name)

    def publish(self, path: Path) -> None:
        """Upload the file under its final name, then drop the local copy.

        Raises:
            OSError: the upload failed; the message names the URL (a missing bucket, say).
        """
        name = path.relative_to(self.local).as_posix()
        try:
            self.fs.put_file(str(path), self.path(name))
        except Exception as error:  # botocore's errors (no endpoint, a bad bucket name) are no OSError
            raise OSError(f"cannot upload {join(self.location, name)}: {error}") from error
        path.unlink()

    @contextmanager
    def naming_errors(self, doing: str, name: str = "") -> Iterator[None]:
        """Turn the filesystem package's errors into OSErrors naming the URL; a missing file stays a FileNotFoundError.

        botocore's errors (no endpoint, a bad bucket name) are no OSError, and s3fs's PermissionError names no path.
        """
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as error:
            raise OSError(f"cannot {doing} {join(self.location, name) if name else self.location}: {error}") from error

    def entries(self) -> dict[str, bool]:
        self.fs.invalidate_cache()  # other processes (workers, a killed run) may have written since
        try:
            with self.naming_errors("list"):
                found = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return {}
        return {PurePosixPath(entry["name"]).name: entry["type"] == "file" for entry in found
                if entry["name"].rstrip("/") != self.root.rstrip("/")}

    def is_file(self, name: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.isfile(self.path(name))

    def open(self, name: str) -> BinaryIO:
        self.fs.invalidate_cache()  # a listing cached before another process rewrote the file holds its old size
        with self.naming_errors("read", name):
            return self.fs.open(self.path(name), "rb")

    def verify(self, name: str, size: int, sha256: str) -> bool:
        self.fs.invalidate_cache()
        try:
            with self.naming_errors("read", name):
                return self.fs.info(self.path(name))["size"] == size
        except FileNotFoundError:
            return False

    def remove(self, name: str) -> None:
        self.fs.invalidate_cache()
        with self.naming_errors("remove", name):
            if self.fs.exists(self.path(name)):
                self.fs.rm(self.path(name), recursive=True)
