"""Units: a run cut into parts that convert on their own, and the receipts that let a rerun skip the finished ones.

A unit is an input, or a span of one (JSON Lines byte ranges, Parquet row groups). What a unit
writes depends only on its records and the options: its shards are named after it
(`part-00003-shard-00000.parquet`), so units can run in any order, on any machine, and a rerun
can redo one without touching the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # readers and writers load pyarrow: not at start-up, where the CLI reads UNIT_BYTES
    from .readers.base import Span
    from .writers.folder import Folder

UNIT_BYTES = 256 << 20  # input bytes per unit by default: ~10 s of one core's work, few enough receipts
WORK_DIR = ".sftconv-run"  # in the output folder until the manifest is written
RUN_FILE = "run.json"  # in WORK_DIR: the inputs and options of the run the receipts belong to


@dataclass(frozen=True)
class Unit:
    """One part of a run's input, converted on its own into shards named after it."""

    index: int
    path: Path | str  # as `expand_inputs` gives it (a `hf:` name is a str)
    span: Span | None  # None: the whole input

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    def to_json(self) -> dict:
        return {"index": self.index, "input": str(self.path), "span": None if self.span is None else self.span.to_json()}


def plan_units(paths: list[Path | str], *, split: str | None, unit_bytes: int, records: str | None = None) -> list[Unit]:
    """The units of a run, in input order; the same inputs and `unit_bytes` always give the same units.

    Raises:
        ReaderError: an input cannot be read.
        OSError: an input vanished or cannot be opened.
    """
    from .readers import reader_for

    units: list[Unit] = []
    for path in paths:
        for span in reader_for(path, split=split, records=records).spans(path, unit_bytes):
            units.append(Unit(len(units), path, span))
    return units


class WorkDir:
    """`OUT/.sftconv-run/`: which run the folder holds, a receipt per finished unit, and each unit's rejects."""

    def __init__(self, folder: Folder):
        self.folder = folder

    def start(self, identity: dict) -> None:
        """Begin a run afresh: forget any earlier receipts and record what this run converts."""
        self.remove()
        self.folder.write_text(f"{WORK_DIR}/{RUN_FILE}", json.dumps(identity, indent=2, sort_keys=True))

    def identity(self) -> dict | None:
        """What the receipts were written for; None if the run never got as far as recording it."""
        try:
            return json.loads(self.folder.read_text(f"{WORK_DIR}/{RUN_FILE}"))
        except (OSError, ValueError):
            return None

    def rejects(self, unit: Unit) -> str:
        """The name of the unit's rejects file in the folder."""
        return f"{WORK_DIR}/{unit.name}.rejects.jsonl"

    def save(self, unit: Unit, result: dict) -> None:
        """Record a finished unit; written after its shards and rejects, so a receipt means they are complete."""
        self.folder.write_text(f"{WORK_DIR}/{unit.name}.json", json.dumps({"unit": unit.to_json(), "result": result}, indent=2))

    def finished(self, units: list[Unit]) -> dict[int, dict]:
        """The results of the units whose receipt matches the unit and whose files are whole (`Folder.verify`)."""
        done = {}
        for unit in units:
            try:
                receipt = json.loads(self.folder.read_text(f"{WORK_DIR}/{unit.name}.json"))
            except (OSError, ValueError):
                continue
            files = [f for shard in receipt["result"]["shards"] for f in shard["files"]]
            if receipt["unit"] == unit.to_json() and self.folder.is_file(self.rejects(unit)) and all(
                    self.folder.verify(f["file"], f["bytes"], f["sha256"]) for f in files):
                done[unit.index] = receipt["result"]
        return done

    def remove(self) -> None:
        self.folder.remove(WORK_DIR)
