"""`rejects.jsonl`: every record that was not written, with its location and reason."""

from __future__ import annotations

import json
from pathlib import Path

from ..conversation import Rejected
from .atomic import commit, temp_path

REJECTS_FILE = "rejects.jsonl"


class RejectsWriter:
    """Streams rejects to a hidden temp file; `close` gives it its final name."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / REJECTS_FILE
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
