"""Fuzzing the reader -> shape -> template path with random bytes and random JSON: nothing crashes, nothing is lost.

Each example is written to a real file and read by the real readers, shaped by the shape detected
for it (or a random one), and rendered by a real template with the real tokenizer. An input may fail
as a whole only with our own errors (ConvertError, ShapeNotFound); otherwise every non-blank line
comes out as exactly one sample or one reject with a known reason code.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftconv import conversation
from sftconv.conversation import Rejected
from sftconv.markers import FOREIGN_MARKERS
from sftconv.pipeline import ConvertError, FileShapes, InputShape, Source, encode_batches, sample_records
from sftconv.shapes import SHAPES, FieldMapping, ShapeNotFound, TurnRules, detect_shape
from sftconv.template import Encoded, Llama3Template, Llama31Template

REASONS = {value for name, value in vars(conversation).items() if name.isupper() and isinstance(value, str)}
FIELDS = ["messages", "role", "content", "conversations", "from", "value", "instruction", "input", "output",
          "prompt", "completion", "transcript", "tools", "tool_calls", "function", "arguments", "name",
          "weight", "train", "system", "history", "type", "text"]
WORDS = ["user", "assistant", "system", "tool", "human", "gpt", "ipython", "Human: hi\n\nAssistant: yo",
         "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>", "\ud800", "\x00", "\r\n", *FOREIGN_MARKERS]

texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=4)), inner, max_size=5)), max_leaves=20)
turn = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(WORDS[:7]), scalars), "content": values},
                             optional={"weight": scalars, "tool_calls": values})
chats = st.fixed_dictionaries({"messages": st.lists(turn, max_size=5)}, optional={"tools": values, "system": values})
records = st.one_of(values, chats)


def lines_of(items: list) -> bytes:
    """JSON lines, written as `json.dumps` writes them, a lone surrogate escaped."""
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def blank(line: bytes, first: bool) -> bool:
    """Whether a line is no record: UTF-8 and only white space (Python's, as the reader strips), a BOM first."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not (text.removeprefix("\ufeff") if first else text).strip()


def run(data: bytes, tokenizer, template_name: str, shape_name: str | None, special_text: str) -> None:
    """Read, shape and render one file's bytes, checking that every line is accounted for."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.jsonl"
        path.write_bytes(data)
        try:
            sample, _ = sample_records(path, None)
            name = shape_name or (detect_shape(sample) if sample else "openai")
        except (ConvertError, ShapeNotFound):
            return
        template = (Llama31Template if template_name == "llama3.1" else Llama3Template)(tokenizer)
        shaped = InputShape(SHAPES[name](), FieldMapping(), TurnRules())
        source = Source([path], tokenizer, template, FileShapes({str(path): shaped}, special_text))
        try:
            results = [item for batch in encode_batches(source.records(), source.shape, template) for item in batch]
        except ConvertError:
            return
        expected = sum(1 for number, line in enumerate(data.split(b"\n")) if not blank(line, first=number == 0))
        written = [r for r in results if isinstance(r, Encoded)]
        rejected = [r for r in results if isinstance(r, Rejected)]
        assert len(results) == len(written) + len(rejected) == expected
        for reject in rejected:
            assert reject.reason in REASONS, reject
        bos = tokenizer.bos_id
        for sample in written:
            assert len(sample.input_ids) == len(sample.loss_mask) and set(sample.loss_mask) <= {0, 1}
            assert max(sample.input_ids) < tokenizer.vocab_size
            # Typed special-token text never becomes the control token: one BOS, at the start.
            assert sample.input_ids.count(bos) == 1 and sample.input_ids[0] == bos


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@FUZZ
@given(lines=st.lists(st.binary(max_size=60), max_size=8), template=st.sampled_from(["llama3", "llama3.1"]))
def test_random_bytes(tokenizer, lines, template):
    run(b"\n".join(lines), tokenizer, template, "openai", "keep")


@FUZZ
@given(items=st.lists(records, min_size=1, max_size=6), template=st.sampled_from(["llama3", "llama3.1"]),
       shape=st.one_of(st.none(), st.sampled_from(list(SHAPES))), special_text=st.sampled_from(["keep", "reject"]))
def test_random_json(tokenizer, items, template, shape, special_text):
    run(lines_of(items), tokenizer, template, shape, special_text)


@FUZZ
@given(items=st.lists(chats, min_size=1, max_size=6), cut=st.integers(min_value=0, max_value=400))
def test_chat_records_cut_anywhere(tokenizer, items, cut):
    """A file of chat records cut at any byte: the cut line is one reject, the lines before it are kept."""
    data = lines_of(items)
    run(data[:cut], tokenizer, "llama3", "openai", "keep")
