"""Validate a convert output folder of any format against its manifest: files, hashes, counts, then every row.

Nothing here raises on bad data: a missing, corrupt or truncated shard becomes a finding that names
the file, and the other shards are still checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..conversation import TOO_LONG, Location
from ..lengths import Overflow
from ..remote import filesystem, is_url, join
from ..writers import MANIFEST_FILE, REJECTS_FILE
from ..writers.atomic import sha256_file
from ..writers.layouts import SFT
from .codes import (
    COUNTS_MISMATCH,
    MANIFEST_INVALID,
    MANIFEST_MISSING,
    NO_ROWS,
    REJECTS_MISMATCH,
    ROW_COUNT_MISMATCH,
    SHA256_MISMATCH,
    SHARD_MISSING,
    SHARD_UNREADABLE,
    SIDE_FILE_MISMATCH,
    TOKEN_COUNT_MISMATCH,
    UNKNOWN_FORMAT,
    UNLISTED_SHARD,
)
from .formats import SHARD_READERS, ShardReader, ShardReadError, TokenBatch
from .report import Distribution, Finding, Report
from .pairs import PairShards
from .rows import Limit, RowRules

MANIFEST_FIELDS = {"format": str, "options": dict, "tokenizer": dict, "counts": dict, "shards": list}
COUNT_FIELDS = ("read", "written", "rejected", "dropped", "rows", "tokens", "trained_tokens")
SHARD_FIELDS = {"files": list, "rows": int, "samples": int, "tokens": int, "trained_tokens": int}
FILE_FIELDS = {"file": str, "bytes": int, "sha256": str}
# Sections that are null when the run did not use the option, and the fields validation reads from them.
SECTION_FIELDS = {"lengths": ("max_seq_len", "over_limit", "truncated", "dropped"),
                  "packing": ("seq_len", "rows", "samples", "tokens")}


class ManifestError(Exception):
    """A manifest that cannot be checked against; the message says which field is wrong."""


@dataclass
class Tally:
    """What the shards hold as read: token counts per row and per sample, and trained tokens."""

    rows: Distribution = field(default_factory=Distribution)
    samples: Distribution = field(default_factory=Distribution)
    trained: int = 0

    def add(self, batch: TokenBatch) -> tuple[int, int, int, int]:
        """Count a batch; returns its (rows, samples, tokens, trained tokens)."""
        lengths = batch.input_ids.lengths
        samples = lengths if batch.seq_lens is None else batch.seq_lens.values
        trained = int(batch.loss_mask.values.sum())
        self.rows.add_all(lengths)
        self.samples.add_all(samples)
        self.trained += trained
        return batch.rows, len(samples), int(lengths.sum()), trained


def is_output_folder(path: str | Path) -> bool:
    """Whether `path` is a convert output folder (a manifest, or a shard named as convert names them); a URL's too."""
    if is_url(path):
        try:
            fs, root = filesystem(path)
        except ValueError:  # reading it as raw input says what is wrong with the URL
            return False
        return fs.isfile(join(root, MANIFEST_FILE))
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST_FILE).exists() or any(path.glob("part-[0-9][0-9][0-9][0-9][0-9]-shard-*")))


def validate_shards(folder: str | Path, *, max_seq_len: int | None = None, max_examples: int = 3,
                    strict: bool = False, max_error_rate: float = 0.0, progress: bool | None = False) -> Report:
    """Check a convert output folder of any format: manifest, every shard file's presence and hash, counts, rows.

    Args:
        folder: the folder convert wrote.
        max_seq_len: also flag rows longer than this (the trainer's context); None to check only the
            limits the manifest records (`--max-seq-len` for samples, `--pack` for packed rows).
        max_examples, strict, max_error_rate: as for `Report`.
        progress: show a progress bar on stderr; None: only where stderr is a terminal.

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
                  f"it as raw input, pass them as files: '{folder}/part-*')")
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
    reader = reader_class(packed=manifest["packing"] is not None)
    if manifest.get("layout", SFT) != SFT:  # preference rows: pairs or KTO samples
        reader = PairShards(reader, manifest["layout"])
    rules = row_rules(manifest, max_seq_len)
    tally = Tally()
    with tqdm(total=sum(s["rows"] for s in manifest["shards"]), disable=None if progress is None else not progress,
              unit=" rows", desc="validating", dynamic_ncols=True) as bar:
        for index, shard in enumerate(manifest["shards"]):
            check_shard(folder, index, shard, reader, rules, report, tally, bar)
    report.checked = tally.rows.n
    check_totals(folder, manifest, report, tally)
    if not manifest["counts"]["written"]:
        report.add_file(Location(str(manifest_path)), Finding(
            NO_ROWS, "the run wrote no samples: nothing to train on (its rejects.jsonl says why)"))
    check_folder(folder, manifest, reader, report)
    tokens = tally.rows.total
    report.stats = {
        "format": reader.name,
        "shards": len(manifest["shards"]),
        "rows": tally.rows.n,
        "samples": tally.samples.n,
        "tokens_per_sample": tally.samples.to_json(),
        "tokens_per_row": tally.rows.to_json() if reader.packed else None,
        "tokens": tokens,
        "trained_tokens": tally.trained,
        "trained_share": round(tally.trained / tokens, 4) if tokens else None,
    }
    return report


def row_rules(manifest: dict, max_seq_len: int | None) -> RowRules:
    """What rows are held to: the tokenizer's ids, the mask policy, and the length limits of the run and of validate."""
    lengths, packing = manifest["lengths"], manifest["packing"]
    sample_limit = Limit(lengths["max_seq_len"], "the run's --max-seq-len") if lengths else None
    row_limits = [Limit(max_seq_len, "--max-seq-len")] if max_seq_len is not None else []
    if packing:
        row_limits.append(Limit(packing["seq_len"], "the run's --pack"))
    elif sample_limit:  # unpacked, a row is a sample
        row_limits.append(sample_limit)
        sample_limit = None
    cut = lengths is not None and lengths.get("overflow") == Overflow.TRUNCATE_TOKENS.value
    return RowRules(vocab_size=manifest["tokenizer"]["vocab_size"], control_ids=manifest["tokenizer"].get("control_ids"),
                    train_headers=manifest["options"].get("train_on") == "all",
                    max_row_len=min(row_limits, key=lambda limit: limit.tokens) if row_limits else None,
                    max_sample_len=sample_limit, cut_at=lengths["max_seq_len"] if cut else None)


def check_shard(folder: Path, index: int, shard: dict, reader: ShardReader, rules: RowRules, report: Report,
                tally: Tally, bar) -> None:
    """Check one shard's files against its manifest entry, then its rows; a shard with a file missing is not read."""
    paths = [folder / entry["file"] for entry in shard["files"]]
    try:
        main = reader.main_file(paths)
    except ShardReadError as error:
        report.add_file(Location(str(folder / MANIFEST_FILE)),
                        Finding(MANIFEST_INVALID, f"shards[{index}]: {error}", f"shards[{index}].files"))
        return
    present = [check_file(path, entry, shard, report) for path, entry in zip(paths, shard["files"])]
    if not all(present):
        return
    totals = [0, 0, 0, 0]  # rows, samples, tokens, trained tokens
    try:
        for batch in reader.batches(paths):
            for row, findings in sorted(reader.check(batch, rules).items()):
                report.add(Location(str(main), row=row), findings)
            totals = [total + count for total, count in zip(totals, tally.add(batch))]
            bar.update(batch.rows)
    except ShardReadError as error:
        report.add_file(Location(str(error.path or main)),
                        Finding(SHARD_UNREADABLE, f"{error} (after {totals[0]:,} readable rows)"))
        return
    rows, samples, tokens, trained = totals
    where = Location(str(main))
    if (rows, samples) != (shard["rows"], shard["samples"]):
        report.add_file(where, Finding(ROW_COUNT_MISMATCH, f"{rows:,} rows ({samples:,} samples), the manifest says "
                                                           f"{shard['rows']:,} ({shard['samples']:,})"))
    if (tokens, trained) != (shard["tokens"], shard["trained_tokens"]):
        report.add_file(where, Finding(TOKEN_COUNT_MISMATCH, f"{tokens:,} tokens ({trained:,} trained), the manifest "
                                                             f"says {shard['tokens']:,} ({shard['trained_tokens']:,})"))


def check_file(path: Path, entry: dict, shard: dict, report: Report) -> bool:
    """One listed file is there and is the file the manifest hashed; False if it is missing or unreadable."""
    where = Location(str(path))
    if not path.is_file():
        report.add_file(where, Finding(SHARD_MISSING, f"listed in the manifest with {shard['rows']:,} rows, not found"))
        return False
    try:
        digest, size = sha256_file(path), path.stat().st_size
    except OSError as error:
        report.add_file(where, Finding(SHARD_UNREADABLE, f"cannot read: {error}"))
        return False
    if digest != entry["sha256"]:
        sizes = f"; {size:,} bytes, the manifest says {entry['bytes']:,}" if size != entry["bytes"] else ""
        report.add_file(where, Finding(SHA256_MISMATCH, f"sha256 is {digest}, the manifest says {entry['sha256']}"
                                                        + sizes))
    elif size != entry["bytes"]:
        report.add_file(Location(str(path.parent / MANIFEST_FILE)), Finding(
            MANIFEST_INVALID, f"{path.name} has the sha256 the manifest lists but {size:,} bytes, not "
                              f"{entry['bytes']:,}", "bytes"))
    return True


def check_totals(folder: Path, manifest: dict, report: Report, tally: Tally) -> None:
    """The run's counts agree with the rows read, with its length and packing sections, and with the rejects file."""
    counts, lengths, packing = manifest["counts"], manifest["lengths"], manifest["packing"]
    where = Location(str(folder / MANIFEST_FILE))
    accounted = counts["written"] + counts["rejected"] + counts["dropped"]
    if counts["read"] != accounted:
        report.add_file(where, Finding(COUNTS_MISMATCH, f"read {counts['read']:,} != written + rejected + dropped "
                                                        f"{accounted:,}", "counts"))
    held = (tally.samples.n, tally.rows.n, tally.rows.total, tally.trained)
    if (counts["written"], counts["rows"], counts["tokens"], counts["trained_tokens"]) != held:
        report.add_file(where, Finding(COUNTS_MISMATCH, f"the manifest counts {counts['written']:,} samples in "
                                                        f"{counts['rows']:,} rows, {counts['tokens']:,} tokens "
                                                        f"({counts['trained_tokens']:,} trained); the shards hold "
                                                        f"{held[0]:,} samples in {held[1]:,} rows, {held[2]:,} tokens "
                                                        f"({held[3]:,} trained)", "counts"))
    if packing and (packing["rows"], packing["samples"], packing["tokens"]) != (
            counts["rows"], counts["written"], counts["tokens"]):
        report.add_file(where, Finding(COUNTS_MISMATCH, f"packing counts {packing['samples']:,} samples in "
                                                        f"{packing['rows']:,} rows, {packing['tokens']:,} tokens; "
                                                        "counts says otherwise", "packing"))
    reasons = counts.get("dropped_by_reason")
    too_long = reasons.get(TOO_LONG, 0) if isinstance(reasons, dict) else 0
    if lengths and (lengths["over_limit"] != lengths["truncated"] + lengths["dropped"]
                    or lengths["dropped"] != too_long):
        report.add_file(where, Finding(COUNTS_MISMATCH, f"lengths: {lengths['over_limit']:,} over the limit != "
                                                        f"{lengths['truncated']:,} truncated + {lengths['dropped']:,} "
                                                        f"dropped, or counts drop {too_long:,} as {TOO_LONG}",
                                       "lengths"))
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


def check_folder(folder: Path, manifest: dict, reader: ShardReader, report: Report) -> None:
    """Files loaders would read besides the listed shards: unlisted shard-like files, and the format's side files."""
    listed = [entry["file"] for shard in manifest["shards"] for entry in shard["files"]]
    own = {MANIFEST_FILE, manifest.get("rejects_file", REJECTS_FILE), *listed}
    unlisted = sorted({path for pattern in reader.patterns for path in folder.glob(pattern) if path.name not in own})
    for path in unlisted:
        patterns = " or ".join(reader.patterns)
        report.add_file(Location(str(path)), Finding(UNLISTED_SHARD, "not in the manifest, yet a loader "
                                                                     f"reading {patterns} would read it"))
    for path, detail in reader.check_side_files(folder, listed):
        report.add_file(Location(str(path)), Finding(SIDE_FILE_MISMATCH, detail))


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
    for key, kind in MANIFEST_FIELDS.items():
        expect(manifest.get(key), key, kind)
    expect(manifest["tokenizer"].get("vocab_size"), "tokenizer.vocab_size", int)
    for key in COUNT_FIELDS:
        expect(manifest["counts"].get(key), f"counts.{key}", int)
    for section, keys in SECTION_FIELDS.items():
        if section not in manifest:
            raise ManifestError(f"{section} must be an object or null, found missing")
        if manifest[section] is not None:
            expect(manifest[section], section, dict)
            for key in keys:
                expect(manifest[section].get(key), f"{section}.{key}", int)
    for index, shard in enumerate(manifest["shards"]):
        expect(shard, f"shards[{index}]", dict)
        for key, kind in SHARD_FIELDS.items():
            expect(shard.get(key), f"shards[{index}].{key}", kind)
        for number, entry in enumerate(shard["files"]):
            name = f"shards[{index}].files[{number}]"
            expect(entry, name, dict)
            for key, kind in FILE_FIELDS.items():
                expect(entry.get(key), f"{name}.{key}", kind)
            if Path(entry["file"]).name != entry["file"] or entry["file"] in ("", ".", ".."):
                raise ManifestError(f"{name}.file must name a file in the output folder, found {entry['file']!r}")
    return manifest


def expect(value, name: str, kind: type) -> None:
    """Raise ManifestError unless `value` is a `kind` (a bool is not an int here)."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise ManifestError(f"{name} must be a {kind.__name__}, found {found}")
