"""Other chat formats' markers: text that, in a record, means the data was templated for another model.

Kept apart from `validate`, which imports the pipeline, so that the convert path (`plain`) can import them
when it is imported rather than while a run is under way.
"""

from __future__ import annotations

import re

# Markers other chat formats put in text; seeing one means the data was templated for another model.
FOREIGN_MARKERS = {
    "<|im_start|>": "ChatML (Qwen, Yi, OpenHermes)",
    "<|im_end|>": "ChatML (Qwen, Yi, OpenHermes)",
    "<|user|>": "Zephyr/Phi-3/TÜLU",
    "<|assistant|>": "Zephyr/Phi-3/TÜLU",
    "<|system|>": "Zephyr/Phi-3/TÜLU",
    "<|end|>": "Phi-3",
    "<|endoftext|>": "GPT-2/GPT-3/Qwen end of text",
    "</s>": "SentencePiece end of sequence (Llama 2, Mistral)",
    "<s>": "SentencePiece start of sequence (Llama 2, Mistral)",
    "[INST]": "Llama 2/Mistral instruction",
    "[/INST]": "Llama 2/Mistral instruction",
    "<<SYS>>": "Llama 2 system prompt",
    "<</SYS>>": "Llama 2 system prompt",
    "<start_of_turn>": "Gemma",
    "<end_of_turn>": "Gemma",
}
# The markers that are not shaped like `<|name|>`, as one regex alternation.
LITERAL_MARKERS = "|".join(re.escape(m) for m in FOREIGN_MARKERS if not m.startswith("<|"))
