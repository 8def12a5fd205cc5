"""Reference Llama 3 tokenisations that sftconv's token ids must match exactly.

Two independent references, both built offline from the tokenizer.model file
shipped with llama-models (the Hugging Face hub is not reachable):

* `hf_llama3_ids`: transformers' `apply_chat_template` with the official
  Meta-Llama-3-8B-Instruct chat template, on a fast tokenizer converted from
  tokenizer.model by transformers' `TikTokenConverter`.
* `meta_llama3_ids`: Meta's own `ChatFormat.encode_message`, one message at a
  time after `<|begin_of_text|>` (`encode_dialog_prompt` would append an
  assistant generation header, which a training sample does not have).

They agree token for token on trimmed content, except that HF turns
special-token strings inside content into control tokens and Meta encodes them
as text, and Meta cuts runs of over 25,000 (non-)whitespace characters and
texts of over 400,000 characters into pieces it encodes separately.  HF trims
contents; Meta does not.
"""

import functools
from importlib.resources import files
from pathlib import Path

from llama_models.datatypes import RawMessage, StopReason, ToolPromptFormat
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer
from tokenizers import AddedToken, processors
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

LLAMA3_TOKENIZER_PATH = Path(files("llama_models.llama3") / "tokenizer.model")

# Chat template of Meta-Llama-3-8B-Instruct (tokenizer_config.json on the hub).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)


@functools.cache
def _meta_chat_format() -> ChatFormat:
    """Return Meta's chat formatter on the shared Llama 3 tokenizer."""
    return ChatFormat(Tokenizer.get_instance())


@functools.cache
def hf_tokenizer() -> PreTrainedTokenizerFast:
    """Return the fast Llama 3 tokenizer converted from LLAMA3_TOKENIZER_PATH."""
    special = Tokenizer.get_instance().special_tokens
    names = sorted(special, key=special.get)
    converter = TikTokenConverter(vocab_file=str(LLAMA3_TOKENIZER_PATH), pattern=Tokenizer.pat_str)
    backend = converter.converted()
    # Added here: the converter's keyword for special tokens differs between transformers 4 and 5.
    backend.add_special_tokens([AddedToken(n, normalized=False, special=True) for n in names])
    # Like the hub's tokenizer.json: encode() adds BOS unless add_special_tokens=False.
    backend.post_processor = processors.Sequence(
        [
            backend.post_processor,
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", special["<|begin_of_text|>"])],
            ),
        ]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        chat_template=LLAMA3_CHAT_TEMPLATE,
    )
    assert tok.convert_tokens_to_ids(names) == [special[n] for n in names]
    return tok


def hf_llama3_ids(messages: list[dict]) -> list[int]:
    """Tokenise messages with transformers' apply_chat_template (no generation prompt)."""
    ids = hf_tokenizer().apply_chat_template(
        messages, tokenize=True, add_generation_prompt=False, return_dict=False
    )
    return list(ids)


def meta_llama3_ids(messages: list[dict]) -> list[int]:
    """Tokenise messages with Meta's ChatFormat.encode_message, after one BOS."""
    fmt = _meta_chat_format()
    ids = [fmt.tokenizer.bos_id]
    for m in messages:
        raw = RawMessage(role=m["role"], content=m["content"], stop_reason=StopReason.end_of_turn)
        ids.extend(fmt.encode_message(raw, ToolPromptFormat.json)[0])
    return ids
