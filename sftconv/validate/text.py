"""Checks on the text of a raw record: every string in it, wherever it sits, named by its field path.

Every string of a decoded record is scanned, not only the fields a shape uses: the finding names the
field as it is in the file (`messages[2].content`), which is where a person fixes it, and a record the
shape rejects still gets its text checked, so one run lists everything to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from ..markers import FOREIGN_MARKERS, LITERAL_MARKERS
from ..tokenizer import special_token_names
from .codes import CONTROL_CHARACTER, FOREIGN_TEMPLATE_MARKER, LONE_SURROGATE, SPECIAL_TOKEN_TEXT
from .report import Finding

LLAMA3_NAMES = frozenset(special_token_names())

# One pass per string: a lone surrogate, a control character (C0 and C1 except tab, LF and CR, and DEL),
# or anything shaped like a `<|name|>` special token or one of the literal foreign markers (`markers`).
PATTERN = re.compile(
    r"(?P<surrogate>[\ud800-\udfff])"
    r"|(?P<control>[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f])"
    r"|(?P<marker><\|[A-Za-z0-9_]+\|>|" + LITERAL_MARKERS + ")"
)
MARKER = re.compile(r"<\|[A-Za-z0-9_]+\|>|" + LITERAL_MARKERS)
MARKER_BYTES = re.compile(MARKER.pattern.encode("ascii"))  # MARKER, on a record's JSON text
encode_json = msgspec.json.Encoder().encode


def first_marker(data: Any) -> Finding | None:
    """The first special-token text or foreign template marker in any string of a record, if there is one."""
    if not may_hold_marker(data):
        return None
    for path, text in strings(data, ()):
        # Every marker starts with < or [; looking for those two first is several times faster than the regex.
        if ("<" in text or "[" in text) and (match := MARKER.search(text)):
            code, detail = classify(match)
            return Finding(code, detail, field_name(path))
    return None


def may_hold_marker(data: Any) -> bool:
    """False when no string of the record can hold a marker, as one scan of its JSON text tells (most records).

    Every string is written into the JSON text as it is, but for `"`, `\\` and control characters, which
    no marker holds; so a marker in any string is a match in the text. A match may also be in a key:
    then `first_marker`'s walk decides, as it does for a record that is not JSON (a lone surrogate,
    a tuple as a key).
    """
    try:
        text = encode_json(data)
    except Exception:  # msgspec raises several types (TypeError, UnicodeEncodeError...) for what JSON cannot hold
        return True
    # Every marker starts with < or [: matched only where one is (a search tries every position, and is
    # several times slower).
    for start in (b"<", b"["):
        at = text.find(start)
        while at >= 0:
            if MARKER_BYTES.match(text, at):
                return True
            at = text.find(start, at + 1)
    return False


def scan_record(data: Any) -> list[Finding]:
    """The text findings of one record: at most one per code, for the first field that has it."""
    found: dict[str, Finding] = {}
    for path, text in strings(data, ()):
        for match in PATTERN.finditer(text):
            code, detail = classify(match)
            if code not in found:
                found[code] = Finding(code, detail, field_name(path))
        if len(found) == 4:
            break
    return list(found.values())


def classify(match: re.Match) -> tuple[str, str]:
    """The code and detail for one match of PATTERN."""
    text, at = match.group(), match.start()
    if match.lastgroup == "surrogate":
        return LONE_SURROGATE, f"lone surrogate U+{ord(text):04X} at character {at} (UTF-8 cannot hold it; convert rejects it in a rendered text: invalid_text)"
    if match.lastgroup == "control":
        return CONTROL_CHARACTER, f"control character U+{ord(text):04X} at character {at}"
    if text in LLAMA3_NAMES:
        return SPECIAL_TOKEN_TEXT, f"{text} typed as text at character {at} (encoded as text, not as the token)"
    family = FOREIGN_MARKERS.get(text, "another model's special token")
    return FOREIGN_TEMPLATE_MARKER, f"{text} ({family}) at character {at}"


def strings(data: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    """Every string value in nested dicts and lists, with the path that reaches it."""
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from strings(value, (*path, key))
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            yield from strings(value, (*path, index))


def field_name(path: tuple) -> str:
    """`messages[2].content` from ("messages", 2, "content"); the record itself is `record`."""
    name = ""
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            name += f".{part}" if name else part
        else:
            name += f"[{part!r}]"
    return name or "record"
