"""Preference samples rendered: each side is `prompt + answer` through the SFT template, the prompt never trained.

`prompt_length` is the tokens of the shared prompt and of the first answer turn's header, what
`apply_chat_template(prompt, add_generation_prompt=True)` gives: `ids[prompt_length:]` is the answer
as a trainer generates it. Both sides are checked to start with exactly those ids.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .conversation import IDENTICAL_ANSWERS, PROMPTS_DIFFER, SYSTEM, USER, Conversation, Message, Preference, RecordError
from .template import Encoded, Llama3Template, Samples


@dataclass(frozen=True)
class PairSamples:
    """Rendered preference samples in flat arrays: pair i is chosen sample i and rejected sample i.

    For KTO, `rejected` holds no samples and `labels` says whether each answer is desirable. `cut` is
    the tokens each pair lost to prompt truncation (0 if none).
    """

    chosen: Samples
    rejected: Samples
    prompt_lengths: np.ndarray  # int64
    labels: np.ndarray | None  # bool, KTO only
    cut: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per pair, both sides."""
        return self.chosen.lengths + (self.rejected.lengths if len(self.rejected) else 0)

    @property
    def loss_mask(self) -> np.ndarray:
        return np.concatenate([self.chosen.loss_mask, self.rejected.loss_mask])

    def take(self, indices) -> PairSamples:
        """The pairs at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return PairSamples(self.chosen.take(indices), self.rejected.take(indices) if len(self.rejected) else self.rejected,
                           self.prompt_lengths[indices], None if self.labels is None else self.labels[indices],
                           self.cut[indices])

    def longest_side(self) -> np.ndarray:
        """Each pair's longer side, in tokens: what a length limit is held to."""
        return np.maximum(self.chosen.lengths, self.rejected.lengths) if len(self.rejected) else self.chosen.lengths

    def split(self) -> list[tuple]:
        """Each pair's (chosen ids, mask, rejected ids, mask, prompt_length, label) with lists (KTO: no rejected)."""
        chosen = self.chosen.split()
        rejected = self.rejected.split() if len(self.rejected) else [None] * len(chosen)
        labels = self.labels.tolist() if self.labels is not None else [None] * len(chosen)
        return list(zip(chosen, rejected, self.prompt_lengths.tolist(), labels))


@dataclass(frozen=True, slots=True)
class EncodedPair:
    """One rendered preference sample, for `validate` and `inspect`: its sides (KTO: chosen alone) and prompt length.

    `input_ids` and `loss_mask` are the sides end to end, chosen first: what a pair holds in all.
    """

    chosen: Encoded
    rejected: Encoded | None
    prompt_length: int
    label: bool | None = None

    @classmethod
    def of(cls, parts: tuple, location) -> EncodedPair:
        """A pair from one item of `PairSamples.split` and the record's location."""
        (ids, mask), rejected, prompt_length, label = parts
        return cls(Encoded(ids, mask, location), None if rejected is None else Encoded(*rejected, location),
                   prompt_length, label)

    @property
    def sides(self) -> tuple[Encoded, ...]:
        return (self.chosen,) if self.rejected is None else (self.chosen, self.rejected)

    @property
    def location(self):
        return self.chosen.location

    @property
    def input_ids(self) -> list[int]:
        return [t for side in self.sides for t in side.input_ids]

    @property
    def loss_mask(self) -> list[int]:
        return [m for side in self.sides for m in side.loss_mask]

    @property
    def trained_tokens(self) -> int:
        return sum(side.trained_tokens for side in self.sides)


def render_pairs(template: Llama3Template, preferences: list[Preference], *, limit: int | None = None,
                 truncate: bool = False) -> tuple[PairSamples, list[RecordError | None]]:
    """Render every preference's sides with `template.render_samples`; `errors[i]` is None where pair i rendered.

    The prompt's turns are rendered untrained; the answers follow the template's mask policy. With
    `truncate`, a pair whose longer side is over `limit` loses its prompt's oldest exchanges, whole
    turns at a time, until both sides fit or only the last user turn is left (then it stays over
    the limit, for the caller to drop).

    Raises nothing: a pair that cannot render gets the side's error, `identical_answers` when both
    sides render alike, or `prompts_differ` when the template rendered their prompts differently.
    """
    rendered = render_each(template, preferences)
    cut = [0] * len(preferences)
    if truncate and limit is not None:
        for index, (preference, result) in enumerate(zip(preferences, rendered)):
            if not isinstance(result, RecordError) and max(len(result[0]), len(result[2])) > limit:
                rendered[index], cut[index] = shortened(template, preference, result, limit)
    errors = [r if isinstance(r, RecordError) else None for r in rendered]
    good = [r for r in rendered if not isinstance(r, RecordError)]
    kto = bool(preferences) and preferences[0].label is not None
    empty = Samples.from_lists([])
    return PairSamples(
        chosen=Samples.from_lists((c, cm) for c, cm, *_ in good) if good else empty,
        rejected=Samples.from_lists((r, rm) for *_, r, rm, _ in good) if good and not kto else empty,
        prompt_lengths=np.array([g[-1] for g in good], dtype=np.int64),
        labels=np.array([p.label for p, r in zip(preferences, rendered) if not isinstance(r, RecordError)],
                        dtype=bool) if kto else None,
        cut=np.array([c for c, r in zip(cut, rendered) if not isinstance(r, RecordError)], dtype=np.int64),
    ), errors


def render_each(template: Llama3Template, preferences: list[Preference]) -> list[tuple | RecordError]:
    """Each pair as (chosen ids, mask, rejected ids, mask, prompt_length), or why it cannot be rendered.

    Every side of every pair is rendered in one batch, and each prompt with its answer's header in
    another, which is not counted as samples (`Llama3Template.uncounted`).
    """
    openings, sides, sizes = [], [], []
    for preference in preferences:
        prompt = tuple(replace(m, train=False) for m in preference.prompt)
        answers = [preference.chosen] + ([preference.rejected] if preference.label is None else [])
        # the answer's header, then its end: where the answer starts
        openings.append(Conversation((*prompt, Message(preference.chosen[0].role, "", train=True)),
                                     preference.location, preference.tools))
        sides += [Conversation((*prompt, *answer), preference.location, preference.tools) for answer in answers]
        sizes.append(len(answers))
    with template.uncounted():
        heads, head_errors = template.render_samples(openings)
    samples, errors = template.render_samples(sides)
    end_header = template.tokenizer.special_tokens["<|end_header_id|>"]
    rendered, opened = iter(samples.split()), iter(heads.split())
    results, at = [], 0
    for size, head_error in zip(sizes, head_errors):
        found = [head_error, *errors[at:at + size]]
        at += size
        opening = next(opened) if head_error is None else None
        parts = [next(rendered) for error in found[1:] if error is None]
        error = next((e for e in found if e is not None), None)
        results.append(error if error is not None else assembled(end_header, opening, *parts))
    return results


def assembled(end_header: int, opening: tuple[list[int], list[int]], *sides: tuple[list[int], list[int]]
              ) -> tuple | RecordError:
    """A pair from its rendered opening (prompt and answer header, then the end of an empty answer) and sides.

    The prompt ends with the answer's header (`<|end_header_id|>` and "\\n\\n"), whatever the template
    renders after it in an empty answer (an empty reasoning block, say).
    """
    ids = opening[0]
    prompt_length = len(ids) - ids[::-1].index(end_header) + 1
    head = ids[:prompt_length]
    if any(side_ids[:prompt_length] != head for side_ids, _ in sides):
        return RecordError(PROMPTS_DIFFER, "the template renders the two sides' prompts differently")
    if len(sides) == 2 and sides[0][0] == sides[1][0]:
        return RecordError(IDENTICAL_ANSWERS, "chosen and rejected render to the same tokens")
    rejected = sides[1] if len(sides) == 2 else ([], [])
    return (*sides[0], *rejected, prompt_length)


def shortened(template: Llama3Template, preference: Preference, full: tuple, limit: int) -> tuple[tuple, int]:
    """The pair rendered with its prompt's oldest exchanges dropped until it fits, and the tokens that saved.

    The system prompt stays and the prompt still starts with a user turn; if nothing fits, the full pair.
    Its traces were counted when the full pair was rendered (counts are taken before a length policy),
    so the shorter tries are not.
    """
    messages = preference.prompt
    system = messages[:1] if messages and messages[0].role == SYSTEM else ()
    turns = messages[len(system):]
    for start in [i for i, m in enumerate(turns) if m.role == USER and i > 0]:
        with template.uncounted():
            result = render_each(template, [replace(preference, prompt=(*system, *turns[start:]))])[0]
        if isinstance(result, RecordError):
            return full, 0
        if max(len(result[0]), len(result[2])) <= limit:
            return result, len(full[0]) + len(full[2]) - len(result[0]) - len(result[2])
    return full, 0
