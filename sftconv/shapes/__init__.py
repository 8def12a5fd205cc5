"""Shapes: one raw record -> the messages of a Conversation. They know nothing about files or tokens."""

from __future__ import annotations

from functools import cache

from .alpaca import AlpacaShape
from .base import Shape
from .candidates import Candidate, candidates
from .mapping import FieldMapping, MappingError
from .meaning import MEANINGFUL_FIELDS
from .openai import OpenAIShape
from .prompt_completion import PromptCompletionShape
from .rules import TurnRules
from .sharegpt import ShareGPTShape
from .transcript import TranscriptShape

# In order of preference: when records fit two shapes equally well, the first wins.
SHAPES: dict[str, type[Shape]] = {
    shape.name: shape
    for shape in (OpenAIShape, ShareGPTShape, AlpacaShape, PromptCompletionShape, TranscriptShape)
}
AUTO = "auto"
FIELDS_SHOWN = 12  # field names listed when no shape fits
PROPOSALS = 3  # candidate layouts proposed when no shape fits


class ShapeNotFound(ValueError):
    """No shape fits the records of an input; the message lists the fields they have and the flags that would work.

    `chosen` is the one candidate layout (see `candidates`) every sampled record fits, if there is exactly one.
    """

    def __init__(self, message: str, chosen: Candidate | None = None):
        super().__init__(message)
        self.chosen = chosen


def detect_shape(sample: list, mapping: FieldMapping | None = None, shapes: dict[str, type[Shape]] = SHAPES) -> str:
    """The name of the shape that most of the sample records fit, judged by the schemas in `schemas/`.

    Each record is first renamed by the field mapping, as it will be when converted. Records that
    fit no shape count for none; the shape with the most fitting records wins, ties going to the
    earlier shape in `shapes` (SHAPES, or PREFERENCE_SHAPES for preference data). When no record fits
    any schema, the shape whose required field names the most records have wins instead (say every
    role is a number): its records then become rejects with their reasons (`unknown_role`...) rather
    than the whole input failing.

    Raises:
        ShapeNotFound: no record fits any shape, not even by field names; the message lists the
            fields seen and proposes the flags of each candidate layout (`candidates`) the records suggest.

    Example:
        >>> detect_shape([{"conversations": [{"from": "human", "value": "Hi"}]}])
        'sharegpt'
    """
    from ..schema import validator

    mapping = mapping or FieldMapping()
    scores: dict[str, int] = {}
    for name, shape in shapes.items():
        scores[name] = sum(validator(name).is_valid(mapping.apply(record, shape.fields)) for record in sample)
        if scores[name] == len(sample):
            break  # every record fits: no later shape can score higher, and a tie goes to this one
    best = max(scores, key=scores.__getitem__)
    if scores[best]:
        return best
    named = {name: sum(has_fields(mapping.apply(record, shape.fields), name) for record in sample)
             for name, shape in shapes.items()}
    best = max(named, key=named.__getitem__)
    if named[best]:
        return best
    seen: dict[str, None] = {}
    for record in sample:
        seen.update(dict.fromkeys(map(str, record) if isinstance(record, dict) else [f"(a JSON {type(record).__name__})"]))
    names = list(seen)
    shown = ", ".join(names[:FIELDS_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > FIELDS_SHOWN else "")
    found = candidates(sample)
    # Never chosen for the user: a layout reading one side of a preference pair (that is their call to make).
    fitting = [candidate for candidate in found if all(map(candidate.fits, sample))
               and not any(name.split(".")[0] in MEANINGFUL_FIELDS for _, name in candidate.fields)]
    proposals = "".join(f"; rerun with {c.flags} ({sum(map(c.fits, sample))} of {len(sample)} sampled records fit)"
                        for c in found[:PROPOSALS])
    if len(sample) == 1 and isinstance(sample[0], dict):  # one document: its records may be in one of its lists
        proposals += "".join(f"; if the records are the objects in '{key}', rerun with --records-field {key}"
                             for key, value in sample[0].items()
                             if isinstance(value, list) and value and all(isinstance(v, dict) for v in value))
    raise ShapeNotFound(
        f"no record shape fits (fields seen: {shown}){proposals}. Shapes: {', '.join(shapes)}. Choose one with "
        "--shape, and map your field names (--messages-field, --role-field, --content-field, --instruction-field, "
        "--output-field, --prompt-field, --completion-field, --transcript-field, --chosen-field, --rejected-field, "
        "--label-field, or --mapping FILE; a.b reaches a nested field)", fitting[0] if len(fitting) == 1 else None)


def has_fields(record, name: str) -> bool:
    """Whether a record has the field names shape `name`'s schema requires, whatever their values."""
    return isinstance(record, dict) and any(names <= record.keys() for names in required_fields(name))


@cache
def required_fields(name: str) -> list[frozenset]:
    """The sets of field names, one of which a record of shape `name` must have (its schema's `required`)."""
    from ..schema import load_schema

    schema = load_schema(name)
    base = frozenset(schema.get("required", ()))
    choices = [base | set(choice["required"]) for choice in schema.get("anyOf", ()) if "required" in choice]
    return [names for names in choices or [base] if names]


__all__ = [
    "AUTO", "SHAPES", "AlpacaShape", "FieldMapping", "MappingError", "OpenAIShape", "PromptCompletionShape",
    "Shape", "ShapeNotFound", "ShareGPTShape", "TranscriptShape", "TurnRules", "detect_shape",
]
