"""From a mix's row back to the raw record it came from: the source's inputs read again, its rejected records skipped.

A source's cache holds one row per record it read, in input order, except the records it rejected
(listed with their locations in its rejects.jsonl) and those a length limit dropped (counted only).
So where a cache dropped nothing, its row R is the R-th record not rejected; where it dropped some,
the record cannot be told and only the cache row is shown. Only the inputs up to that record are
read, and nothing is tokenized.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..conversation import Location
from ..pipeline import input_identity
from ..readers import ReaderError, expand_inputs, read_records
from ..writers import MANIFEST_FILE, REJECTS_FILE


def record_location(source: dict, row: int) -> Location | None:
    """The location of the record behind row `row` of a source's cache (an entry of manifest `mix.sources`).

    None where it cannot be told: the cache is gone, it dropped samples by length, or an input changed
    since the mix (its `input_versions` differ).
    """
    cache = Path(source["cache"])
    try:
        counts = json.loads((cache / MANIFEST_FILE).read_text(encoding="utf-8"))["counts"]
        with open(cache / REJECTS_FILE, encoding="utf-8") as handle:
            rejected = {json.loads(line)["location"] for line in handle}
    except (OSError, ValueError, KeyError):
        return None
    if counts["dropped"]:
        return None
    position = 0
    try:
        paths = expand_inputs(source["inputs"])
        if [input_identity(path) for path in paths] != source["input_versions"]:
            return None
        options = source["options"]
        for item in read_records(paths, split=options.get("split"), records=options.get("records_field")):
            if str(item.location) in rejected:
                continue
            if position == row:
                return item.location
            position += 1
    except (OSError, ValueError, ReaderError):
        return None
    return None
