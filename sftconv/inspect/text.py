"""Terminal views of a sample: its decoded text with trained spans marked, or one token per row."""

from __future__ import annotations

from ..pairs import EncodedPair
from ..template import IGNORE_INDEX, Encoded
from ..tokenizer import Tokenizer
from .reasoning import trace_flags
from .samples import Shown

# ANSI styles; written by hand because the library never imports click.
GREEN, DIM, BOLD, RESET = "\x1b[32m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
CYAN, ITALIC = "\x1b[36m", "\x1b[3m"  # a reasoning block, trained or not
OPEN, CLOSE = "[[", "]]"  # around trained text in the plain view
TRACE_MARKS, UNTRAINED_TRACE_MARKS = ("{{", "}}"), ("((", "))")  # around a reasoning block in the plain view
ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}


def runs(sample: Encoded, tokenizer: Tokenizer) -> list[tuple[bool, bool, list[int]]]:
    """Maximal runs of tokens alike in being trained or not and in being a reasoning block or not: (trained, trace, ids)."""
    spans: list[tuple[bool, bool, list[int]]] = []
    for token, trained, trace in zip(sample.input_ids, sample.loss_mask, trace_flags(sample.input_ids, tokenizer)):
        if spans and spans[-1][:2] == (bool(trained), trace):
            spans[-1][2].append(token)
        else:
            spans.append((bool(trained), trace, [token]))
    return spans


def header(shown: Shown) -> str:
    """One line naming the sample: position, origin, token and trained-token counts."""
    sample = shown.sample
    tokens, trained = len(sample.input_ids), sample.trained_tokens
    share = trained / tokens if tokens else 0.0
    return (f"=== sample {shown.index} · {shown.where} · {tokens:,} tokens · "
            f"{trained:,} trained ({share:.1%})")


def render_text(shown: Shown, tokenizer: Tokenizer, *, color: bool) -> str:
    """The header and the sample's text as the model reads it, special tokens by name.

    Trained text is green and the rest dimmed with `color`, a reasoning block cyan (trained) or dimmed
    italic (not); without color, trained text is wrapped in `[[` `]]`, a trained block in `{{` `}}` and
    an untrained one in `((` `))`, and nothing else is added, so the text between markers is exactly
    what each is.
    """
    parts = [f"{BOLD}{header(shown)}{RESET}\n" if color else f"{header(shown)}\n"]
    sample = shown.sample
    if isinstance(sample, EncodedPair):
        return "".join(parts) + pair_text(sample, tokenizer, color=color)
    return "".join(parts) + marked_text(sample, tokenizer, color=color)


def marked_text(sample: Encoded, tokenizer: Tokenizer, *, color: bool) -> str:
    """A sample's text with its trained runs marked: green with `color`, else between `[[` `]]`."""
    parts = []
    for trained, trace, ids in runs(sample, tokenizer):
        text = tokenizer.decode(ids)
        if color:
            style = (CYAN if trained else DIM + ITALIC) if trace else GREEN if trained else DIM
            parts.append(f"{style}{text}{RESET}")
        else:
            opening, closing = (TRACE_MARKS if trained else UNTRAINED_TRACE_MARKS) if trace else \
                (OPEN, CLOSE) if trained else ("", "")
            parts.append(f"{opening}{text}{closing}")
    return "".join(parts)


def pair_text(pair: EncodedPair, tokenizer: Tokenizer, *, color: bool) -> str:
    """A preference sample: the shared prompt once (with its answer's header), then each answer under its name."""
    length = pair.prompt_length
    names = ("chosen", "rejected") if pair.rejected is not None else (f"answer, label {str(pair.label).lower()}",)
    parts = [marked_text(Encoded(pair.chosen.input_ids[:length], pair.chosen.loss_mask[:length], pair.location),
                         tokenizer, color=color)]
    for name, side in zip(names, pair.sides):
        answer = Encoded(side.input_ids[length:], side.loss_mask[length:], side.location)
        title = f"--- {name} · {len(side.input_ids) - length:,} tokens · {side.trained_tokens:,} trained ---"
        parts.append(f"\n{BOLD}{title}{RESET}\n" if color else f"\n{title}\n")
        parts.append(marked_text(answer, tokenizer, color=color))
    return "".join(parts)


def quote(raw: bytes) -> str:
    """A token's bytes as a quoted string: control characters escaped, a partial character as \\xNN."""
    out = []
    for char in raw.decode("utf-8", errors="surrogateescape"):
        code = ord(char)
        if char in ESCAPES:
            out.append(ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte of a character that continues in the next token
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not char.isprintable():
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def render_tokens(shown: Shown, tokenizer: Tokenizer, *, color: bool) -> str:
    """The header and a table of the sample's tokens: position, id, label (id or -100) and text.

    Special tokens are shown by name without quotes; ordinary text is quoted, so a user's typed
    `<|eot_id|>` (several ordinary tokens) cannot be mistaken for the control token. A token of a
    reasoning block ends with `  (trace)`.
    """
    sample = shown.sample
    special = set(tokenizer.special_tokens.values())
    width = max(len(str(len(sample.input_ids))), 3)
    lines = [f"{BOLD}{header(shown)}{RESET}" if color else header(shown),
             f"{'pos':>{width}}  {'id':>6}  {'label':>6}  text"]
    raws = tokenizer.token_bytes(sample.input_ids)
    traces = trace_flags(sample.input_ids, tokenizer)
    for position, (token, trained, raw, trace) in enumerate(zip(sample.input_ids, sample.loss_mask, raws, traces)):
        text = raw.decode() if token in special else quote(raw)
        line = f"{position:>{width}}  {token:>6}  {token if trained else IGNORE_INDEX:>6}  {text}"
        line += "  (trace)" if trace else ""
        style = (CYAN if trained else DIM + ITALIC) if trace else GREEN if trained else DIM
        lines.append(f"{style}{line}{RESET}" if color else line)
    return "\n".join(lines)
