"""Inputs and outputs at URLs (`s3://`, `gs://`, `az://`, ...) through fsspec; credentials come from the environment.

sftconv never takes credentials as options: each filesystem package finds them as its own tools do
(for S3, the `AWS_*` variables, `~/.aws` or the instance's role). A `file://` URL is a local path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
URL = re.compile(f"^{SCHEME}")
PASSWORD = re.compile(f"^({SCHEME})[^/@]*:[^/@]*@")  # scheme://user:password@ (or key:secret@)
FILE_URL = "file://"
# Base classes of the errors filesystem packages raise, beside OSError, for a store they cannot reach (no credentials,
# no network): botocore's NoCredentialsError, aiohttp's connection errors, Google's and Azure's auth errors.
STORE_ERRORS = {"botocore.exceptions": "BotoCoreError", "aiohttp": "ClientError",
                "google.auth.exceptions": "GoogleAuthError", "azure.core.exceptions": "AzureError"}
# What tells a rewritten object from the one read before, by store: S3 and Azure, GCS, then any that gives a time.
VERSION_KEYS = ("ETag", "etag", "generation", "LastModified", "last_modified", "updated", "mtime", "created")


class UrlError(ValueError):
    """A URL that cannot be used as written: a password in it, an unknown scheme, or its package not installed."""


def is_url(item: Path | str) -> bool:
    """True for a URL of another filesystem (`s3://...`); a local path or a `file://` URL is not one."""
    return isinstance(item, str) and URL.match(item) is not None and not item.startswith(FILE_URL)


def local_path(item: str) -> str:
    """A `file://` URL as the path it names; anything else as it is."""
    return item.removeprefix(FILE_URL) if item.startswith(FILE_URL) else item


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of a URL and the path within it.

    Raises:
        UrlError: the URL's scheme is unknown, the package that reads it is not installed (named), or
            the URL holds a password (which the message does not repeat).
    """
    import fsspec

    if PASSWORD.match(url):
        shown = PASSWORD.sub(r"\1***@", url)
        raise UrlError(f"{shown}: a URL must not hold a password; sftconv takes credentials from the environment "
                         "only, as the filesystem's own tools do (for S3, the AWS_* variables, ~/.aws or the "
                         "instance's role)")
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise UrlError(f"{url}: a package this URL needs is not installed ({error})") from error
    except ValueError as error:
        raise UrlError(f"{url}: {error}") from error


def store_errors() -> tuple[type[Exception], ...]:
    """The `STORE_ERRORS` classes of the packages loaded so far (one not loaded has raised nothing)."""
    return tuple(getattr(sys.modules[module], name) for module, name in STORE_ERRORS.items() if module in sys.modules)


def join(url: str, name: str) -> str:
    """`name` inside the folder at `url`."""
    return f"{url.rstrip('/')}/{name}"


def object_version(url: str) -> dict:
    """The size of the object at a URL and the version its store gives it (S3's ETag, GCS's generation...).

    Both stay the same while the object does, and a rewrite with other bytes changes the version.

    Raises:
        FileNotFoundError: nothing is at the URL.
        ValueError: as `filesystem` raises.
    """
    fs, path = filesystem(url)
    info = fs.info(path)
    version = next((str(info[key]) for key in VERSION_KEYS if info.get(key) is not None), None)
    return {"bytes": info["size"], "version": version}
