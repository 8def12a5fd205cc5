"""The batch path: a chunk's plain chat records decoded and checked together, straight into the template's lists.

Most records of the common shapes are a list of turns, each a role and a string (OpenAI, ShareGPT), or a
prompt and an answer (Alpaca, prompt/completion), and nothing that changes their meaning besides. Such a record
needs none of the per-record path's work (a Record, Messages, a Conversation, the turn rules, the scans for
special text and meaningful fields): a typed msgspec decoder reads it (JSON Lines), or Arrow flattens its
columns (Parquet); a few tests over the whole chunk check it; the template lays it out in one batch. A record
that is anything more (a field a shape reads, a tool turn, special-token text or another template's markers, a
`<think>` tag, a media placeholder, an empty turn, a role out of order...) goes to the per-record path, which
decides what becomes of it. Both paths write the same bytes (`tests/test_plain.py`).
"""

from __future__ import annotations

import io
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

import msgspec
import numpy as np

from .conversation import ASSISTANT, SYSTEM, USER, Location, Record, Rejected
from .markers import LITERAL_MARKERS
from .readers.base import Chunk
from .readers.jsonl import LineChunk, parse_lines
from .readers.parquet import ArrowChunk
from .shapes.alpaca import with_input
from .shapes.meaning import MEANINGFUL_FIELDS, PLACEHOLDERS
from .shapes.reasoning import RECORD_FIELD
from .shapes.turns import MAX_TEXT_CHARS

if TYPE_CHECKING:
    import pyarrow as pa

    from .shapes.shaper import Shaper
    from .template import Llama3Template, Samples
    from .tokenizer import Tokenizer

ROLE_CODES = {SYSTEM: 0, USER: 1, ASSISTANT: 2}  # a turn's role as the checks below number it; -1: any other
ROLE_NAMES = (SYSTEM, USER, ASSISTANT)
THINK = "think>"
AHEAD_BYTES = 64 << 20  # input split ahead while the tokenizer loads, at most: a bound on the memory it holds
# Record fields that change what a plain record means: read by the shapes (a system prompt, tool definitions, a
# history, a trace; another name of the list of turns or the answer) or meaningful though unread (`shapes.meaning`).
# A record with any of them is not plain.
RESERVED = ("messages", "conversations", "conversation", "system", "tools", "functions", "history", "response",
            RECORD_FIELD, *MEANINGFUL_FIELDS)
# Text the per-record path must see: what could spell a special token, other templates' markers (the special-text
# scan), media placeholders (the meaning check). Each starts with < or [, which the search looks for first.
NOT_PLAIN = re.compile("|".join([r"<\|", *(re.escape(mark.decode()) for mark in PLACEHOLDERS), LITERAL_MARKERS]))
NOT_PLAIN_BYTES = re.compile(NOT_PLAIN.pattern.encode("ascii"))  # NOT_PLAIN, on a line's JSON text
# An escape that could spell a character of a marker (any ASCII character, `\/` too) in JSON text.
ESCAPED_MARKS = re.compile(rb"\\u00[0-7][0-9a-fA-F]|\\/")
SHAPES = ("openai", "sharegpt", "alpaca", "prompt-completion")  # the shapes whose records may be plain


def plain_records(shaper: Shaper, template: Llama3Template) -> PlainRecords | None:
    """How the plain records of an input read by `shaper` look, or None where none can be: another shape, renamed
    fields, an added system prompt, another template, or empty think blocks added to every answer."""
    from .template import Llama3Template, MaskPolicy
    from .template.reasoning import KeepReasoning

    mapping, reasoning, shape = shaper.mapping, template.reasoning, shaper.shape
    if shape.name not in SHAPES or mapping.renames or mapping.role or mapping.content or mapping.reasoning:
        return None
    if shaper.rules.system is not None or type(template) is not Llama3Template:
        return None
    if reasoning.empty and reasoning.keep is not KeepReasoning.NONE:
        return None
    policy = {"train_headers": template.policy is MaskPolicy.ALL, "last_only": template.policy is MaskPolicy.LAST}
    if shape.name in ("openai", "sharegpt"):
        fields = shape.fields
        return ChatRecords(fields["messages"], fields["role"], fields["content"], shape.roles,
                           bare_lists=shape.name == "openai", **policy)
    if shape.name == "alpaca":
        return ExchangeRecords("instruction", "output", "input", **policy)
    return ExchangeRecords("prompt", "completion", **policy)


@dataclass
class PlainBatch:
    """A chunk split in two: its plain records laid out as the template's lists, and every other record.

    `places` and the places in `others` number the chunk's records from 0, in input order.
    """

    places: list[int] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)  # trimmed, as the template renders them
    kinds: list[int] = field(default_factory=list)  # per turn: 0 untrained, 1 trained, 2 header trained too
    sizes: list[int] = field(default_factory=list)  # per record: its turns
    others: list[tuple[int, Record | Rejected]] = field(default_factory=list)
    read: int = 0

    def render(self, template: Llama3Template) -> Samples:
        return template.lay_out(self.roles, self.contents, self.kinds, self.sizes)


@dataclass(frozen=True)
class SplitChunk(Chunk):
    """A chunk already split into its plain records and the others (`split_ahead`), pickled; only `encode_chunk`
    reads it."""

    source: str
    data: bytes  # the pickled PlainBatch

    def batch(self) -> PlainBatch:
        return pickle.loads(self.data)

    def records(self) -> Iterator[Record | Rejected]:
        raise TypeError("a split chunk holds its plain records as the template's lists, not as records")


def split_ahead(chunks: Iterator[Chunk], split: Callable[[Chunk], PlainBatch | None], tokenizer: Tokenizer
                ) -> Iterator[Chunk]:
    """The chunks, the first of them split (`split`) while the tokenizer loads in a thread, up to AHEAD_BYTES.

    The fast backend takes a second or two to load on one core before the workers can fork and share it;
    splitting the first chunks meanwhile (decoding and checks, no tokenizer) uses the core that would wait.
    The split chunks wait in a temporary file, not in memory that the workers forked next would inherit.
    A chunk that cannot be read raises when its turn comes, as it would have.
    """
    spool = tempfile.TemporaryFile()
    sizes: list[tuple[str, int]] = []  # each split chunk's input and pickled size, in order
    taken, after = 0, []  # after: what comes next, a chunk the batch path does not read or a failure
    while taken < AHEAD_BYTES and tokenizer.loading():
        try:
            chunk = next(chunks, None)
        except Exception as error:  # a reader's failure: raised in its place below
            after = [error]
            break
        if chunk is None:
            break
        try:
            batch = split(chunk)
        except Exception:  # left for the worker, where it fails (or not) as it would have
            batch = None
        if batch is None:  # a chunk the batch path does not read ends the splitting
            after = [chunk]
            break
        sizes.append((chunk.source, spool.write(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))))
        taken += len(chunk.data) if isinstance(chunk, LineChunk) else chunk.batch.nbytes
    return _then(spool, sizes, after, chunks)


def _then(spool: BinaryIO, sizes: list[tuple[str, int]], after: list, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """The chunks split ahead, read back from `spool`, then what came after them and the rest; closing it closes
    `chunks`."""
    try:
        spool.seek(0)
        for source, size in sizes:
            yield SplitChunk(source, spool.read(size))
        for item in after:
            if isinstance(item, Exception):
                raise item
            yield item
        yield from chunks
    finally:
        spool.close()
        chunks.close()


class PlainRecords:
    """Finds the plain records of one input's chunks; a subclass says what a plain record of its shape is.

    A subclass calls `_decoders` with its plain fields and gives `_turns_of` and `_columns` (and `_bare`, where
    its shape reads records of another form).

    Args:
        roles: the role table (lower-case name -> role) the turns' role names go through.
        train_headers, last_only: the mask policy (`all`; `last`), as `template.trained_flags` applies it.
    """

    def __init__(self, roles: dict[str, str], *, train_headers: bool = False, last_only: bool = False):
        self.roles = roles
        self.train_headers, self.last_only = train_headers, last_only

    def _decoders(self, fields: list[tuple], rename: dict[str, str]) -> None:
        """Make `_decode` and `_decode_among_others` for records of these fields (msgspec `defstruct` specs)."""
        reserved = [name for name in RESERVED if name not in rename.values()]
        self._slots = [f"reserved{i}" for i in range(len(reserved))]
        self._decode = msgspec.json.Decoder(msgspec.defstruct("Plain", fields, rename=rename,
                                                              forbid_unknown_fields=True)).decode
        among = msgspec.defstruct("PlainAmongOthers", [*fields, *((slot, Any, msgspec.UNSET) for slot in self._slots)],
                                  rename={**rename, **dict(zip(self._slots, reserved))})
        self._decode_among_others = msgspec.json.Decoder(among).decode

    def _turns_of(self, record: Any) -> list:
        """A decoded record's turns, each with a `role` and a `content`."""
        raise NotImplementedError

    def _columns(self, data: pa.RecordBatch) -> tuple[list[str], list[str], list[int]] | None:
        """A Parquet batch's roles, contents and turns per record, if its columns are a plain record's, else None."""
        raise NotImplementedError

    def _bare(self, raw: bytes) -> list | None:
        """A line that is a record of another form the shape reads (the list of turns alone), or None."""
        return None

    def split(self, chunk: Chunk) -> PlainBatch | None:
        """The chunk's plain records and the others; None for a chunk the batch path cannot read (RecordChunk...)."""
        if isinstance(chunk, LineChunk):
            return self._split_lines(chunk)
        if isinstance(chunk, ArrowChunk):
            return self._split_batch(chunk)
        return None

    def _split_lines(self, chunk: LineChunk) -> PlainBatch:
        """JSON Lines: each line decoded by a typed decoder; a line it refuses is parsed as `parse_lines` does."""
        batch, turns, lines = PlainBatch(), [], []
        place = 0
        for number, raw in enumerate(io.BytesIO(chunk.data).readlines(), chunk.first_line):
            # Line 1 may start with a byte-order mark, which parse_lines removes.
            if number != 1 and (chat := self._turns(raw)) is not None:
                turns.append(chat)
                lines.append((place, number, raw))
                place += 1
                continue
            for item in parse_lines([raw], chunk.source, number):
                batch.others.append((place, item))
                place += 1
        batch.read = place
        roles = [t.role for chat in turns for t in chat]
        contents = [t.content for chat in turns for t in chat]
        plain = self._keep_plain(batch, roles, contents, [len(chat) for chat in turns])
        for (line_place, number, raw), is_plain in zip(lines, plain.tolist()):
            if is_plain:
                batch.places.append(line_place)
            else:
                batch.others.extend((line_place, item) for item in parse_lines([raw], chunk.source, number))
        batch.others.sort(key=lambda other: other[0])
        return batch

    def _turns(self, raw: bytes) -> list | None:
        """A JSON line's turns, if it may be a plain record: its plain fields alone, or beside other fields that
        change nothing (none in `RESERVED`) and hold no text the checks must see (`hides_text`); else None."""
        try:
            return self._turns_of(self._decode(raw))
        except Exception:  # msgspec raises several types (DecodeError, RecursionError...); the per-record path decides
            pass
        try:
            record = self._decode_among_others(raw)
        except Exception:
            return self._bare(raw)
        if any(getattr(record, slot) is not msgspec.UNSET for slot in self._slots) or hides_text(raw):
            return None
        # The fields skipped above were not checked (UTF-8, nesting...): the line must decode whole, as parse_lines
        # decodes it first.
        try:
            msgspec.json.decode(raw)
        except Exception:
            return None
        return self._turns_of(record)

    def _split_batch(self, chunk: ArrowChunk) -> PlainBatch | None:
        """Parquet: a batch's roles and contents taken out of Arrow whole; None if its columns are not a plain
        record's (another column, another type, a null)."""
        import pyarrow as pa

        columns = self._columns(chunk.batch)
        if columns is None:
            return None
        batch = PlainBatch(read=chunk.batch.num_rows)
        plain = self._keep_plain(batch, *columns)
        batch.places = np.flatnonzero(plain).tolist()
        others = np.flatnonzero(~plain)
        if len(others):
            rows = chunk.batch.take(pa.array(others)).to_pylist()
            batch.others = [(int(place), Record(Location(chunk.source, row=chunk.first_row + int(place)), row))
                            for place, row in zip(others, rows)]
        return batch

    def _keep_plain(self, batch: PlainBatch, roles: list[str], contents: list[str], sizes: list[int]) -> np.ndarray:
        """Which of these records are plain; their turns go into `batch` (roles named as the template names them)."""
        count = len(sizes)
        size = np.array(sizes, dtype=np.int64)
        first = np.zeros(count, dtype=np.int64)
        np.cumsum(size[:-1], out=first[1:])
        record = np.repeat(np.arange(count), size)
        # A role name the scans would find text in (a role alias such as "[INST]") is not a plain record's.
        codes = {name: -1 if NOT_PLAIN.search(name) else ROLE_CODES.get(self.roles.get(name.lower()), -1)
                 for name in set(roles)}
        code = np.array([codes[name] for name in roles], dtype=np.int64)
        texts = [text.strip() for text in contents]
        length = np.array([len(text) for text in texts], dtype=np.int64)
        untrimmed = np.array([len(text) for text in contents], dtype=np.int64)  # what `checked_texts` measures
        # The rules of `shapes.rules.well_formed` with roles only system, user and assistant: a system turn
        # first if at all, then user and assistant turns by turns from the user's, none empty.
        position = np.arange(len(code)) - np.repeat(first, size)
        opens_with_system = np.zeros(count, dtype=np.int64)
        opens_with_system[size > 0] = code[first[size > 0]] == 0
        after_system = position - np.repeat(opens_with_system, size)
        bad = (code < 0) | ((code == 0) & (position != 0)) | ((code > 0) & (code != 1 + after_system % 2))
        bad |= (code > 0) & (length == 0)
        bad |= untrimmed > MAX_TEXT_CHARS
        bad[self._marked(texts)] = True
        turns = np.zeros(count, dtype=np.int64)
        np.add.at(turns, record, code > 0)
        failed = np.zeros(count, dtype=bool)
        np.logical_or.at(failed, record, bad)
        plain = ~failed & (turns >= 2)  # an assistant turn: the second after the system prompt, at least
        keep = np.repeat(plain, size)
        kind = self._kinds(code, record, count) * keep
        kept = np.flatnonzero(keep).tolist()
        batch.roles = [ROLE_NAMES[c] for c in code[keep].tolist()]
        batch.contents = [texts[i] for i in kept]
        batch.kinds = kind[keep].tolist()
        batch.sizes = size[plain].tolist()
        return plain

    def _kinds(self, code: np.ndarray, record: np.ndarray, count: int) -> np.ndarray:
        """Each turn's mask kind under the policy, as `template.trained_flags` gives it for turns with no own flag."""
        assistant = code == 2
        if self.train_headers:
            return np.full(len(code), 2, dtype=np.int64)
        if not self.last_only:
            return assistant.astype(np.int64)
        last = np.full(count, -1, dtype=np.int64)
        np.maximum.at(last, record[assistant], np.flatnonzero(assistant))
        kind = np.zeros(len(code), dtype=np.int64)
        kind[last[last >= 0]] = 1
        return kind

    @staticmethod
    def _marked(texts: list[str]) -> list[int]:
        """The turns whose text the per-record path must see (`NOT_PLAIN`, or a think tag)."""
        return [i for i, text in enumerate(texts)
                if ("<" in text or "[" in text or THINK in text) and (THINK in text or NOT_PLAIN.search(text))]


class ChatRecords(PlainRecords):
    """Plain records of the OpenAI and ShareGPT shapes: `{list_field: [{role_field: str, content_field: str}, ...]}`.

    Args:
        list_field, role_field, content_field: the field names, as the shape reads them.
        bare_lists: a record may be the list of turns itself (the OpenAI shape reads it so).
    """

    def __init__(self, list_field: str, role_field: str, content_field: str, roles: dict[str, str], *,
                 bare_lists: bool = False, **policy):
        super().__init__(roles, **policy)
        turn = msgspec.defstruct("Turn", [("role", str), ("content", str)], forbid_unknown_fields=True,
                                 rename={"role": role_field, "content": content_field})
        self._decoders([("turns", list[turn])], {"turns": list_field})
        self._decode_list = msgspec.json.Decoder(list[turn]).decode if bare_lists else None
        self.names = (list_field, role_field, content_field)

    def _turns_of(self, record: Any) -> list:
        return record.turns

    def _bare(self, raw: bytes) -> list | None:
        if self._decode_list is None:
            return None
        try:
            return self._decode_list(raw)
        except Exception:
            return None

    def _columns(self, data: pa.RecordBatch) -> tuple[list[str], list[str], list[int]] | None:
        """The one list column of role/content structs, flattened."""
        import pyarrow as pa

        list_field, role_field, content_field = self.names
        if data.num_columns != 1 or data.schema.names != [list_field]:
            return None
        column = data.column(0)
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_struct(kind.value_type):
            return None
        turn = kind.value_type
        names = [turn.field(i).name for i in range(turn.num_fields)]
        if sorted(names) != sorted([role_field, content_field]) or not all(
                is_text(turn.field(name).type) for name in names):
            return None
        flat = column.flatten()
        fields = dict(zip(names, flat.flatten()))
        roles, contents = fields[role_field], fields[content_field]
        if column.null_count or flat.null_count or roles.null_count or contents.null_count or column.offset:
            return None
        return roles.to_pylist(), contents.to_pylist(), np.diff(column.offsets.to_numpy()).tolist()


class Said(NamedTuple):
    """One turn of an exchange record."""

    role: str
    content: str


class ExchangeRecords(PlainRecords):
    """Plain records of the Alpaca and prompt/completion shapes: `{prompt_field: str, answer_field: str}`, and for
    Alpaca an `input_field` (a string or null) that follows the prompt after a newline when not blank.

    Args:
        prompt_field, answer_field, input_field: the field names, as the shape reads them (no input: None).
    """

    def __init__(self, prompt_field: str, answer_field: str, input_field: str | None = None, **policy):
        super().__init__({USER: USER, ASSISTANT: ASSISTANT}, **policy)
        fields = [("prompt", str), ("answer", str)] + ([("extra", str | None, None)] if input_field else [])
        rename = {"prompt": prompt_field, "answer": answer_field, **({"extra": input_field} if input_field else {})}
        self._decoders(fields, rename)
        self.names = (prompt_field, answer_field, *([input_field] if input_field else []))

    def _turns_of(self, record: Any) -> list:
        return [Said(USER, with_input(record.prompt, getattr(record, "extra", None))), Said(ASSISTANT, record.answer)]

    def _columns(self, data: pa.RecordBatch) -> tuple[list[str], list[str], list[int]] | None:
        """The prompt, answer and input columns, as text, prompt and answer never null."""
        prompt_field, answer_field, *input_field = self.names
        names = data.schema.names
        if sorted(names) not in (sorted(self.names[:2]), sorted(self.names)):
            return None
        if not all(is_text(data.schema.field(name).type) for name in names):
            return None
        prompts, answers = data.column(prompt_field), data.column(answer_field)
        if prompts.null_count or answers.null_count:
            return None
        extras = data.column(input_field[0]).to_pylist() if len(names) == 3 else [None] * data.num_rows
        prompts = [with_input(prompt, extra) for prompt, extra in zip(prompts.to_pylist(), extras)]
        return ([USER, ASSISTANT] * data.num_rows, [text for pair in zip(prompts, answers.to_pylist()) for text in pair],
                [2] * data.num_rows)


def is_text(kind: pa.DataType) -> bool:
    """Whether an Arrow column of this type holds strings."""
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def hides_text(raw: bytes) -> bool:
    """Whether a JSON line may hold, in a field the batch path does not decode, text the per-record path must see:
    `NOT_PLAIN` as it is, or any of its characters written as an escape (`\\u003c`, `\\/`...)."""
    return bool(ESCAPED_MARKS.search(raw) or NOT_PLAIN_BYTES.search(raw))
