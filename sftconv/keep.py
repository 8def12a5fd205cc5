"""`--keep-columns`: record fields carried into every output row, so a row can be traced back to its record.

Each kept field is one column named as the user named it (`id`, `meta.source`), holding the field's
value as JSON text (`"abc"` for a string, `7` for a number, `{"a": 1}` for an object), or null where
the record has no such field. One type for every value, whatever the records hold, so the schema is
fixed before the first row (a column inferred from early rows would break on a later one) and a value
reads back exactly with `json.loads`. A field that is present but null is the text `null`, not a null.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .shapes.mapping import MISSING, lookup

encode_json = msgspec.json.Encoder(order="deterministic").encode


def kept_values(data: Any, names: tuple[str, ...]) -> tuple[str | None, ...]:
    """The kept fields of one record as JSON text, None for a field it lacks.

    Example:
        >>> kept_values({"id": 7, "meta": {"src": "a"}}, ("id", "meta.src", "lang"))
        ('7', '"a"', None)
    """
    values = []
    for name in names:
        value = lookup(data, name)
        values.append(None if value is MISSING else json_text(value))
    return tuple(values)


def json_text(value: Any) -> str:
    """A value as compact JSON text, keys in sorted order; what JSON cannot hold (a timestamp) as its JSON string."""
    try:
        return encode_json(value).decode("utf-8")
    except (TypeError, UnicodeEncodeError, msgspec.EncodeError):
        return encode_json(str(value)).decode("utf-8", "backslashreplace")


def check_keep_columns(names: tuple[str, ...], *, format: str, packed: bool) -> None:
    """Refuse what cannot hold kept columns, before a run starts.

    Raises:
        ValueError: Megatron's token files (no columns), packing (a row holds several records), or a name
            given twice. (A name that is a row column already is refused once the row layout is known:
            `pipeline.refuse_unsupported`.)
    """
    if not names:
        return
    if format == "megatron":
        raise ValueError("--keep-columns needs a format with columns (parquet, hf, jsonl); Megatron's .bin/.idx "
                         "files hold token ids only")
    if packed:
        raise ValueError("--keep-columns cannot be used with --pack: a packed row holds several records; "
                         "convert without --pack to keep each record's fields")
    if len(set(names)) != len(names):
        raise ValueError("--keep-columns names a field twice")
