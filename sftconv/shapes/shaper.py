"""What reads one input's records: its shape, set up with the user's field names and the turn rules."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from ..conversation import Record, RecordError
from .base import Shape
from .mapping import FieldMapping
from .meaning import meaning_codes
from .rules import TurnRules
from .transcript import without_llama2_marks


@dataclass(frozen=True)
class Shaper:
    """A shape with the user's field mapping and the turn rules; a subclass turns one record into what its task
    renders (a Conversation, a Preference).

    `consumes` names record fields its task reads beyond the shape's own (a preference task's labels).
    """

    shape: Shape
    mapping: FieldMapping
    rules: TurnRules
    consumes: ClassVar[frozenset[str]] = frozenset()

    def read_with(self, read, data):
        """`read(data)`, its RecordError (about the renamed record) said again in the user's field names."""
        try:
            return read(data)
        except RecordError as error:
            raise RecordError(error.reason, self.mapping.in_user_names(error.detail, self.shape.fields)) from None

    @cached_property
    def read(self) -> frozenset[str]:
        """The record fields this shaper reads, by the user's names (a path's first part): `meaning` skips them."""
        names = self.mapping.renames
        return frozenset({*((names.get(key) or own).split(".")[0] for key, own in self.shape.fields.items()),
                          *self.consumes})

    def scanned(self, record: Record) -> Any:
        """The record as the special-text scan sees it: a Llama 2 transcript's `<s>`, `[INST]`... are its
        structure, read by the transcript shapes, not text that reaches the model."""
        data = record.data
        if not self.shape.transcript_fields or not isinstance(data, dict):
            return data
        names = [self.mapping.renames.get(key) or self.shape.fields[key] for key in self.shape.transcript_fields]
        unmarked = {name: without_llama2_marks(data[name]) for name in names if isinstance(data.get(name), str)}
        return {**data, **unmarked} if unmarked else data

    def meaning(self, record: Record) -> tuple[str, ...]:
        """The record's warning codes for meaningful fields it leaves unread (see `shapes.meaning`).

        Raises:
            RecordError: a field whose meaning the task would betray (`media_field`, `preference_record`...).
        """
        return meaning_codes(record.data, self.read)
