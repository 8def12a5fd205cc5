"""Show samples as the model sees them: decoded text with trained spans marked, a token table, an HTML
page, or length and trained-share histograms, from raw files or from convert's output."""

from .page import render_html
from .plot import PLOT_SUFFIXES, write_plot
from .samples import InspectError, RawSamples, SampleIndexError, Shown, StoredSamples, open_samples
from .stats import Stats, collect, histograms, render_stats
from .text import render_text, render_tokens

__all__ = [
    "PLOT_SUFFIXES",
    "InspectError",
    "RawSamples",
    "SampleIndexError",
    "Shown",
    "Stats",
    "StoredSamples",
    "collect",
    "histograms",
    "open_samples",
    "render_html",
    "render_stats",
    "render_text",
    "render_tokens",
    "write_plot",
]
