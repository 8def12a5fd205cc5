"""Tasks: SFT samples or preference pairs. A task says how its records are shaped, rendered, fitted and laid out.

The convert pipeline asks the run's task at each of those steps and never looks at which task it is,
so SFT and preference data go through the same reading, units, workers, writers and manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .shapes import AUTO, SHAPES, FieldMapping, Shape, detect_shape
from .shapes.preference import PREFERENCE_SHAPES, KtoShape, PairShaper

if TYPE_CHECKING:
    import numpy as np

    from .lengths import LengthPolicy
    from .packing import Packer
    from .pairs import EncodedPair, PairSamples
    from .template import Encoded, Llama3Template, Samples
    from .writers.layouts import RowLayout
    from .writers.shards import Columns

SFT, PREFERENCE = "sft", "preference"
TASK_CHOICES = (AUTO, SFT, PREFERENCE)  # --task
ALL_SHAPES: dict[str, type[Shape]] = {**SHAPES, **PREFERENCE_SHAPES}


def detect(sample: list, mapping: FieldMapping, task: str = AUTO) -> str:
    """The shape of an input's sample records: a preference shape when `task` says so, or (auto) when most records
    are pairs or labelled answers by the preference schemas; else an SFT shape.

    Raises:
        ShapeNotFound: no shape of the task fits (see `detect_shape`).
    """
    from .schema import validator

    if task == AUTO:
        pairs = sum(any(validator(name).is_valid(mapping.apply(record, shape.fields))
                        for name, shape in PREFERENCE_SHAPES.items()) for record in sample)
        task = PREFERENCE if 2 * pairs > len(sample) else SFT
    return detect_shape(sample, mapping, PREFERENCE_SHAPES if task == PREFERENCE else SHAPES)


def task_of(names: dict[str, str | None]) -> str | None:
    """The task of inputs whose shapes are `names`; None when they mix tasks (or layouts: pairs and KTO)."""
    kinds = {layout_name(name) for name in names.values() if name}
    if len(kinds) > 1:
        return None
    return PREFERENCE if kinds & {"pairs", "kto"} else SFT


def layout_name(shape: str) -> str:
    """The row layout a shape's records are written in: sft, pairs or kto."""
    return "sft" if shape in SHAPES else "kto" if shape == KtoShape.name else "pairs"


class SftTask:
    """One conversation per record, one sample per row (or packed rows); the length policy cuts whole turns."""

    name = SFT
    layout_name = "sft"

    def shaper(self, shape: Shape, mapping: FieldMapping, rules):
        from .pipeline import InputShape  # the SFT shaper has always lived beside the pipeline

        return InputShape(shape, mapping, rules)

    def render(self, template: Llama3Template, items: list) -> tuple[Samples, list]:
        return template.render_samples(items)

    def sample(self, parts: tuple, location) -> Encoded:
        """One rendered item (of `Samples.split`) with its record's location, as `validate` and `inspect` see it."""
        from .template import Encoded

        return Encoded(*parts, location)

    def fit(self, samples: Samples, lengths: LengthPolicy) -> tuple[Samples, np.ndarray | None]:
        """The samples the length policy keeps, and their positions (None: all of them)."""
        return lengths.fit_samples_rows(samples)

    def columns(self, samples: Samples, packer: Packer | None, kept: list | None = None) -> Columns:
        """Rows of samples (packed if `packer`), with each sample's kept record fields if any."""
        from .writers.shards import Columns

        if packer is None:
            return Columns.from_samples(samples, kept)
        return Columns.from_packed(packer.add_samples(samples))

    def layout(self, packed: bool, keep: tuple[str, ...] = ()) -> RowLayout:
        from .writers.layouts import SftLayout

        return SftLayout(packed, keep)


class PreferenceTask:
    """A prompt and two answers (or one answer and a KTO label) per record, one pair per row.

    Args:
        layout: `pairs` or `kto`, the rows written.
        max_seq_len: the most tokens either side may have (None: no limit).
        truncate: over the limit, drop the prompt's oldest exchanges before dropping the pair.
    """

    name = PREFERENCE

    def __init__(self, layout: str = "pairs", *, max_seq_len: int | None = None, truncate: bool = False):
        self.layout_name = layout
        self.max_seq_len = max_seq_len
        self.truncate = truncate

    def shaper(self, shape: Shape, mapping: FieldMapping, rules) -> PairShaper:
        return PairShaper(shape, mapping, rules)

    def render(self, template: Llama3Template, items: list) -> tuple[PairSamples, list]:
        from .pairs import render_pairs

        return render_pairs(template, items, limit=self.max_seq_len, truncate=self.truncate)

    def sample(self, parts: tuple, location) -> EncodedPair:
        """One rendered pair (of `PairSamples.split`) with its record's location."""
        from .pairs import EncodedPair

        return EncodedPair.of(parts, location)

    def fit(self, pairs: PairSamples, lengths: LengthPolicy) -> tuple[PairSamples, np.ndarray | None]:
        """The pairs whose sides both fit and their positions (None: all of them); counts in `lengths.stats` the
        pairs truncated (by `render`) and dropped."""
        import numpy as np

        over = pairs.longest_side() > lengths.max_seq_len
        stats = lengths.stats
        truncated = int((pairs.cut > 0).sum())
        stats.over_limit += truncated + int(over.sum())
        stats.truncated += truncated
        stats.dropped += int(over.sum())
        stats.tokens_lost += int(pairs.cut.sum() + pairs.lengths[over].sum())
        if over.any():
            dropped = pairs.take(np.flatnonzero(over))
            stats.trained_tokens_lost += int(dropped.loss_mask.sum())
            return pairs.take(np.flatnonzero(~over)), np.flatnonzero(~over)
        return pairs, None

    def columns(self, pairs: PairSamples, packer: Packer | None, kept: list | None = None) -> Columns:
        """Rows of pairs: each row the chosen side's tokens then the rejected side's (KTO: the one side)."""
        import numpy as np

        from .template import Samples
        from .writers.layouts import CHOSEN_LENGTH, LABEL, PROMPT_LENGTH
        from .writers.shards import Columns

        count = len(pairs)
        extras = {PROMPT_LENGTH: pairs.prompt_lengths}
        if pairs.labels is not None or self.layout_name == "kto":
            sides = pairs.chosen
            extras[LABEL] = pairs.labels if pairs.labels is not None else np.zeros(0, dtype=bool)
        else:
            both = Samples.concat([pairs.chosen, pairs.rejected]) if count else pairs.chosen
            sides = both.take(np.stack([np.arange(count), np.arange(count) + count], axis=1).ravel())
            sides = Samples(sides.input_ids, sides.loss_mask, pairs.lengths)
            extras[CHOSEN_LENGTH] = pairs.chosen.lengths
        columns = Columns.from_samples(sides)
        return Columns(columns.input_ids, columns.loss_mask, columns.row_offsets, columns.seq_lens,
                       columns.seq_offsets, extras, kept)

    def layout(self, packed: bool, keep: tuple[str, ...] = ()) -> RowLayout:
        from .writers.layouts import KtoLayout, PairLayout

        return KtoLayout(keep) if self.layout_name == "kto" else PairLayout(keep)


def make_task(names: dict[str, str | None], *, max_seq_len: int | None = None, truncate: bool = False
              ) -> SftTask | PreferenceTask:
    """The task of inputs whose shapes are `names` (which `task_of` found to agree)."""
    kinds = {layout_name(name) for name in names.values() if name} or {"sft"}
    layout = kinds.pop()
    return SftTask() if layout == "sft" else PreferenceTask(layout, max_seq_len=max_seq_len, truncate=truncate)


__all__ = ["ALL_SHAPES", "PREFERENCE", "SFT", "TASK_CHOICES", "PreferenceTask", "SftTask", "detect",
           "make_task", "task_of"]
