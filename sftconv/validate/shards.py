"""Validate a convert output folder against its manifest: files, hashes, counts, then every row.

Nothing here raises on bad data: a missing, corrupt or truncated shard becomes a finding that names
the file, and the other shards are still checked.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..conversation import Location
from ..writers import MANIFEST_FILE, REJECTS_FILE
from ..writers.atomic import sha256_file
from .codes import (
    COUNTS_MISMATCH,
    MANIFEST_INVALID,
    MANIFEST_MISSING,
    REJECTS_MISMATCH,
    ROW_COUNT_MISMATCH,
    SHA256_MISMATCH,
    SHARD_MISSING,
    SHARD_UNREADABLE,
    TOKEN_COUNT_MISMATCH,
    UNKNOWN_FORMAT,
    UNLISTED_SHARD,
)
from .formats import SHARD_READERS, ShardReadError
from .report import Distribution, Finding, Report
from .rows import RowRules, check_rows

SHARD_FIELDS = {"file": str, "rows": int, "tokens": int, "trained_tokens": int, "sha256": str}


class ManifestError(Exception):
    """A manifest that cannot be checked against; the message says which field is wrong."""


def is_output_folder(path: str | Path) -> bool:
    """Whether `path` is a convert output folder (a manifest, or a shard named as convert names them)."""
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST_FILE).exists() or any(path.glob("shard-[0-9][0-9][0-9][0-9][0-9].*")))


def validate_shards(folder: str | Path, *, max_seq_len: int | None = None, max_examples: int = 3,
                    strict: bool = False, max_error_rate: float = 0.0, progress: bool = False) -> Report:
    """Check a convert output folder: manifest, every shard's presence, hash, counts and rows.

    Args:
        folder: the folder convert wrote.
        max_seq_len: also flag rows longer than this; None to not check lengths.
        max_examples, strict, max_error_rate: as for `Report`.
        progress: show a progress bar on stderr (when it is a terminal).

    Example:
        >>> validate_shards("out/").ok
        True
    """
    from tqdm import tqdm

    folder = Path(folder)
    report = Report("shards", [str(folder)], "row", max_examples=max_examples, strict=strict,
                    max_error_rate=max_error_rate)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        detail = ("no manifest.json: the run did not finish, or this is not its folder (to validate the files in "
                  f"it as raw input, pass them as files: '{folder}/shard-*')")
        report.add_file(Location(str(manifest_path)), Finding(MANIFEST_MISSING, detail))
        return report
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as error:
        report.add_file(Location(str(manifest_path)), Finding(MANIFEST_INVALID, str(error)))
        return report
    reader_class = SHARD_READERS.get(manifest["format"])
    if reader_class is None:
        report.add_file(Location(str(manifest_path)), Finding(
            UNKNOWN_FORMAT, f"format {manifest['format']!r} (known: {', '.join(SHARD_READERS)})", "format"))
        return report
    reader = reader_class()
    rules = RowRules(vocab_size=manifest["tokenizer"]["vocab_size"],
                     train_headers=manifest["options"].get("train_on") == "all", max_seq_len=max_seq_len)
    lengths = Distribution()
    trained_total = 0
    total_rows = sum(s["rows"] for s in manifest["shards"])
    with tqdm(total=total_rows, disable=None if progress else True, unit=" rows", desc="validating",
              dynamic_ncols=True) as bar:
        for shard in manifest["shards"]:
            trained_total += check_shard(folder, shard, reader, rules, report, lengths, bar)
    report.checked = lengths.n
    check_totals(folder, manifest, report, lengths.n, lengths.total, trained_total)
    listed = {s["file"] for s in manifest["shards"]}
    for path in sorted(folder.glob(reader.pattern)):
        if path.name not in listed:
            report.add_file(Location(str(path)), Finding(UNLISTED_SHARD, "not in the manifest, yet a loader "
                                                                         f"reading {reader.pattern} would read it"))
    report.stats = {
        "format": reader.name,
        "shards": len(manifest["shards"]),
        "rows": lengths.n,
        "tokens_per_sample": lengths.to_json(),
        "tokens": lengths.total,
        "trained_tokens": trained_total,
        "trained_share": round(trained_total / lengths.total, 4) if lengths.total else None,
    }
    return report


def check_shard(folder: Path, shard: dict, reader, rules: RowRules, report: Report, lengths: Distribution,
                bar) -> int:
    """Check one shard file and its rows against its manifest entry; returns its trained tokens."""
    path = folder / shard["file"]
    where = Location(str(path))
    if not path.is_file():
        report.add_file(where, Finding(SHARD_MISSING, f"listed in the manifest with {shard['rows']:,} rows, not found"))
        return 0
    try:
        digest = sha256_file(path)
    except OSError as error:
        report.add_file(where, Finding(SHARD_UNREADABLE, f"cannot read: {error}"))
        return 0
    if digest != shard["sha256"]:
        report.add_file(where, Finding(SHA256_MISMATCH, f"sha256 is {digest}, the manifest says {shard['sha256']}"))
    rows = tokens = trained = 0
    try:
        for batch in reader.batches(path):
            for row, findings in sorted(check_rows(batch, rules).items()):
                report.add(Location(str(path), row=row), findings)
            for length in batch.ids_offsets[1:] - batch.ids_offsets[:-1]:
                lengths.add(int(length))
            rows += batch.rows
            tokens += len(batch.input_ids)
            trained += int(batch.loss_mask.sum())
            bar.update(batch.rows)
    except ShardReadError as error:
        report.add_file(where, Finding(SHARD_UNREADABLE, f"{error} (after {rows:,} readable rows)"))
        return trained
    if rows != shard["rows"]:
        report.add_file(where, Finding(ROW_COUNT_MISMATCH, f"{rows:,} rows, the manifest says {shard['rows']:,}"))
    if (tokens, trained) != (shard["tokens"], shard["trained_tokens"]):
        report.add_file(where, Finding(TOKEN_COUNT_MISMATCH, f"{tokens:,} tokens ({trained:,} trained), the manifest "
                                                             f"says {shard['tokens']:,} ({shard['trained_tokens']:,})"))
    return trained


def check_totals(folder: Path, manifest: dict, report: Report, rows: int, tokens: int, trained: int) -> None:
    """The run's counts agree with the rows read and the rejects file: nothing was lost silently."""
    counts = manifest["counts"]
    where = Location(str(folder / MANIFEST_FILE))
    accounted = counts["written"] + counts["rejected"] + counts["dropped"]
    if counts["read"] != accounted:
        report.add_file(where, Finding(COUNTS_MISMATCH, f"read {counts['read']:,} != written + rejected + dropped "
                                                        f"{accounted:,}", "counts"))
    if (counts["written"], counts["tokens"], counts["trained_tokens"]) != (rows, tokens, trained):
        report.add_file(where, Finding(COUNTS_MISMATCH, f"the manifest counts {counts['written']:,} samples, "
                                                        f"{counts['tokens']:,} tokens ({counts['trained_tokens']:,} "
                                                        f"trained); the shards hold {rows:,} rows, {tokens:,} tokens "
                                                        f"({trained:,} trained)", "counts"))
    rejects = folder / manifest.get("rejects_file", REJECTS_FILE)
    try:
        with open(rejects, "rb") as handle:
            found = sum(1 for _ in handle)
    except FileNotFoundError:
        found = 0
    except OSError as error:
        report.add_file(Location(str(rejects)), Finding(REJECTS_MISMATCH, f"cannot read: {error}"))
        return
    if found != counts["rejected"]:
        detail = f"{found:,} rejected records in the file, the manifest counts {counts['rejected']:,}"
        report.add_file(Location(str(rejects)), Finding(REJECTS_MISMATCH, detail))


def load_manifest(path: Path) -> dict:
    """The manifest, with the fields validation relies on checked for presence and type.

    Raises:
        ManifestError: unreadable JSON or a missing or mistyped field, named.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"not readable JSON: {error}") from error
    expect(manifest, "manifest", dict)
    for key, kind in {"format": str, "options": dict, "tokenizer": dict, "counts": dict, "shards": list}.items():
        expect(manifest.get(key), key, kind)
    expect(manifest["tokenizer"].get("vocab_size"), "tokenizer.vocab_size", int)
    for key in ("read", "written", "rejected", "dropped", "tokens", "trained_tokens"):
        expect(manifest["counts"].get(key), f"counts.{key}", int)
    for index, shard in enumerate(manifest["shards"]):
        expect(shard, f"shards[{index}]", dict)
        for key, kind in SHARD_FIELDS.items():
            expect(shard.get(key), f"shards[{index}].{key}", kind)
    return manifest


def expect(value, name: str, kind: type) -> None:
    """Raise ManifestError unless `value` is a `kind` (a bool is not an int here)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise ManifestError(f"{name} must be a {kind.__name__}, found {found}")
