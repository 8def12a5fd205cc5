"""Fields that change what a record means, though no SFT shape reads them: each is rejected or counted, never dropped.

A record of images and text, one side of a preference pair, or an answer labelled undesirable (KTO)
is not a plain chat: converting its text alone as one would train something nobody asked for. Each
such field name has one code in MEANINGFUL_FIELDS, and what sftconv does with it is fixed per code:

- `media_field` (rejected): `images`, `audios`, `videos`... holding something. The text refers to
  media the model would never see.
- `preference_record` (rejected): both `chosen` and `rejected`, neither of them read. Train one side
  with `--transcript-field chosen` (or another shape's field), or use a preference mode.
- `undesirable_answer` (rejected): a boolean KTO `label` (or `kto_tag`) that is false: an answer to
  avoid (`--task preference` keeps it, with its label).
- warnings, counted in the summary, the manifest (`counts.warned_by_code`) and `validate`:
  `kto_label` (a true label: the answer is trained, the label unused), `preference_side_only` (one of
  `chosen`/`rejected` is read; the other is unused) and `media_placeholder` (`<image>`, `<audio>` or
  `<video>` in the text of a record with no media field: kept as plain text).

A field the run reads itself (named by a field flag or mapping key, or read by a preference mode
that passes it in `read`) is skipped: it is used.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Any

from ..conversation import UNDESIRABLE_ANSWER, RecordError

MEDIA_FIELD = "media_field"
PREFERENCE_RECORD = "preference_record"
KTO_LABEL = "kto_label"
PREFERENCE_SIDE_ONLY = "preference_side_only"
MEDIA_PLACEHOLDER = "media_placeholder"
WARNING_CODES = (KTO_LABEL, MEDIA_PLACEHOLDER, PREFERENCE_SIDE_ONLY)

MEDIA, PREFERENCE, KTO = "media", "preference", "kto"
# A record field name -> what it means; the one table every check below reads.
MEANINGFUL_FIELDS: dict[str, str] = {
    **dict.fromkeys(("images", "image", "image_url", "image_path", "audios", "audio", "videos", "video"), MEDIA),
    **dict.fromkeys(("chosen", "rejected"), PREFERENCE),
    **dict.fromkeys(("label", "kto_tag"), KTO),
}
PLACEHOLDERS = (b"<image>", b"<audio>", b"<video>")  # LLaMA-Factory's and ms-swift's media placeholders


def meaning_codes(data: Any, read: Collection[str] = ()) -> tuple[str, ...]:
    """The warning codes of a record's unread meaningful fields (sorted); a field in `read` is skipped.

    Raises:
        RecordError: `media_field`, `preference_record` or `undesirable_answer` (see the module docstring).

    Example:
        >>> meaning_codes({"messages": [], "label": True})
        ('kto_label',)
    """
    if not isinstance(data, dict):
        return ()
    present = {name: MEANINGFUL_FIELDS[name] for name in data.keys() & MEANINGFUL_FIELDS.keys()
               if name not in read and data[name] not in (None, "", [], {})}
    if not present:  # most records: only the placeholder check is left
        return (MEDIA_PLACEHOLDER,) if has_placeholder(data) else ()
    codes = set()
    for name, kind in sorted(present.items()):
        if kind == MEDIA:
            value = data[name]
            held = f"{len(value)} item(s)" if isinstance(value, (list, dict)) else f"a {type(value).__name__}"
            raise RecordError(MEDIA_FIELD, f"'{name}' holds {held}; sftconv renders text only, so the text would "
                                           "refer to media the model never sees")
        if kind == KTO and isinstance(data[name], bool):
            if not data[name]:
                raise RecordError(UNDESIRABLE_ANSWER, f"'{name}' is false: a KTO answer to avoid, not one to learn; "
                                                      "convert with --task preference to keep its label")
            codes.add(KTO_LABEL)
    sides = [name for name, kind in present.items() if kind == PREFERENCE]
    if len(sides) == 2:
        raise RecordError(PREFERENCE_RECORD, "'chosen' and 'rejected' are a preference pair; SFT would train "
                                             "neither as such (train one side: --transcript-field chosen)")
    if sides and any(MEANINGFUL_FIELDS.get(name) == PREFERENCE for name in read):
        codes.add(PREFERENCE_SIDE_ONLY)
    if has_placeholder(data):
        codes.add(MEDIA_PLACEHOLDER)
    return tuple(sorted(codes))


def has_placeholder(data: Any) -> bool:
    """Whether any string of the record holds a media placeholder, told by one search of its JSON text."""
    try:
        text = json_encoder().encode(data)
    except Exception:  # not JSON (a Parquet timestamp, bytes...): its strings one by one
        return any(mark.decode() in text for text in strings(data) for mark in PLACEHOLDERS)
    # Substring tests, not a regex: several times faster on the long JSON text of a record; most hold no "<" at all.
    return b"<" in text and any(mark in text for mark in PLACEHOLDERS)


@cache
def json_encoder():
    """msgspec's JSON encoder, imported on first use so that `sftconv --help` stays fast."""
    import msgspec

    return msgspec.json.Encoder()


def strings(data: Any):
    """Every string in nested dicts and lists."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from strings(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from strings(value)


# What each warning code means for a written sample, in validate's findings and the run's summary.
MEANING_DETAILS = {
    KTO_LABEL: "a true KTO label: the answer is trained as SFT, the label itself is not used",
    PREFERENCE_SIDE_ONLY: "one side of a preference pair: the side you named is trained, the other unused",
    MEDIA_PLACEHOLDER: "<image>, <audio> or <video> placeholders but no media field: kept as plain text",
}


def warning_text(code: str, count: int) -> str:
    """The summary's line for a warning code counted `count` times."""
    return f"{count:,} record(s) with {MEANING_DETAILS[code]} ({code})"
