"""Validate raw input through convert's own code path: the same readers, shape and template, then more checks.

Every record goes through `open_source` and `encode_batches` exactly as in `convert`, so each reason
code a reader, shape or the template rejects with is reported here as it is there. On top, validate
scans each decoded record's text (see text.py), its tool turns (see tools.py), its reasoning traces (see
reasoning.py) and each sample's tokens (length, duplicates, stats).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..conversation import INVALID_TEXT, Location, Record, Rejected
from ..pairs import EncodedPair
from ..pipeline import Source, SourceOptions, encode_batches, open_source
from ..readers import ReaderError, reader_for
from ..shapes.meaning import MEANING_DETAILS
from ..template import Encoded
from .codes import DUPLICATE, EMPTY_FILE, LAYOUT_CHOSEN, LONE_SURROGATE, NO_RECORDS, TOO_LONG, UNREADABLE_FILE
from .reasoning import record_reasoning_findings
from .report import Distribution, Finding, Report
from .text import scan_record
from .tools import record_tool_findings


@dataclass(frozen=True, kw_only=True)
class RawChecks:
    """What validate checks beyond convert's own rejects; `max_seq_len` None means lengths are not checked."""

    max_seq_len: int | None = None
    max_examples: int = 3
    strict: bool = False
    max_error_rate: float = 0.0


class Duplicates:
    """First sightings of rendered samples, keyed by a 16-byte BLAKE2b of their token ids.

    Two records are duplicates when they render to the same token ids: the same roles and contents
    after the shape's normalisation (role names, field mapping) and the template's trimming of each
    content; differences in case, inner whitespace or Unicode normal form make records distinct.
    Memory: one dict entry per distinct sample, its key and its first location packed in one int:
    about 125 bytes each (measured: 123 MB per million distinct samples).
    """

    def __init__(self):
        self._first: dict[bytes, int] = {}
        self._sources: dict[str, int] = {}

    def first_seen(self, sample: Encoded) -> Location | None:
        """Where an identical sample was first seen, or None (and remember this one) if it is new."""
        key = hashlib.blake2b(array("i", sample.input_ids).tobytes(), digest_size=16).digest()
        here = self._pack(sample.location)
        first = self._first.setdefault(key, here)
        return None if first == here else self._unpack(first)

    def _pack(self, location: Location) -> int:
        """A location as one int: (line or row) * 2 + is_row, then the source's index in the low 32 bits."""
        source = self._sources.setdefault(location.source, len(self._sources))
        position = location.line if location.line is not None else location.row
        return ((position or 0) * 2 + (location.line is None)) << 32 | source

    def _unpack(self, packed: int) -> Location:
        source = next(s for s, i in self._sources.items() if i == packed & 0xFFFFFFFF)
        position, is_row = divmod(packed >> 32, 2)
        return Location(source, row=position) if is_row else Location(source, line=position)


def paired(source: Source, unreadable: dict[str, str]) -> Iterator[tuple[Record | Rejected, Encoded | Rejected]]:
    """Each item the readers yield, with what convert's `encode_batches` makes of it, in input order.

    An input that fails part way is put in `unreadable` (path -> why), and the next input is read.
    """
    pending: deque[Record | Rejected] = deque()

    def feed() -> Iterator[Record | Rejected]:
        for path in source.paths:
            try:
                for item in reader_for(path, split=source.split, records=source.records_field).read(path):
                    pending.append(item)
                    yield item
            except ReaderError as error:
                unreadable[str(path)] = str(error)

    for results in encode_batches(feed(), source.shape, source.template):
        for result in results:
            yield pending.popleft(), result


def validate_raw(inputs: list[str], options: SourceOptions, checks: RawChecks = RawChecks(), *,
                 progress: bool | None = False) -> Report:
    """Check raw records as convert would read them, plus text, length and duplicate checks.

    Args:
        inputs: files, folders or globs, as for convert.
        options: the shape, template and tokenizer options, as for convert.
        checks: the extra checks' settings and the verdict's thresholds.
        progress: show a progress bar on stderr; None: only where stderr is a terminal.

    An input that cannot be read is reported (unreadable_file) and the others are checked.

    Raises:
        InputError: an input is missing or of an unknown type, or no shape fits an input.
        ConvertError: the tokenizer cannot be loaded.

    Example:
        >>> validate_raw(["examples/chat_logs.jsonl"], SourceOptions()).stats["records"]
        14
    """
    from tqdm import tqdm

    unreadable: dict[str, str] = {}
    source = open_source(inputs, options, unreadable=unreadable)
    report = Report("raw", [str(p) for p in source.paths], "record", max_examples=checks.max_examples,
                    strict=checks.strict, max_error_rate=checks.max_error_rate)
    stats = SampleStats(source.template.tokenizer.special_tokens["<|start_header_id|>"])
    duplicates = Duplicates()
    per_file: Counter[str] = Counter()
    with tqdm(disable=None if progress is None else not progress, unit=" rec", desc="validating",
              dynamic_ncols=True) as bar:
        for item, result in paired(source, unreadable):
            per_file[item.location.source] += 1
            findings = scan_record(source.shape.scanned(item)) if isinstance(item, Record) else []
            if isinstance(item, Record):
                findings += record_tool_findings(source, item, result)
                findings += record_reasoning_findings(source, item)
            if isinstance(result, Rejected):
                # convert's invalid_text is a lone surrogate, which the text scan has named by its field already
                if not (result.reason == INVALID_TEXT and any(f.code == LONE_SURROGATE for f in findings)):
                    findings.insert(0, Finding(result.reason, result.detail))
            else:
                stats.add(result)
                findings += sample_findings(result, duplicates, checks.max_seq_len)
                findings += [Finding(code, MEANING_DETAILS[code]) for code in source.shape.meaning(item)]
            report.add(item.location, findings)
            bar.update()
    report.checked = sum(per_file.values())
    for path, why in sorted(unreadable.items()):
        report.add_file(Location(path), Finding(UNREADABLE_FILE, why.removeprefix(f"{path}: ")))
    for path in source.paths:
        if not per_file[str(path)] and str(path) not in unreadable:
            report.add_file(Location(str(path)), Finding(EMPTY_FILE, "the file holds no records"))
    if source.layout is not None:
        report.add_file(Location(", ".join(inputs)), Finding(LAYOUT_CHOSEN, f"no shape fits by field names; read with "
                                                                            f"{source.layout.flags}, the one layout "
                                                                            "every sampled record fits"))
    if not report.checked:
        report.add_file(Location(", ".join(inputs)),
                        Finding(NO_RECORDS, "no records in any input: nothing to train on"))
    files = len({*map(str, source.paths), *unreadable})  # an input that failed part way is in both
    report.stats = {"files": files, "records": report.checked, **stats.to_json()}
    traces = source.template.reasoning_counts
    if traces.turns or traces.dropped:
        report.stats["reasoning"] = traces.to_json()
    return report


def sample_findings(sample: Encoded | EncodedPair, duplicates: Duplicates, max_seq_len: int | None) -> list[Finding]:
    """Findings about a rendered sample (or pair): too long for the context, or a copy of an earlier one."""
    findings = []
    longest = max(len(side.input_ids) for side in getattr(sample, "sides", (sample,)))  # a pair: its longer side
    if max_seq_len is not None and longest > max_seq_len:
        findings.append(Finding(TOO_LONG, f"{longest:,} tokens > --max-seq-len {max_seq_len:,}"))
    if (first := duplicates.first_seen(sample)) is not None:
        findings.append(Finding(DUPLICATE, f"renders to the same tokens as {first}"))
    return findings


class SampleStats:
    """Statistics of the samples convert would write: their number, turns, tokens and trained share."""

    def __init__(self, header_id: int):
        self.header_id = header_id
        self.turns = Distribution()
        self.tokens = Distribution()
        self.trained_tokens = 0

    def add(self, sample: Encoded) -> None:
        # Only the template places <|start_header_id|> (content is encoded as text), so it counts turns.
        self.turns.add(sample.input_ids.count(self.header_id))
        self.tokens.add(len(sample.input_ids))
        self.trained_tokens += sample.trained_tokens

    def to_json(self) -> dict:
        return {
            "samples": self.tokens.n,
            "turns_per_conversation": self.turns.to_json(),
            "tokens_per_sample": self.tokens.to_json(),
            "tokens": self.tokens.total,
            "trained_tokens": self.trained_tokens,
            "trained_share": round(self.trained_tokens / self.tokens.total, 4) if self.tokens.total else None,
        }
