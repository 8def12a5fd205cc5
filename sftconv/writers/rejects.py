"""`rejects.jsonl`: every record that was not written, with its location and reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..conversation import Rejected
from .atomic import commit, temp_path
from .folder import Folder

REJECTS_FILE = "rejects.jsonl"


class RejectsWriter:
    """Streams rejects to a hidden temp file; `close` gives it its final name, `path`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A lone surrogate from the input is written as its JSON escape, keeping the line valid JSON.
        self._handle = open(temp_path(self.path), "w", encoding="utf-8", errors="backslashreplace")

    def write(self, rejected: Rejected) -> None:
        self._handle.write(json.dumps(rejected.to_json(), ensure_ascii=False, default=repr) + "\n")

    def close(self) -> None:
        self._handle.close()
        commit(self.path)

    def abort(self) -> None:
        self._handle.close()
        temp_path(self.path).unlink(missing_ok=True)


def join_rejects(folder: Folder, parts: list[str]) -> None:
    """Write the folder's `rejects.jsonl` atomically as its rejects files `parts`, one after the other."""
    final = folder.local / REJECTS_FILE
    with open(temp_path(final), "wb") as out:
        for part in parts:
            with folder.open(part) as handle:
                shutil.copyfileobj(handle, out)
    commit(final)
    folder.publish(final)
