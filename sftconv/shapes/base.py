"""What every shape is: a callable from one raw record to the messages of a Conversation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..conversation import Message
from .turns import role_table


class Shape:
    """One record shape; subclasses implement `__call__` and know nothing about files or tokens.

    `fields` names the record fields the shape reads, keyed by the names a field mapping uses
    (`messages`, `role`, `content`, `instruction`...), so a mapping can rename a user's fields to them.

    Args:
        roles: extra role aliases on top of the built-in ones, such as `{"bot": "assistant"}`.
    """

    name: ClassVar[str] = ""
    fields: ClassVar[dict[str, str]] = {}
    transcript_fields: ClassVar[tuple[str, ...]] = ()  # keys of `fields` holding whole transcripts (Human:/[INST])

    def __init__(self, roles: Mapping[str, str] | None = None):
        self.roles = role_table(roles)

    def __call__(self, data: Any) -> tuple[Message, ...]:
        """The record's messages, in order.

        Raises:
            RecordError: with the reason code of the first problem found.
        """
        raise NotImplementedError

    def tools(self, data: Any) -> tuple[dict, ...]:
        """The record's tool definitions in OpenAI's form (see `shapes.tools`); none unless the shape reads them.

        Raises:
            RecordError: `bad_tools` if they cannot be read.
        """
        return ()
