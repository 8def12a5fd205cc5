"""A user's field mapping: their field names -> the names the shapes read, and extra role aliases."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from .turns import ALIAS_TARGETS


TURN_KEYS = ("reasoning",)  # renamed inside each turn for shapes with a list of turns, on the record for the others
POLICY_KEYS = ("keep_reasoning", "train_reasoning", "empty_reasoning")  # options a mapping file may carry, not fields
# Where a shape's message names a field: 'quoted', a list before its [index], a turn's field after `].`.
QUOTED = re.compile(r"'([^'\s]+)'")
LISTED = re.compile(r"(?<![\w.\]])([A-Za-z_]\w*)(?=\[)")
TURN_FIELD = re.compile(r"(?<=\]\.)([A-Za-z_]\w*)")
FIELD_LIST = re.compile(r"\(fields: ([^)]*)\)")
MISSING = object()  # what `lookup` returns for a field that is not there (None is a null)
FIELDS_SHOWN = 20  # field names listed by an UnknownField message


def lookup(data: Any, path: str) -> Any:
    """The value at a field name or a dotted path (`meta.question`) in a record; MISSING where there is none.

    Example:
        >>> lookup({"meta": {"q": "Hi"}}, "meta.q")
        'Hi'
    """
    if not isinstance(data, dict):
        return MISSING
    if path in data:
        return data[path]
    head, dot, rest = path.partition(".")
    return lookup(data[head], rest) if dot and head in data else MISSING


def field_paths(data: Any, prefix: str = "", depth: int = 2) -> list[str]:
    """A record's field names and the paths to fields nested in its objects (`meta.question`), `depth` levels deep."""
    if not isinstance(data, dict):
        return []
    paths = []
    for key, value in data.items():
        paths.append(f"{prefix}{key}")
        if depth > 1:
            paths += field_paths(value, f"{prefix}{key}.", depth - 1)
    return paths


def check_field(name: str, flag: str, records: list, where: str = "in no sampled record") -> None:
    """Make sure a field (or path) some flag names is in at least one of `records`.

    Raises:
        UnknownField: naming the field, the flag, the fields seen and the closest of them.
    """
    if any(lookup(item, name) is not MISSING for item in records if isinstance(item, dict)):
        return
    seen = list(dict.fromkeys(path for item in records for path in field_paths(item)))
    close = difflib.get_close_matches(name, seen, n=1)
    shown = ", ".join(seen[:FIELDS_SHOWN]) + (f", ... ({len(seen)} in all)" if len(seen) > FIELDS_SHOWN else "")
    raise UnknownField(f"{flag} names {name!r}, which is {where} (fields seen: {shown or 'none'})"
                       + (f"; did you mean {close[0]!r}?" if close else ""))


def turns_in(record: Any, messages: str | None) -> list:
    """The objects in a record's list of turns (`messages`, a path; None: any of its lists, or the bare list)."""
    if isinstance(record, list):
        lists = [record]
    elif messages:
        lists = [lookup(record, messages)]
    else:
        lists = list(record.values()) if isinstance(record, dict) else []
    return [item for items in lists if isinstance(items, list) for item in items if isinstance(item, dict)]


class MappingError(ValueError):
    """A field mapping that cannot be used; the message says which key or value is wrong."""


class UnknownField(MappingError):
    """A field flag or mapping key naming a field no sampled record has: a usage error, with the closest name."""


@dataclass(frozen=True, kw_only=True)
class FieldMapping:
    """Which of a record's fields play which part, for data whose field names no shape knows.

    Each field is the name in the user's data (None: the shape's own name), or a path `a.b.c` to a
    nested field (a name holding dots itself wins over the path). `messages`, `role` and
    `content` are the chat list and the role and text of each turn in it (`role`/`content` apply
    inside the `messages` list); `tools` holds the tool definitions; `chosen`, `rejected` and `label`
    are a preference record's answers and KTO label; `roles` maps extra role names to
    system, user, assistant, tool (a result) or tool_call (a turn holding a call as JSON text).
    `reasoning` holds an assistant's reasoning trace: a field of each turn for the shapes with a
    list of turns, of the record for the others (Alpaca, prompt/completion). `keep_reasoning`,
    `train_reasoning` and `empty_reasoning` are the reasoning policy (see `template.reasoning`), for
    a mapping file to carry; None leaves the default.

    Example:
        >>> FieldMapping(messages="dialog", role="speaker", content="text", roles={"bot": "assistant"})
    """

    messages: str | None = None
    role: str | None = None
    content: str | None = None
    system: str | None = None
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    prompt: str | None = None
    completion: str | None = None
    history: str | None = None
    transcript: str | None = None
    tools: str | None = None
    reasoning: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    label: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    keep_reasoning: str | None = None
    train_reasoning: bool | None = None
    empty_reasoning: bool | None = None

    def __post_init__(self):
        for name, role in self.roles.items():
            if role not in ALIAS_TARGETS:
                raise MappingError(f"role alias {name}={role}: the role must be one of {', '.join(ALIAS_TARGETS)}")

    @classmethod
    def from_file(cls, path: str | Path) -> FieldMapping:
        """Read a mapping from a YAML or JSON file (keys as the fields above, validated by schemas/mapping.json).

        Raises:
            MappingError: the file is not valid YAML/JSON or does not match the schema.
        """
        import yaml

        from ..schema import validator

        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise MappingError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'}: {error}") from error
        problems = sorted(validator("mapping").iter_errors(data or {}), key=lambda e: list(e.path))
        if problems:
            where = "/".join(map(str, problems[0].path)) or "top level"
            raise MappingError(f"{path}: {where}: {problems[0].message}")
        return cls(**(data or {}))

    def merged(self, **overrides: Any) -> FieldMapping:
        """This mapping with the given fields replaced where they are not None; `roles` are added to."""
        roles = {**self.roles, **(overrides.pop("roles", None) or {})}
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "roles"}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return FieldMapping(**values, roles=roles)

    @cached_property
    def renames(self) -> dict[str, str]:
        """The mapped record-level fields: mapping key -> the user's field name (worked out once per mapping)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("role", "content", "roles", *TURN_KEYS, *POLICY_KEYS) and getattr(self, f.name)}

    def apply(self, data: Any, names: dict[str, str]) -> Any:
        """The record with the user's field names replaced by a shape's names (`names`, e.g. `Shape.fields`).

        Example:
            >>> FieldMapping(output="answer").apply({"instruction": "q", "answer": "a"}, {"output": "output"})
            {'instruction': 'q', 'output': 'a'}
        """
        renames = self.renames
        if not (renames or self.role or self.content or self.reasoning):
            return data
        if isinstance(data, list):  # a bare list of messages
            return [self._rename_turn(turn, names) for turn in data]
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if self.reasoning and "messages" not in names:  # a shape with one answer: the trace is the record's
            renames = {**renames, "reasoning": self.reasoning}
        for key, source in renames.items():
            target = names.get(key)
            if target and source != target and (found := lookup(data, source)) is not MISSING:
                data.pop(source, None)
                data[target] = found
        turns = data.get(names.get("messages", ""))
        if isinstance(turns, list) and (self.role or self.content or self.reasoning):
            data[names["messages"]] = [self._rename_turn(turn, names) for turn in turns]
        return data

    def _rename_turn(self, turn: Any, names: dict[str, str]) -> Any:
        """One turn with its role and content fields renamed."""
        if not isinstance(turn, dict) or "role" not in names:
            return turn
        turn = dict(turn)
        for source, target in ((self.role, names["role"]), (self.content, names["content"]),
                               (self.reasoning, names.get("reasoning"))):
            if source and target and source != target and (found := lookup(turn, source)) is not MISSING:
                turn.pop(source, None)
                turn[target] = found
        return turn

    def in_user_names(self, detail: str, names: dict[str, str]) -> str:
        """A shape's message about a renamed record, speaking of the user's fields: `'chosen' is list`, not `'transcript'`.

        Quoted names, list names before `[`, turn fields after `].` and the names in a `(fields: ...)`
        list are translated; other words stay as the shape wrote them.

        Example:
            >>> FieldMapping(transcript="chosen").in_user_names("'transcript' is list", {"transcript": "transcript"})
            "'chosen' is list"
        """
        user = {names[key]: source for key, source in self.renames.items() if names.get(key) not in (None, source)}
        turn = {names[key]: source for key, source in (("role", self.role), ("content", self.content))
                if source and names.get(key) not in (None, source)}
        if not (user or turn):
            return detail
        detail = QUOTED.sub(lambda m: f"'{user.get(m[1]) or turn.get(m[1], m[1])}'", detail)
        detail = LISTED.sub(lambda m: user.get(m[1], m[1]), detail)
        detail = TURN_FIELD.sub(lambda m: turn.get(m[1], m[1]), detail)
        return FIELD_LIST.sub(lambda m: f"(fields: {', '.join(user.get(n, n) for n in m[1].split(', '))})", detail)

    def check_names(self, sample: list) -> None:
        """Make sure each field the mapping names is in at least one sampled record (`role` and `content`: in a turn).

        Raises:
            UnknownField: naming the field, the flag, the fields seen and the closest of them.
        """
        if not sample:
            return  # inputs without records: nothing to check the names against
        turns = [turn for record in sample for turn in turns_in(record, self.messages)]
        for key, source in (*self.renames.items(), ("role", self.role), ("content", self.content)):
            if source:
                in_turns = key in ("role", "content")
                check_field(source, f"--{key}-field (mapping key '{key}')", turns if in_turns else sample,
                            "in no turn of the sampled records" if in_turns else "in no sampled record")
        if self.reasoning:  # a field of each turn, or of the record for the shapes without a list of turns
            check_field(self.reasoning, "--reasoning-field (mapping key 'reasoning')", turns + sample,
                        "in no sampled record nor any of its turns")

    def to_json(self) -> dict:
        """The fields that are set, for the manifest."""
        return {**self.renames, **{k: getattr(self, k) for k in ("role", "content", *TURN_KEYS)
                                   if getattr(self, k)},
                **({"roles": dict(self.roles)} if self.roles else {})}
