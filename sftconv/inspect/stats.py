"""Distributions over every sample: token length and trained share, as histograms for a terminal."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..percentiles import array_percentile

TARGET_BINS = 10
SHARE_BINS = 10  # 0-10%, ..., 90-100%
BAR_WIDTH = 40  # characters for the longest bar
EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class Histogram:
    """Counts per labelled bin, in bin order."""

    title: str
    summary: str  # min, median, mean, p95 and max of the values binned
    labels: list[str]
    counts: list[int]


@dataclass(frozen=True)
class Stats:
    """Token and trained-token counts of every sample, and how many records did not become samples."""

    lengths: np.ndarray
    trained: np.ndarray
    rejected: int

    @property
    def samples(self) -> int:
        return len(self.lengths)


def collect(samples) -> Stats:
    """Read every sample's sizes from `RawSamples` or `StoredSamples`, holding 8 bytes per sample."""
    lengths, trained = [], []
    for chunk_lengths, chunk_trained in samples.sizes():
        lengths.append(chunk_lengths.astype(np.int32))
        trained.append(chunk_trained.astype(np.int32))
    empty = np.zeros(0, dtype=np.int32)
    return Stats(np.concatenate(lengths) if lengths else empty, np.concatenate(trained) if trained else empty,
                 samples.rejected)


def nice_step(span: float, bins: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that covers `span` in `bins` steps."""
    raw = max(span / bins, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(int(f * magnitude) for f in (1, 2, 5, 10) if f * magnitude >= raw)


def describe(values: np.ndarray, fmt) -> str:
    """min, median, mean, p95 and max of `values`, each written with `fmt`; percentiles as validate's."""
    points = [("min", values.min()), ("median", array_percentile(values, 50)), ("mean", values.mean()),
              ("p95", array_percentile(values, 95)), ("max", values.max())]
    return " · ".join(f"{name} {fmt(value)}" for name, value in points)


def length_histogram(lengths: np.ndarray) -> Histogram:
    """Tokens per sample in round-numbered bins; a long tail past 1.5x the 99th percentile gets one bin."""
    low, high = int(lengths.min()), int(lengths.max())
    p99 = int(array_percentile(lengths, 99))
    top = p99 if high > 1.5 * p99 else high
    step = nice_step(top - low + 1, TARGET_BINS)
    first = low // step * step
    bins = (top - first) // step + 1
    end = first + bins * step
    counts = np.bincount((lengths[lengths < end] - first) // step, minlength=bins).tolist()
    labels = [f"{lo:,}" if step == 1 else f"{lo:,}-{lo + step - 1:,}" for lo in range(first, end, step)]
    if high >= end:
        counts.append(int((lengths >= end).sum()))
        labels.append(f">={end:,}")
    summary = describe(lengths, lambda v: f"{v:,.0f}" if v == int(v) else f"{v:,.1f}")
    return Histogram("tokens per sample", summary, labels, counts)


def share_histogram(lengths: np.ndarray, trained: np.ndarray) -> Histogram:
    """Share of each sample's tokens that are trained, in 10% bins (the last one includes 100%)."""
    bins = np.minimum(trained.astype(np.int64) * SHARE_BINS // lengths, SHARE_BINS - 1)
    counts = np.bincount(bins, minlength=SHARE_BINS).tolist()
    step = 100 // SHARE_BINS
    summary = describe(trained / lengths, lambda v: f"{v:.1%}")
    return Histogram("trained share per sample", summary, [f"{lo}-{lo + step}%" for lo in range(0, 100, step)],
                     counts)


def histograms(stats: Stats) -> list[Histogram]:
    return [length_histogram(stats.lengths), share_histogram(stats.lengths, stats.trained)]


def bar(count: int, most: int) -> str:
    """A bar of block characters, to an eighth of a character."""
    eighths = round(count / most * BAR_WIDTH * 8) if most else 0
    full, part = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[part] if part else "")


def render_histogram(histogram: Histogram) -> str:
    width = max(len(label) for label in histogram.labels)
    most = max(histogram.counts)
    lines = [f"{histogram.title}: {histogram.summary}"]
    for label, count in zip(histogram.labels, histogram.counts):
        lines.append(f"  {label:>{width}} {bar(count, most):<{BAR_WIDTH}} {count:,}")
    return "\n".join(lines)


def render_stats(stats: Stats, name: str) -> str:
    """The totals line and both histograms, as text for a terminal or a log."""
    tokens, trained = int(stats.lengths.sum()), int(stats.trained.sum())
    totals = f"{name}: {stats.samples:,} samples · {tokens:,} tokens · {trained:,} trained"
    totals += f" ({trained / tokens:.1%})" if tokens else ""
    totals += f" · {stats.rejected:,} records rejected (not counted)" if stats.rejected else ""
    if not stats.samples:
        return totals
    return "\n\n".join([totals, *map(render_histogram, histograms(stats))])
