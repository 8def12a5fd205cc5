"""The stats histograms as a picture: SVG written by hand, or PNG drawn with Pillow, from one layout."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

from .stats import Histogram

PANEL_WIDTH, LABEL_WIDTH, COUNT_WIDTH = 480, 110, 60
TITLE_HEIGHT, SUBTITLE_HEIGHT, ROW_HEIGHT, MARGIN = 48, 40, 24, 20
BAR_COLOR, TEXT_COLOR, MUTED_COLOR, BACKGROUND = "#2da44e", "#1f2328", "#57606a", "#ffffff"
PNG_SCALE = 2  # pixels per layout unit, for a crisp PNG
PLOT_SUFFIXES = (".svg", ".png")


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str


@dataclass(frozen=True)
class Text:
    """A line of text; `x, y` is its left, right or centre point (per `anchor`) at mid-height."""

    x: float
    y: float
    text: str
    size: int
    anchor: str = "start"  # start | end | middle, as SVG names them
    fill: str = TEXT_COLOR
    bold: bool = False


def layout(histograms: list[Histogram], title: str) -> tuple[int, int, list[Rect | Text]]:
    """Horizontal bar charts side by side, bins as rows, like the terminal plot: (width, height, shapes)."""
    rows = max(len(h.counts) for h in histograms)
    width = MARGIN * 2 + PANEL_WIDTH * len(histograms)
    height = MARGIN * 2 + TITLE_HEIGHT + SUBTITLE_HEIGHT + rows * ROW_HEIGHT
    shapes: list[Rect | Text] = [Rect(0, 0, width, height, BACKGROUND),
                                 Text(MARGIN, MARGIN + 10, title, 15, bold=True)]
    bar_space = PANEL_WIDTH - LABEL_WIDTH - COUNT_WIDTH - 20
    for number, histogram in enumerate(histograms):
        left = MARGIN + number * PANEL_WIDTH
        top = MARGIN + TITLE_HEIGHT
        shapes.append(Text(left, top, histogram.title, 13, bold=True))
        shapes.append(Text(left, top + 18, histogram.summary, 10, fill=MUTED_COLOR))
        most = max(histogram.counts) or 1
        for row, (label, count) in enumerate(zip(histogram.labels, histogram.counts)):
            middle = top + SUBTITLE_HEIGHT + row * ROW_HEIGHT + ROW_HEIGHT / 2
            shapes.append(Text(left + LABEL_WIDTH - 8, middle, label, 11, anchor="end", fill=MUTED_COLOR))
            length = bar_space * count / most
            if count:
                shapes.append(Rect(left + LABEL_WIDTH, middle - ROW_HEIGHT * 0.35, max(length, 1),
                                   ROW_HEIGHT * 0.7, BAR_COLOR))
            shapes.append(Text(left + LABEL_WIDTH + length + 6, middle, f"{count:,}", 11))
    return width, height, shapes


def to_svg(width: int, height: int, shapes: list[Rect | Text]) -> str:
    """The shapes as a standalone SVG document."""
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif">']
    for shape in shapes:
        if isinstance(shape, Rect):
            lines.append(f'<rect x="{shape.x:g}" y="{shape.y:g}" width="{shape.width:g}" '
                         f'height="{shape.height:g}" fill="{shape.fill}"/>')
        else:
            weight = ' font-weight="bold"' if shape.bold else ""
            lines.append(f'<text x="{shape.x:g}" y="{shape.y:g}" font-size="{shape.size}" fill="{shape.fill}" '
                         f'text-anchor="{shape.anchor}" dominant-baseline="central"{weight}>'
                         f'{escape(shape.text)}</text>')
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def to_png(width: int, height: int, shapes: list[Rect | Text], path: Path) -> None:
    """The shapes drawn with Pillow (a dependency of llama-models, so already installed)."""
    from PIL import Image, ImageDraw, ImageFont

    s = PNG_SCALE
    image = Image.new("RGB", (width * s, height * s), BACKGROUND)
    draw = ImageDraw.Draw(image)
    anchors = {"start": "lm", "end": "rm", "middle": "mm"}
    for shape in shapes:
        if isinstance(shape, Rect):
            draw.rectangle([shape.x * s, shape.y * s, (shape.x + shape.width) * s - 1,
                            (shape.y + shape.height) * s - 1], fill=shape.fill)
        else:
            font = ImageFont.load_default(size=shape.size * s)
            draw.text((shape.x * s, shape.y * s), shape.text, font=font, fill=shape.fill,
                      anchor=anchors[shape.anchor], stroke_width=1 if shape.bold else 0, stroke_fill=shape.fill)
    image.save(path, format="PNG")


def write_plot(histograms: list[Histogram], path: str | Path, title: str) -> None:
    """Write the histograms to `path`, as SVG or PNG by its suffix.

    Raises:
        ValueError: the suffix is neither `.svg` nor `.png`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(f"{path}: a plot is written as .svg or .png, not {suffix or 'a file without suffix'}")
    width, height, shapes = layout(histograms, title)
    if suffix == ".svg":
        path.write_text(to_svg(width, height, shapes), encoding="utf-8")
    else:
        to_png(width, height, shapes, path)
