"""One definition of percentiles for every statistic sftconv prints: validate's report and inspect --stats."""

from __future__ import annotations

from math import ceil

import numpy as np


def percentile(values, counts, p: float):
    """The nearest-rank percentile: the smallest value with at least p% of all values at or below it.

    Args:
        values: the distinct values, in increasing order.
        counts: how many times each occurs.
        p: the percentile, 0 to 100.

    Returns:
        One of `values` (a Python number), or None when there are no values.

    Example:
        >>> percentile([1, 2, 3, 10], [1, 1, 1, 1], 50), percentile([1, 2, 3, 10], [1, 1, 1, 1], 95)
        (2, 10)
    """
    cumulative = np.cumsum(np.asarray(counts, dtype=np.int64))
    if not len(cumulative) or not cumulative[-1]:
        return None
    rank = max(1, ceil(p / 100 * int(cumulative[-1])))
    return np.asarray(values)[np.searchsorted(cumulative, rank)].item()


def array_percentile(array: np.ndarray, p: float):
    """`percentile` of every value of an array."""
    values, counts = np.unique(array, return_counts=True)
    return percentile(values, counts, p)
