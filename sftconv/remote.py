"""Inputs and outputs at URLs (`s3://`, `gs://`, `az://`, ...) through fsspec; credentials come from the environment.

sftconv never takes credentials as options: each filesystem package finds them as its own tools do
(for S3, the `AWS_*` variables, `~/.aws` or the instance's role). A `file://` URL is a local path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*:[^/@]*@")  # scheme://user:password@ (or key:secret@)
FILE_URL = "file://"


def is_url(item: Path | str) -> bool:
    """True for a URL of another filesystem (`s3://...`); a local path or a `file://` URL is not one."""
    return isinstance(item, str) and URL.match(item) is not None and not item.startswith(FILE_URL)


def local_path(item: str) -> str:
    """A `file://` URL as the path it names; anything else as it is."""
    return item.removeprefix(FILE_URL) if item.startswith(FILE_URL) else item


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of a URL and the path within it.

    Raises:
        ValueError: the URL's scheme is unknown, the package that reads it is not installed (named), or
            the URL holds a password (which the message does not repeat).
    """
    import fsspec

    if PASSWORD.match(url):
        shown = PASSWORD.sub(r"\1***@", url)
        raise ValueError(f"{shown}: a URL must not hold a password; sftconv takes credentials from the environment "
                         "only, as the filesystem's own tools do (for S3, the AWS_* variables, ~/.aws or the "
                         "instance's role)")
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise ValueError(f"{url}: a package this URL needs is not installed ({error})") from error
    except ValueError as error:
        raise ValueError(f"{url}: {error}") from error


def join(url: str, name: str) -> str:
    """`name` inside the folder at `url`."""
    return f"{url.rstrip('/')}/{name}"
