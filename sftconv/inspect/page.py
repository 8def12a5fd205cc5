"""A self-contained HTML page of samples: trained tokens highlighted, each token's id and label on hover.

Everything from the data is HTML-escaped, and the page loads nothing (a Content-Security-Policy
forbids it), so a sample holding markup or script shows as text and the file is safe to share.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape

from ..template import IGNORE_INDEX
from ..tokenizer import Tokenizer
from .reasoning import trace_flags
from .samples import Shown
from .text import header, runs

TRAINED_CLASS = "trained"
TRACE_CLASS = "trace"  # a reasoning block
MAX_CHARACTER_TOKENS = 4  # a UTF-8 character has at most 4 bytes, so spans at most 4 tokens

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1f2328; background: #ffffff; }
h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
h2 { font-size: .95rem; font-weight: 600; margin: 1.8rem 0 .4rem; overflow-wrap: anywhere; }
.legend { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; font-size: .9rem; }
pre { font: 13px/1.65 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap;
      overflow-wrap: anywhere; margin: 0; padding: 1rem; border: 1px solid #d0d7de; border-radius: 6px; }
.t { color: #8c959f; }
.t.trained { color: #0f3d1f; background: #aceebb; }
.t.trace { font-style: italic; }
.t.trace.trained { color: #0a3069; background: #b6e3ff; }
.t.special { font-weight: 700; border-radius: 3px; box-shadow: inset 0 0 0 1px #d0d7de; }
.t:hover { outline: 1px solid #0969da; }
"""


def pieces(raws: list[bytes]) -> Iterator[tuple[int, int, str]]:
    """Runs of tokens whose bytes make whole characters, as (start, end, text).

    A character can be split across tokens (common in CJK text and emoji); shown token by token it
    would be replacement marks, so its tokens share one span.
    """
    start, buffer = 0, b""
    for end, raw in enumerate(raws, 1):
        buffer += raw
        try:
            text = buffer.decode("utf-8")
        except UnicodeDecodeError as error:
            if error.reason == "unexpected end of data" and end - start < MAX_CHARACTER_TOKENS:
                continue
            text = buffer.decode("utf-8", errors="replace")
        yield start, end, text
        start, buffer = end, b""
    if buffer:
        yield start, len(raws), buffer.decode("utf-8", errors="replace")


def token_spans(shown: Shown, tokenizer: Tokenizer) -> Iterator[str]:
    """One `<span>` per token (or per character split across tokens), its ids kept in `data-ids`."""
    special = set(tokenizer.special_tokens.values())
    offset = 0
    for trained, trace, ids in runs(shown.sample, tokenizer):
        for start, end, text in pieces(tokenizer.token_bytes(ids)):
            group = ids[start:end]
            classes = ["t"] + [TRAINED_CLASS] * trained + [TRACE_CLASS] * trace + ["special"] * (group[0] in special)
            first = offset + start
            ids_text = " ".join(map(str, group))
            labels = " ".join(str(t if trained else IGNORE_INDEX) for t in group)
            if len(group) == 1:
                title = f"token {first} · id {ids_text} · label {labels}"
            else:  # one character in several tokens
                title = f"tokens {first}-{first + len(group) - 1} · ids {ids_text} · labels {labels}"
            title += (" · trained" if trained else " · not trained") + (" · reasoning" if trace else "")
            yield (f'<span class="{" ".join(classes)}" data-ids="{ids_text}" '
                   f'title="{escape(title)}">{escape(text)}</span>')
        offset += len(ids)


TRACE_LEGEND = (f'<span><span class="t {TRACE_CLASS} {TRAINED_CLASS}">italic text</span> is a reasoning block '
                f'(<span class="t {TRACE_CLASS}">dimmed</span> when not trained)</span>\n')


def render_html(shown: list[Shown], tokenizer: Tokenizer, *, title: str) -> str:
    """A whole HTML page of the samples, with a legend; needs no network and no script."""
    traced = any(any(trace_flags(s.sample.input_ids, tokenizer)) for s in shown)
    sections = "".join(
        f'<section>\n<h2>{escape(header(s).removeprefix("=== "))}</h2>\n'
        f'<pre>{"".join(token_spans(s, tokenizer))}</pre>\n</section>\n' for s in shown)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(f"sftconv inspect: {title}")}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<div class="legend">
<span><span class="t {TRAINED_CLASS}">trained text</span> counts toward the loss</span>
<span><span class="t">dimmed text</span> is context only</span>
{TRACE_LEGEND if traced else ""}<span><span class="t special">&lt;|eot_id|&gt;</span> special tokens are boxed</span>
<span>hover a token for its position, id and label</span>
</div>
{sections}</body>
</html>
"""
