"""Which tokens of a rendered sample are a reasoning block, told from the tokens alone (raw input or stored shards).

A block is what the template writes at the start of an assistant turn, `<think>\\n...\\n</think>`
and the blank line after it (see template/reasoning.py). The shapes move every inline block into the
trace, so text of that form at the start of an assistant turn is always a trace. The template makes
the block end on a token boundary, so the tokens are found from their bytes exactly.
"""

from __future__ import annotations

from ..conversation import CLOSE_TAG, OPEN_TAG
from ..template.reasoning import ANSWER_GAP
from ..tokenizer import Tokenizer

OPEN, CLOSE, GAP = (OPEN_TAG + "\n").encode(), CLOSE_TAG.encode(), ANSWER_GAP.encode()


def trace_flags(input_ids: list[int], tokenizer: Tokenizer) -> list[bool]:
    """For each token, whether it belongs to a reasoning block."""
    flags = [False] * len(input_ids)
    special = tokenizer.special_tokens
    start_header, end_header = special["<|start_header_id|>"], special["<|end_header_id|>"]
    first_special = min(special.values())
    assistant = [start_header, *tokenizer.encode("assistant"), end_header, *tokenizer.encode("\n\n")]
    raws = None
    for position in range(len(input_ids) - len(assistant) + 1):
        if input_ids[position] != start_header or input_ids[position:position + len(assistant)] != assistant:
            continue
        if raws is None:
            raws = tokenizer.token_bytes(input_ids)
        start = end = position + len(assistant)
        while end < len(input_ids) and input_ids[end] < first_special:
            end += 1
        content = b"".join(raws[start:end])
        close = content.find(CLOSE)
        if not content.startswith(OPEN) or close < 0:
            continue
        size = close + len(CLOSE) + (len(GAP) if content[close + len(CLOSE):].startswith(GAP) else 0)
        seen = 0
        for token in range(start, end):
            if seen >= size:
                break
            flags[token] = True
            seen += len(raws[token])
    return flags
