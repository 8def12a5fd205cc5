"""The convert run: read -> shape -> render -> write, streamed in batches, with counts that add up."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import astuple, dataclass, field, replace
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .conversation import SPECIAL_TEXT, TOO_LONG, Conversation, Record, RecordError, Rejected
from .engine import WorkerError, Workers
from .keep import check_keep_columns, kept_values
from .lengths import LengthPolicy, LengthStats, Overflow
from .packing import DEFAULT_WINDOW, Packer
from .plain import PlainBatch, PlainRecords, SplitChunk, plain_records, split_ahead
from .readers import ReaderError, expand_inputs, read_records, reader_for
from .readers.base import Chunk, RecordChunk
from .readers.json import MissingRecords
from .remote import UrlError, is_url, join, object_version
from .shapes import AUTO, FieldMapping, ShapeNotFound, TurnRules
from .shapes.candidates import Candidate, auto_layout
from .shapes.mapping import UnknownField, check_field
from .shapes.meaning import warning_text
from .shapes.reasoning import read_traces
from .shapes.shaper import Shaper
from .shapes.turns import checked_texts
from .tasks import ALL_SHAPES, PREFERENCE, SFT, TASK_CHOICES, PreferenceTask, SftTask, detect, make_task, task_of
from .template import TEMPLATES, Encoded, Llama3Template, Llama31Template, MaskPolicy, Samples, ToolPlacement
from .template.chat_template import chat_template_notes
from .template.reasoning import ReasoningCounts, ReasoningPolicy
from .tokenizer import Tokenizer
from .tokenizer_backends import BackendMismatch, auto_backend
from .units import UNIT_BYTES, WORK_DIR, Unit, WorkDir, plan_units
from .writers import (MANIFEST_FILE, REJECTS_FILE, WRITERS, RejectsWriter, ShardInfo, ShardWriter, join_rejects,
                      write_manifest)
from .writers.folder import Folder
from .writers.shards import Columns

if TYPE_CHECKING:  # imports ray's engine only where it is chosen
    from .ray_engine import RayEngine

BATCH_RECORDS = 1024  # records shaped and tokenized together by `encode_batches`
DETECT_RECORDS = 100  # records at the start of each input that decide its shape under --shape auto
# A shard file's name (`part-00003-shard-00000.parquet`; `shard-00000...` from sftconv before units), and nothing else
# starting with `part-`: Spark and Hadoop name their files that way too.
SHARD_NAME = re.compile(r"(part-\d{5}-)?shard-\d{5}\.(parquet|arrow|jsonl|(input_ids|loss_mask)\.(bin|idx))$")
SPECIAL_TEXT_POLICIES = ("keep", "reject")  # --special-text: what to do with a record holding special-token text


class ConvertError(Exception):
    """A run that cannot start or must stop; the message says what to do."""


class InputError(ConvertError):
    """Inputs named wrongly (a missing path, a file type no reader knows, no shape fits), or options that cannot
    work with the data found (Megatron shards of preference pairs...): bad usage, exit 2."""


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """What decides how raw records become samples; shared by convert, validate and inspect."""

    tokenizer: str | None = None
    tokenizer_backend: str = "auto"  # a name in tokenizer_backends.BACKENDS; never changes the ids, so not in to_json
    shape: str = AUTO  # a name in SHAPES or PREFERENCE_SHAPES, or AUTO: detected per input
    task: str = AUTO  # one of TASK_CHOICES: AUTO picks preference where most records are pairs (see `tasks.detect`)
    split: str | None = None  # the split of a Hugging Face DatasetDict
    records_field: str | None = None  # the list holding a .json document's records (see `JsonReader`)
    mapping: FieldMapping = field(default_factory=FieldMapping)
    system: str | None = None
    replace_system: bool = False
    merge_consecutive: bool = False
    drop_empty_turns: bool = False
    train_on: MaskPolicy = MaskPolicy.ASSISTANT
    template: str = Llama3Template.name  # a name in TEMPLATES; the options below apply to llama3.1 only
    date_string: str = Llama31Template.DEFAULT_DATE
    tools_in: ToolPlacement = ToolPlacement.USER
    train_tool_calls: bool = True
    special_text: str = "keep"  # one of SPECIAL_TEXT_POLICIES
    reasoning: ReasoningPolicy = field(default_factory=ReasoningPolicy)

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown template {self.template!r} (expected one of {', '.join(TEMPLATES)})")
        if self.task not in TASK_CHOICES:
            raise ValueError(f"unknown task {self.task!r} (expected one of {', '.join(TASK_CHOICES)})")
        if self.special_text not in SPECIAL_TEXT_POLICIES:
            raise ValueError(f"unknown special_text {self.special_text!r} "
                             f"(expected one of {', '.join(SPECIAL_TEXT_POLICIES)})")

    def rules(self) -> TurnRules:
        return TurnRules(system=self.system, replace_system=self.replace_system,
                         merge_consecutive=self.merge_consecutive, drop_empty_turns=self.drop_empty_turns)

    def make_task(self, names: dict[str, str | None]) -> SftTask | PreferenceTask:
        """The task of inputs with these shapes, set up with these options."""
        return make_task(names)

    def make_template(self, tokenizer: Tokenizer) -> Llama3Template:
        """The template these options name, set up with them."""
        if self.template == Llama31Template.name:
            return Llama31Template(tokenizer, self.train_on, date_string=self.date_string, tools_in=self.tools_in,
                                   train_tool_calls=self.train_tool_calls, reasoning=self.reasoning)
        return Llama3Template(tokenizer, self.train_on, reasoning=self.reasoning)

    def to_json(self) -> dict:
        return {
            "shape": self.shape,
            "split": self.split,
            **({"records_field": self.records_field} if self.records_field is not None else {}),
            "mapping": self.mapping.to_json(),
            "system": self.system,
            "replace_system": self.replace_system,
            "merge_consecutive": self.merge_consecutive,
            "drop_empty_turns": self.drop_empty_turns,
            "template": self.template,
            "train_on": MaskPolicy(self.train_on).value,
            "special_text": self.special_text,
            "reasoning": self.reasoning.to_json(),
            **({"date_string": self.date_string, "tools_in": ToolPlacement(self.tools_in).value,
                "train_tool_calls": self.train_tool_calls} if self.template == Llama31Template.name else {}),
        }


@dataclass(frozen=True, kw_only=True)
class ConvertOptions(SourceOptions):
    """Everything that decides the bytes a convert run writes (and so goes into the manifest).

    `max_seq_len` defaults to `pack` when packing; `shard_rows` and `shard_bytes` may both be None
    (one shard). See `LengthPolicy`, `Packer` and `ShardWriter` for what each option does.

    Raises:
        ValueError: an unknown format, a size below 1, a `max_seq_len` longer than `pack`, or `keep_columns`
            that the format or packing cannot hold (see `keep.check_keep_columns`).
    """

    shard_rows: int | None = 100_000
    on_error: str = "skip"
    format: str = "parquet"
    shard_bytes: int | None = None
    max_seq_len: int | None = None
    overflow: Overflow = Overflow.DROP
    pack: int | None = None
    pack_window: int = DEFAULT_WINDOW
    unit_bytes: int = UNIT_BYTES  # input bytes per unit (see `units`): shards, packing and resume go unit by unit
    keep_columns: tuple[str, ...] = ()  # record fields carried into every row (see `keep`)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_keep_columns(self.keep_columns, format=self.format, packed=self.pack is not None)
        if self.format not in WRITERS:
            raise ValueError(f"unknown format {self.format!r} (expected one of {', '.join(WRITERS)})")
        for name in ("shard_rows", "shard_bytes", "max_seq_len", "pack", "pack_window", "unit_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, found {value}")
        if self.pack is not None and self.max_seq_len is not None and self.max_seq_len > self.pack:
            raise ValueError(f"max_seq_len {self.max_seq_len} is longer than pack {self.pack}: such a sample "
                             "cannot be packed; lower max_seq_len or leave it out (it defaults to pack)")

    def make_task(self, names: dict[str, str | None]) -> SftTask | PreferenceTask:
        return make_task(names, max_seq_len=self.seq_limit, truncate=self.overflow is not Overflow.DROP)

    @property
    def seq_limit(self) -> int | None:
        """The most tokens a written sample may have, if any."""
        return self.max_seq_len if self.max_seq_len is not None else self.pack

    def to_json(self) -> dict:
        return {
            **super().to_json(),
            "shard_rows": self.shard_rows,
            "shard_bytes": self.shard_bytes,
            "max_seq_len": self.seq_limit,
            "overflow": Overflow(self.overflow).value,
            "pack": self.pack,
            "pack_window": self.pack_window,
            "unit_bytes": self.unit_bytes,
            "on_error": self.on_error,
            **({"keep_columns": list(self.keep_columns)} if self.keep_columns else {}),
        }


@dataclass
class Summary:
    """The run's counts; `read == written + rejected + dropped` always holds, and `written` counts samples.

    `rows` counts what the shards hold: samples, or packed rows when `pack` is set.
    """

    read: int = 0
    written: int = 0
    rows: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    dropped_by_reason: Counter = field(default_factory=Counter)
    tokens: int = 0
    trained_tokens: int = 0
    lengths: LengthStats = field(default_factory=LengthStats)
    pack: int | None = None
    shards: list[ShardInfo] = field(default_factory=list)
    shapes: dict[str, str | None] = field(default_factory=dict)  # input -> its shape (None: no records)
    warnings: list[str] = field(default_factory=list)
    special_text_records: int = 0  # records holding special-token text or another template's markers
    reasoning: ReasoningCounts = field(default_factory=ReasoningCounts)  # traces in the samples rendered
    task: str = SFT  # `sft`, or `preference`: then `written` counts pairs (or KTO samples), a row each
    warned_by_code: Counter = field(default_factory=Counter)  # samples by `shapes.meaning` warning code

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def dropped(self) -> int:
        return sum(self.dropped_by_reason.values())

    @property
    def efficiency(self) -> float | None:
        """Packing efficiency: tokens / (rows x pack), or None when not packing."""
        if self.pack is None:
            return None
        return self.tokens / (self.rows * self.pack) if self.rows else 0.0

    def to_json(self) -> dict:
        return {
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "dropped_by_reason": dict(sorted(self.dropped_by_reason.items())),
            "rows": self.rows,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "reasoning": self.reasoning.to_json(),
            **({"warned_by_code": dict(sorted(self.warned_by_code.items()))} if self.warned_by_code else {}),
        }

    def to_receipt(self) -> dict:
        """What a unit's receipt keeps of its summary: everything `add` sums."""
        return {**self.to_json(), "lengths": self.lengths.to_json(), "special_text_records": self.special_text_records,
                "shards": [shard.to_json() for shard in self.shards]}

    @classmethod
    def from_receipt(cls, data: dict) -> Summary:
        return cls(read=data["read"], written=data["written"], rows=data["rows"],
                   rejected_by_reason=Counter(data["rejected_by_reason"]),
                   dropped_by_reason=Counter(data["dropped_by_reason"]), tokens=data["tokens"],
                   trained_tokens=data["trained_tokens"], lengths=LengthStats(**data["lengths"]),
                   special_text_records=data["special_text_records"],
                   warned_by_code=Counter(data.get("warned_by_code", {})),
                   shards=[ShardInfo.from_json(shard) for shard in data["shards"]],
                   reasoning=ReasoningCounts(**data.get("reasoning", {})))

    def add(self, unit: Summary) -> None:
        """Count a unit's summary into the run's."""
        self.read += unit.read
        self.written += unit.written
        self.rows += unit.rows
        self.rejected_by_reason += unit.rejected_by_reason
        self.dropped_by_reason += unit.dropped_by_reason
        self.tokens += unit.tokens
        self.trained_tokens += unit.trained_tokens
        self.lengths = LengthStats(*(a + b for a, b in zip(astuple(self.lengths), astuple(unit.lengths))))
        self.special_text_records += unit.special_text_records
        self.reasoning.add(unit.reasoning)
        self.warned_by_code += unit.warned_by_code
        self.shards += unit.shards


def prepare_output(folder: Folder, *, overwrite: bool, resume: bool, identity: dict, units: list[Unit]) -> dict[int, Summary]:
    """Make the output folder ready for the run and return the units already done (by an interrupted run, under resume).

    A folder holding files is refused unless `overwrite` (our files are replaced) or `resume` (an
    interrupted run of the same inputs and options is continued: its finished units are kept once their
    files verify, everything else of ours is removed).

    Raises:
        ConvertError: the folder holds files and neither flag allows it, or `resume` finds another run.
    """
    folder.make()
    work = WorkDir(folder)
    entries = folder.entries()
    interrupted = entries.get(WORK_DIR) is False
    done: dict[int, Summary] = {}
    if resume and interrupted:
        if work.identity() != identity:
            raise ConvertError(f"{folder.location} holds an interrupted run of other inputs or options, so it cannot "
                               "be resumed with these; pass --overwrite to start again")
        done = {index: Summary.from_receipt(result) for index, result in work.finished(units).items()}
    existing = sorted(name for name in entries if name != WORK_DIR or not resume)
    if existing and not (overwrite or resume):
        shown = ', '.join(existing[:3]) + (', ...' if len(existing) > 3 else '')
        hint = "--resume to finish that run, or " if interrupted else ""
        raise ConvertError(f"{folder.location} is not empty ({shown}); pass {hint}--overwrite to replace it")
    foreign = [name for name in existing if not is_ours(name)]
    if resume and not overwrite and foreign and not interrupted:  # with a run of ours there, they were there too
        raise ConvertError(f"{folder.location} holds files sftconv did not write ({', '.join(foreign[:3])}); "
                           "resume into the folder of the interrupted run")
    keep = {f.name for summary in done.values() for shard in summary.shards for f in shard.files}
    for name, is_file in entries.items():
        if is_file and is_ours(name) and name not in keep:
            folder.remove(name)
    if not done:
        work.start(identity)
    return done


def is_ours(name: str) -> bool:
    """Whether a file name is one a run writes: shards of any format, their side files, or their temp names."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:-len(".tmp")]
    side_files = {MANIFEST_FILE, REJECTS_FILE, WORK_DIR}.union(*(writer.side_files for writer in WRITERS.values()))
    return SHARD_NAME.match(name) is not None or name in side_files


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class InputShape(Shaper):
    """How one input's records become conversations: field names renamed, the shape, inline traces, the turn rules."""

    def __call__(self, record: Record) -> Conversation:
        data = self.mapping.apply(record.data, self.shape.fields)
        messages = self.rules(read_traces(self.read_with(self.shape, data)))
        return checked_texts(Conversation(messages, record.location, self.read_with(self.shape.tools, data)))


class FileShapes:
    """Shapes each record with the shape resolved for the input it came from (inputs may differ in shape)."""

    def __init__(self, by_input: dict[str, InputShape | None], special_text: str = "keep",
                 task: SftTask | PreferenceTask | None = None, keep: tuple[str, ...] = ()):
        self.by_input = by_input
        self.special_text = special_text  # one of SPECIAL_TEXT_POLICIES: what encode_chunk does with such text
        self.task = task or SftTask()  # renders what the shapes make: SFT samples or preference pairs
        self.keep = keep  # record fields encode_chunk carries along with each sample (--keep-columns)
        self._plain: dict[str, PlainRecords | None] = {}  # input -> how its plain records look, once asked

    def __call__(self, record: Record) -> Conversation:
        return self.by_input[record.location.source](record)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_plain": {}}  # typed decoders do not pickle; each process makes its own

    def meaning(self, record: Record) -> tuple[str, ...]:
        """`InputShape.meaning` for the input the record came from."""
        return self.by_input[record.location.source].meaning(record)

    def scanned(self, record: Record) -> Any:
        """`InputShape.scanned` for the input the record came from."""
        return self.by_input[record.location.source].scanned(record)

    def plain(self, chunk: Chunk, template: Llama3Template) -> PlainBatch | None:
        """The chunk split into its plain records and the others (see `plain`); None where the batch path does not
        apply: preference data, kept columns, or an input, template or chunk it cannot read."""
        if isinstance(chunk, SplitChunk):
            return chunk.batch()
        source = getattr(chunk, "source", None)  # a chunk of one input's file (not a RecordChunk)
        if source is None or self.keep or self.task.name != SFT:
            return None
        if source not in self._plain:
            shaped = self.by_input.get(source)
            self._plain[source] = None if shaped is None else plain_records(shaped, template)
        records = self._plain[source]
        return None if records is None else records.split(chunk)

    @property
    def names(self) -> dict[str, str | None]:
        """Each input's shape name; None for an input with no records."""
        return {source: shaped.shape.name if shaped else None for source, shaped in self.by_input.items()}


@dataclass
class Source:
    """Opened inputs, ready to stream: the inputs, each one's shape, and the template that renders."""

    paths: list[Path | str]
    tokenizer: Tokenizer
    template: Llama3Template
    shape: FileShapes
    split: str | None = None
    records_field: str | None = None
    warnings: list[str] = field(default_factory=list)
    layout: Candidate | None = None  # the shape and fields chosen when no shape fit by field names (`auto_layout`)

    def records(self) -> Iterator[Record | Rejected]:
        """Every record of every input, in order.

        Raises:
            ConvertError: an input cannot be read (corrupt, truncated...).
        """
        try:
            yield from read_records(self.paths, split=self.split, records=self.records_field)
        except ReaderError as error:
            raise ConvertError(str(error)) from error


def open_source(inputs: list[str], options: SourceOptions, *, unreadable: dict[str, str] | None = None) -> Source:
    """Expand the inputs, resolve each one's shape and load the tokenizer; fail early, saying what to do.

    Args:
        unreadable: if given, an input whose first records cannot be read is left out and put here
            (path -> why), instead of failing the whole source.

    Raises:
        InputError: an input is missing or of an unknown type, no shape fits an input's records, or
            there is no input.
        ConvertError: an input is unreadable, or the tokenizer cannot be loaded.
        UnknownField: a field the mapping names is in no sampled record.
    """
    try:
        paths = expand_inputs(inputs)
    except (FileNotFoundError, UrlError) as error:
        raise InputError(str(error)) from error
    except ValueError as error:
        raise ConvertError(str(error)) from error
    try:
        for path in paths:
            reader_for(path, split=options.split, records=options.records_field)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from error
    if not paths:
        raise InputError(f"no input files found in {', '.join(inputs)}")
    # Before any record is read: a wrong tokenizer stops the run here.
    sizes = [input_identity(p).get("bytes") for p in paths]  # a URL's from its store; None for an hf: dataset
    tokenizer, template = load_tokenizer(options, None if None in sizes else sum(sizes))
    warnings, names, samples = chat_template_notes(tokenizer, template), {}, {}
    for path in paths:
        try:
            samples[path], empty = sample_records(path, options.split, options.records_field)
        except ConvertError as error:
            if unreadable is None:
                raise
            unreadable[str(path)] = str(error)
            continue
        if empty:
            warnings.append(f"{path}: no records (an empty input); it adds nothing to the dataset")
    # A field the mapping names must be somewhere in the samples; UnknownField is a usage error in every command.
    sampled = [record for sample in samples.values() for record in sample]
    options.mapping.check_names(sampled)
    for name in getattr(options, "keep_columns", ()) if sampled else ():
        check_field(name, "--keep-columns", sampled)
    unfit: dict[Path | str, ShapeNotFound] = {}
    for path, sample in samples.items():
        name = options.shape
        if name == AUTO:
            try:
                name = detect(sample, options.mapping, options.task) if sample else None
            except ShapeNotFound as error:
                unfit[path], name = error, None
        names[str(path)] = name
    chosen = auto_layout([error.chosen for error in unfit.values()], names, options.mapping) if unfit else None
    if unfit and chosen is None:
        path, error = next(iter(unfit.items()))
        raise InputError(f"{path}: {error}")
    if chosen is not None:
        options = replace(options, mapping=options.mapping.merged(**dict(chosen.fields)))
        names.update(dict.fromkeys(map(str, unfit), chosen.shape))
        warnings.append(f"no record shape fits {', '.join(map(str, unfit))} by its field names; read with "
                        f"{chosen.flags}, the one layout every sampled record fits (pass them to make it explicit)")
    if task_of(names) is None or (options.task != AUTO and task_of(names) != options.task):
        raise InputError(mixed_tasks(names, options.task))
    paths = [path for path in paths if str(path) in names]  # the readable ones
    return Source(paths, tokenizer, template, file_shapes(names, options), split=options.split,
                  records_field=options.records_field, warnings=warnings, layout=chosen)


def load_tokenizer(options: SourceOptions, input_bytes: int | None = None) -> tuple[Tokenizer, Llama3Template]:
    """The tokenizer the options name and the template set up on it; `input_bytes` (None: unknown) decides
    what backend `auto` is.

    Raises:
        ConvertError: the tokenizer cannot be found or loaded, is not Llama 3's, or lacks a token the template needs.
    """
    try:
        tokenizer = Tokenizer(options.tokenizer, backend=auto_backend(options.tokenizer_backend, input_bytes))
        tokenizer.preload(wait=False)  # while records are sampled and shapes found
        return tokenizer, options.make_template(tokenizer)
    except (OSError, ValueError) as error:
        raise ConvertError(f"cannot load tokenizer: {error}") from error


def file_shapes(names: dict[str, str | None], options: SourceOptions) -> FileShapes:
    """The shaper for inputs whose shapes are known by name (None: an input with no records)."""
    rules = options.rules()
    task = options.make_task(names)
    return FileShapes({source: task.shaper(ALL_SHAPES[name](options.mapping.roles), options.mapping, rules)
                       if name else None for source, name in names.items()}, options.special_text, task,
                      getattr(options, "keep_columns", ()))


def mixed_tasks(names: dict[str, str | None], task: str) -> str:
    """Why inputs of these shapes cannot be converted together (or under `--task task`), and what to do."""
    shown = ", ".join(f"{source} ({name})" for source, name in names.items() if name)
    if task != AUTO:
        return f"--task {task} does not fit the shapes of {shown}; choose a shape of that task with --shape"
    return (f"the inputs hold different kinds of samples: {shown}; SFT samples, preference pairs and KTO samples are "
            "written in different rows, so convert them apart")


def sample_records(path: Path | str, split: str | None, records: str | None = None) -> tuple[list, bool]:
    """The data of the input's first DETECT_RECORDS records, and whether the input holds nothing at all.

    Raises:
        ConvertError: the input cannot be read.
        UnknownField: `records` (--records-field) names no list in the input.
    """
    items = reader_for(path, split=split, records=records).read(path)
    sample, seen = [], False
    try:
        for item in items:
            seen = True
            if isinstance(item, Record):
                sample.append(item.data)
                if len(sample) == DETECT_RECORDS:
                    break
    except MissingRecords as error:
        raise UnknownField(str(error)) from error
    except ReaderError as error:
        raise ConvertError(str(error)) from error
    finally:
        items.close()
    return sample, not seen


@dataclass(frozen=True)
class EncodedChunk:
    """What becomes of a chunk: its samples, its rejects (each with its position in the chunk), the records read."""

    samples: Samples
    rejected: list[tuple[int, Rejected]]
    read: int
    marked: int  # records holding special-token text or another template's markers
    reasoning: ReasoningCounts = field(default_factory=ReasoningCounts)  # the traces its samples rendered
    warned: Counter = field(default_factory=Counter)  # samples by warning code of `shapes.meaning`
    kept: list[tuple[str | None, ...]] | None = None  # each sample's kept record fields, under --keep-columns


def encode_chunk(job: tuple[FileShapes, Llama3Template], chunk: Chunk) -> EncodedChunk:
    """Decode, shape and render one chunk; runs in a worker process, so it returns flat arrays, cheap to send back.

    The chunk's plain records take the batch path (`plain`), where the input allows it; every other
    record takes `encode_records`. Both give the same bytes.
    """
    shape, template = job
    plain = shape.plain(chunk, template)
    try:
        if plain is None:
            return encode_records(job, enumerate(chunk.records()))[0]
        rendered = plain.render(template)
        if not plain.others:
            return EncodedChunk(rendered, [], plain.read, 0)
        result, places = encode_records(job, plain.others)
    except BackendMismatch as error:  # the fast tokenizer gave other ids than tiktoken: the run stops
        raise ConvertError(str(error)) from error
    samples = Samples.in_order([(rendered, plain.places), (result.samples, places)])
    return replace(result, samples=samples, read=plain.read)


def encode_records(job: tuple[FileShapes, Llama3Template], items: Iterable[tuple[int, Record | Rejected]]
                   ) -> tuple[EncodedChunk, list[int]]:
    """Shape and render records, each with its place in the chunk; returns what becomes of them and the places of
    the samples written.

    Special-token text is never a control token (the tokenizer encodes it as plain text); it is looked
    for in every string of each record, as `validate` does, counted, and rejected under
    `special_text="reject"`. Meaningful fields the shape leaves unread reject the record or are
    counted by warning code (`shapes.meaning`).
    """
    from .validate.text import first_marker

    shape, template = job
    chats: list[Conversation] = []
    shaped: list[tuple[int, Record]] = []
    notes: list[tuple[str, ...]] = []
    rejected: list[tuple[int, Rejected]] = []
    read = marked = 0
    for index, item in items:
        read += 1
        if isinstance(item, Record):
            finding = first_marker(shape.scanned(item))
            marked += finding is not None
            try:
                if finding is not None and shape.special_text == "reject":
                    raise RecordError(SPECIAL_TEXT, f"{finding.field}: {finding.detail}")
                codes = shape.meaning(item)
                chats.append(shape(item))
                shaped.append((index, item))
                notes.append(codes)
                continue
            except RecordError as error:
                item = Rejected(item.location, error.reason, error.detail, item.data)
        rejected.append((index, item))
    total, template.reasoning_counts = template.reasoning_counts, ReasoningCounts()  # these records' apart
    samples, errors = shape.task.render(template, chats)
    counts, template.reasoning_counts = template.reasoning_counts, total
    total.add(counts)
    failed = [(index, Rejected(item.location, error.reason, error.detail, item.data))
              for (index, item), error in zip(shaped, errors) if error is not None]
    if failed:
        rejected = sorted(rejected + failed, key=itemgetter(0))
    warned = Counter(code for codes, error in zip(notes, errors) if error is None for code in codes)
    kept = [kept_values(item.data, shape.keep) for (_, item), error in zip(shaped, errors)
            if error is None] if shape.keep else None
    places = [index for (index, _), error in zip(shaped, errors) if error is None]
    return EncodedChunk(samples, rejected, read, marked, counts, warned, kept), places


def encode_batches(items: Iterable[Record | Rejected], shape, template: Llama3Template,
                   ) -> Iterator[list[Encoded | Rejected]]:
    """Shape and render records a batch at a time; each item becomes a sample (an Encoded, or for preference data an
    EncodedPair) or a Rejected, in input order.

    `shape` takes a Record (so it can tell which input the record came from) and returns its
    Conversation; `Source.shape` is one.
    """
    for batch in batched(items, BATCH_RECORDS):
        result = encode_chunk((shape, template), RecordChunk(batch))
        rejected = dict(result.rejected)
        rendered = iter(result.samples.split())
        yield [rejected[i] if i in rejected else shape.task.sample(next(rendered), item.location)
               for i, item in enumerate(batch)]


@dataclass(frozen=True)
class UnitJob:
    """What every unit of a run shares: picklable, so a unit can run in another process or on another machine."""

    options: ConvertOptions
    shapes: dict[str, str | None]  # each input's shape name, as `open_source` resolved it
    out_dir: str

    def open(self) -> tuple[FileShapes, Llama3Template]:
        """The shaper and template that encode this run's chunks, built where the units run.

        Raises:
            ConvertError: the tokenizer cannot be loaded.
        """
        return file_shapes(self.shapes, self.options), load_tokenizer(self.options)[1]


def convert(inputs: list[str], out_dir: str | Path, options: ConvertOptions, *, overwrite: bool = False,
            resume: bool = False, progress: bool | None = False, workers: int = 1, engine: RayEngine | None = None,
            ) -> Summary:
    """Convert raw chat records into tokenized shards, `rejects.jsonl` and `manifest.json`.

    The inputs are cut into units (see `units`), converted in order; a unit's shards, rejects and
    receipt are complete before the next starts, and the manifest is written last.

    Args:
        inputs: files, folders or globs.
        out_dir: the output folder, a path or a URL (`s3://bucket/run`: see `writers.folder`); created if
            missing, and refused if it holds files unless `overwrite` or `resume`.
        options: what decides the output bytes.
        overwrite: replace a previous run's files in `out_dir`.
        resume: finish an interrupted run of the same inputs and options in `out_dir`: its finished units
            are verified and kept, the rest converted; the result is the bytes an uninterrupted run writes.
        progress: show a progress bar on stderr; None: only where stderr is a terminal.
        workers: processes that decode, shape and tokenize (1: all in this process); the output
            is the same whatever the number.
        engine: who runs the units: None, this machine with `workers` processes; an entered
            `RayEngine`, Ray tasks on a cluster (`ray_engine`). The output is the same bytes.

    Raises:
        ConvertError: no input, an unreadable input, a non-empty output folder, a worker process
            that died, or (with `on_error="fail"`) the first rejected record.
    """
    source = open_source(inputs, options)
    refuse_unsupported(source.shape.task, options)
    if source.layout is not None:  # chosen because no shape fit: the manifest records it as if it were given
        options = replace(options, mapping=options.mapping.merged(**dict(source.layout.fields)))
    identity = run_identity(source, options)
    try:
        folder = Folder.at(out_dir)
    except UrlError as error:  # an unknown scheme, its package missing, or a password in the URL
        raise InputError(str(error)) from error
    except ValueError as error:
        raise ConvertError(str(error)) from error
    with folder:
        if resume and folder.is_file(MANIFEST_FILE):
            return finished_run(folder, identity)
        try:
            units = plan_units(source.paths, split=options.split, unit_bytes=options.unit_bytes,
                               records=options.records_field)
        except (OSError, ReaderError) as error:
            raise ConvertError(str(error)) from error
        done = prepare_output(folder, overwrite=overwrite, resume=resume, identity=identity, units=units)
        # Units run with the backend this process chose for the whole input, not one chosen per unit.
        job = UnitJob(replace(options, tokenizer_backend=source.tokenizer.backend.name), source.shape.names,
                      folder.location)
        results = dict(done)
        todo = [unit for unit in units if unit.index not in results]
        first = None  # the first unit's chunks, some split while the tokenizer loads
        if engine is None:
            if todo:
                first = split_ahead(unit_chunks(todo[0], options), lambda c: source.shape.plain(c, source.template),
                                    source.tokenizer)
            source.tokenizer.preload()  # workers forked from here share the loaded backend instead of each loading it
        local = Workers(workers, (source.shape, source.template)) if engine is None else nullcontext()
        with local as pool, Progress(progress) as bar:
            bar.update(sum(s.read for s in done.values()), sum(s.tokens for s in done.values()))
            if engine is not None:
                results.update(engine.run(job, todo, bar))
            else:
                for unit in todo:
                    results[unit.index] = convert_unit(job, unit, pool, bar, first if unit is todo[0] else None)
        return finish_run(folder, source, options, [results[unit.index] for unit in units], units)


def refuse_unsupported(task: SftTask | PreferenceTask, options: ConvertOptions) -> None:
    """Refuse the options the task's rows cannot have, saying what would work.

    Raises:
        InputError: a kept field named as a column the rows have already; Megatron shards, packing,
            `--train-on all` or token truncation with preference data.
    """
    taken = sorted(set(options.keep_columns) & set(task.layout(options.pack is not None).schema().names))
    if taken:
        raise InputError(f"--keep-columns {taken[0]}: every {task.layout_name} row has a column of that name "
                         "already; rename the field in your data to keep it")
    if task.name != PREFERENCE:
        return
    given = [(options.format == "megatron", "--format megatron (its indexed datasets have no pair layout; use "
                                            "parquet, hf or jsonl)"),
             (options.pack is not None, "--pack (a pair's sides are one row each; use --max-seq-len)"),
             (options.train_on is MaskPolicy.ALL, "--train-on all (the prompt is never trained; use assistant or last)"),
             (options.overflow is Overflow.TRUNCATE_TOKENS, "--overflow truncate-tokens (it would cut an answer; "
                                                            "use truncate, which cuts the prompt's history)")]
    refused = [text for bad, text in given if bad]
    if refused:
        raise InputError(f"preference data cannot be converted with {'; nor '.join(refused)}; or pass --task sft "
                           "to convert it as SFT samples")


def run_identity(source: Source, options: ConvertOptions) -> dict:
    """What a run converts: a resumed run must find the same, or its finished units would not fit."""
    return {"sftconv_version": __version__, "inputs": [input_identity(path) for path in source.paths],
            "format": options.format, "shapes": source.shape.names, "options": options.to_json(),
            "tokenizer": source.tokenizer.sha256}


def input_identity(path: Path | str) -> dict:
    """What tells one version of an input from another: a local file's size and mtime, a URL's object version."""
    if is_url(path):
        return {"input": path, **object_version(path)}
    if not isinstance(path, Path):
        return {"input": path}
    info = path.stat()
    return {"input": str(path), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def finished_run(folder: Folder, identity: dict) -> Summary:
    """The summary of a run that had already finished, once its manifest fits the run and its files verify.

    Raises:
        ConvertError: the manifest is of other inputs or options, or a file it lists is missing or changed.
    """
    manifest = json.loads(folder.read_text(MANIFEST_FILE))
    recorded = [manifest["sftconv_version"], manifest["inputs"], manifest["format"], manifest["shapes"],
                manifest["options"], manifest["tokenizer"]["sha256"]]
    if recorded != [identity["sftconv_version"], [i["input"] for i in identity["inputs"]], identity["format"],
                    identity["shapes"], identity["options"], identity["tokenizer"]]:
        raise ConvertError(f"{folder.location} holds a finished run of other inputs or options; "
                           "pass --overwrite to replace it")
    for shard in manifest["shards"]:
        for entry in shard["files"]:
            if not folder.verify(entry["file"], entry["bytes"], entry["sha256"]):
                raise ConvertError(f"{join(folder.location, entry['file'])} is missing or differs from manifest.json; "
                                   "pass --overwrite to convert again")
    WorkDir(folder).remove()  # left if the run was killed between writing its manifest and removing it
    counts = manifest["counts"]
    lengths = {key: value for key, value in (manifest["lengths"] or {}).items() if key in LengthStats().to_json()}
    summary = Summary.from_receipt({**counts, "lengths": lengths, "special_text_records": 0, "shards": manifest["shards"]})
    summary.pack, summary.shapes = manifest["options"]["pack"], manifest["shapes"]
    summary.task = manifest.get("task", SFT)
    summary.warnings = [f"{folder.location} already holds this run, finished; its {len(summary.shards)} shard(s) verify "
                        "(whether an input changed since is not recorded: --overwrite converts again)"]
    return summary


class Progress:
    """The run's bar on stderr: records read, with the tokens written and their rate (the run's average) after it."""

    def __init__(self, enabled: bool | None):
        from tqdm import tqdm

        self.bar = tqdm(disable=None if enabled is None else not enabled, unit=" rec", unit_scale=True, smoothing=0,
                        desc="converting", dynamic_ncols=True)
        self.tokens = 0

    def update(self, records: int, tokens: int) -> None:
        self.bar.update(records)
        self.tokens += tokens
        rate = self.tokens / max(self.bar.format_dict["elapsed"], 1e-9)
        size = self.bar.format_sizeof
        self.bar.set_postfix_str(f"{size(self.tokens)} tokens, {size(rate)} tok/s", refresh=False)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()


def unit_chunks(unit: Unit, options: ConvertOptions) -> Iterator[Chunk]:
    """The chunks of a unit's input span, read as they are taken.

    Raises:
        ReaderError: the input cannot be read.
    """
    return reader_for(unit.path, split=options.split, records=options.records_field).chunks(unit.path, unit.span)


def convert_unit(job: UnitJob, unit: Unit, pool: Workers, bar: Progress | None = None,
                 chunks: Iterator[Chunk] | None = None) -> Summary:
    """Convert one unit into its shards and rejects, then record its receipt; returns its summary.

    `pool` holds the shaper and template (`UnitJob.open`) as its job; `bar`, if given, counts the
    unit's records and tokens as they are written; `chunks`, if given, are the unit's (`unit_chunks`).

    Raises:
        ConvertError: the input cannot be read, a worker process died, or (with `on_error="fail"`)
            the unit's first rejected record.
    """
    options = job.options
    with Folder.at(job.out_dir) as folder:
        work = WorkDir(folder)
        packed = options.pack is not None
        writer = WRITERS[options.format](folder.local, shard_rows=options.shard_rows, shard_bytes=options.shard_bytes,
                                         packed=packed, prefix=f"{unit.name}-", publish=folder.publish,
                                         layout=pool.job[0].task.layout(packed, options.keep_columns))
        rejects = RejectsWriter(folder.local / work.rejects(unit))
        summary = Summary(pack=options.pack)
        chunks = unit_chunks(unit, options) if chunks is None else chunks
        try:
            run(chunks, pool, writer, rejects, summary, options, bar)
            summary.shards = writer.close()
            rejects.close()
        except BaseException as error:
            chunks.close()
            try:
                writer.abort()
            finally:
                rejects.abort()
            if isinstance(error, ReaderError):
                raise ConvertError(str(error)) from error
            raise
        folder.publish(rejects.path)
        work.save(unit, summary.to_receipt())
    return summary


def finish_run(folder: Folder, source: Source, options: ConvertOptions, results: list[Summary],
               units: list[Unit]) -> Summary:
    """Join the units' results into the run's rejects file, the format's folder files and the manifest (last)."""
    summary = Summary(pack=options.pack)
    for result in results:
        summary.add(result)
    summary.shapes, summary.warnings, summary.task = source.shape.names, list(source.warnings), source.shape.task.name
    if options.special_text == "keep" and summary.special_text_records:
        summary.warnings.append(
            f"{summary.special_text_records:,} record(s) hold special-token text or another template's markers, "
            "kept and encoded as plain text; sftconv validate lists them, --special-text reject rejects them")
    summary.warnings += [warning_text(code, count) for code, count in sorted(summary.warned_by_code.items())]
    work = WorkDir(folder)
    join_rejects(folder, [work.rejects(unit) for unit in units])
    packed, layout = options.pack is not None, source.shape.task.layout(options.pack is not None, options.keep_columns)
    summary.shards = WRITERS[options.format].finish(folder, summary.shards, packed=packed, layout=layout)
    tokenizer = source.tokenizer
    limit = options.seq_limit
    write_manifest(folder, {
        "sftconv_version": __version__,
        "format": options.format,
        "inputs": [str(p) for p in source.paths],
        "shapes": summary.shapes,
        "task": summary.task,
        "layout": layout.name,
        "options": options.to_json(),
        "tokenizer": tokenizer.to_json(),
        "counts": summary.to_json(),
        "lengths": None if limit is None else {
            "max_seq_len": limit, "overflow": Overflow(options.overflow).value, **summary.lengths.to_json()},
        "packing": None if options.pack is None else {
            "seq_len": options.pack, "window": options.pack_window, "rows": summary.rows,
            "samples": summary.written, "tokens": summary.tokens, "efficiency": round(summary.efficiency, 6)},
        "shards": [s.to_json() for s in summary.shards],
        "rejects_file": REJECTS_FILE,
    })
    work.remove()
    return summary


def run(chunks: Iterable[Chunk], pool: Workers, writer: ShardWriter, rejects: RejectsWriter, summary: Summary,
        options: ConvertOptions, bar: Progress | None = None) -> None:
    """Stream chunks' samples through the length policy and packer into the writer, counting each.

    Chunks are encoded by the pool's processes and taken back in input order; rejected records go to
    the rejects file (or, with `on_error="fail"`, stop the run); samples the length policy drops are
    counted by reason.

    Raises:
        ConvertError: a worker process died, or the first rejected record under `on_error="fail"`.
    """
    task, tokenizer = pool.job[0].task, pool.job[1].tokenizer
    limit = options.seq_limit
    lengths = None if limit is None else LengthPolicy(limit, options.overflow, eot_id=tokenizer.eot_id,
                                                      eom_id=tokenizer.eom_id)
    packer = None if options.pack is None else Packer(options.pack, options.pack_window)

    def write(columns: Columns) -> None:
        writer.write_columns(columns)
        summary.rows += len(columns)

    def write_samples(samples: Samples, fields: list | None = None) -> None:
        if lengths is not None:
            count = len(samples)
            samples, rows = task.fit(samples, lengths)
            if len(samples) < count:
                summary.dropped_by_reason[TOO_LONG] += count - len(samples)
            if fields is not None and rows is not None:
                fields = [fields[row] for row in rows.tolist()]
        write(task.columns(samples, packer, fields))
        summary.written += len(samples)
        summary.tokens += int(samples.lengths.sum())
        summary.trained_tokens += int(samples.loss_mask.sum())

    try:
        for result in pool.map(encode_chunk, chunks):
            samples, rejected, written = result.samples, result.rejected, summary.tokens
            if rejected and options.on_error == "fail":
                # Write what came before the first bad record, so the shards it completes are kept.
                position, first = rejected[0]
                write_samples(samples.take(range(position)), None if result.kept is None else result.kept[:position])
                raise ConvertError(f"{first.location}: {first.reason}: {first.detail}")
            for _, item in rejected:
                summary.rejected_by_reason[item.reason] += 1
                rejects.write(item)
            write_samples(samples, result.kept)
            summary.read += result.read
            summary.special_text_records += result.marked
            summary.reasoning.add(result.reasoning)
            summary.warned_by_code += result.warned
            if bar is not None:  # once per chunk, so the bar costs nothing next to the work
                bar.update(result.read, summary.tokens - written)
    except WorkerError as error:
        raise ConvertError(str(error)) from error
    if packer is not None:
        write(Columns.from_packed(packer.flush_samples()))
    if lengths is not None:
        summary.lengths = lengths.stats
