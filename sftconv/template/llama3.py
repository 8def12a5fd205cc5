"""The Llama 3 Instruct chat format: Conversation -> token ids and a loss mask.

Template choices, each pinned by a test:
- One `<|begin_of_text|>` at the start, never trained.
- Each message is `<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>`.
- Content is trimmed of leading and trailing whitespace (Python's `str.strip`, which is what the
  Llama 3 Instruct chat template's Jinja `| trim` does). Meta's reference ChatFormat does not trim;
  inference servers render the chat template, so sftconv trains on what they show the model.
- No assistant header (generation prompt) after the last message: a training sample ends with the
  last message's `<|eot_id|>`, and no `<|end_of_text|>` is appended.
- Masks (`loss_mask` 1 = the token counts toward the loss):
  `assistant` trains every assistant message's content and its closing `<|eot_id|>`;
  `last` does so for the final assistant message only; `all` trains every token but the BOS,
  headers included. Under `assistant` and `last` headers are never trained.
  A message's own `train` flag from the data overrides the policy for that message.
- Special ids are placed by the template; content is only ever encoded as ordinary text.
- Llama 3 has no tool turns: a conversation that calls a tool or holds a tool's result is rejected
  (`tool_calls_unsupported`; the `llama3.1` template renders it). Tool definitions alone are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..conversation import (
    ASSISTANT,
    NO_TRAINED_TOKENS,
    TOOL,
    TOOL_CALLS_UNSUPPORTED,
    Conversation,
    Location,
    Message,
    RecordError,
)

if TYPE_CHECKING:
    from ..tokenizer import Tokenizer

IGNORE_INDEX = -100  # the label Hugging Face and PyTorch cross-entropy skip


class MaskPolicy(str, Enum):
    """Which messages the model learns from."""

    ASSISTANT = "assistant"
    LAST = "last"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Encoded:
    """A tokenized training sample; `loss_mask[i]` is 1 where token i is trained."""

    input_ids: list[int]
    loss_mask: list[int]
    location: Location

    @property
    def labels(self) -> list[int]:
        """Token ids where trained, IGNORE_INDEX elsewhere: ready for a Hugging Face `Trainer`."""
        return [t if m else IGNORE_INDEX for t, m in zip(self.input_ids, self.loss_mask)]

    @property
    def trained_tokens(self) -> int:
        return sum(self.loss_mask)


def trained_flags(messages: tuple[Message, ...], policy: MaskPolicy) -> list[bool]:
    """Whether each message is trained: its own flag if the data set one, else the policy's."""
    last_assistant = max((i for i, m in enumerate(messages) if m.role == ASSISTANT), default=-1)
    flags = []
    for i, message in enumerate(messages):
        if message.train is not None:
            flags.append(message.train)
        elif policy is MaskPolicy.ALL:
            flags.append(True)
        elif policy is MaskPolicy.LAST:
            flags.append(i == last_assistant)
        else:
            flags.append(message.role == ASSISTANT)
    return flags


class Llama3Template:
    """Renders conversations in the Llama 3 Instruct format with a loss mask.

    Args:
        tokenizer: encodes message contents (only contents; every special id is a constant).
        policy: the mask policy, `MaskPolicy.ASSISTANT` by default.

    Example:
        >>> tokenizer = Tokenizer()
        >>> chat = Conversation((Message("user", "Hi"), Message("assistant", " Hello! ")), Location("x"))
        >>> tokenizer.decode(Llama3Template(tokenizer).render(chat).input_ids)
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\nHello!<|eot_id|>'
    """

    name = "llama3"

    def __init__(self, tokenizer: Tokenizer, policy: MaskPolicy = MaskPolicy.ASSISTANT):
        self.tokenizer = tokenizer
        self.policy = MaskPolicy(policy)
        self._headers: dict[str, list[int]] = {}

    def header_ids(self, role: str) -> list[int]:
        """`<|start_header_id|>{role}<|end_header_id|>\\n\\n` as ids, computed once per role."""
        ids = self._headers.get(role)
        if ids is None:
            special = self.tokenizer.special_tokens
            ids = [special["<|start_header_id|>"], *self.tokenizer.encode(role), special["<|end_header_id|>"]]
            ids += self.tokenizer.encode("\n\n")
            self._headers[role] = ids
        return ids

    def render(self, conversation: Conversation) -> Encoded:
        """One conversation as ids and mask; raises RecordError if nothing would be trained."""
        result = self.render_batch([conversation])[0]
        if isinstance(result, RecordError):
            raise result
        return result

    def render_batch(self, conversations: list[Conversation]) -> list[Encoded | RecordError]:
        """Many conversations, their contents tokenized in one batch; a failure takes its sample's place."""
        if any(c.has_tool_turns for c in conversations):
            return self._render_without_tools(conversations)
        contents = [m.content.strip() for c in conversations for m in c.messages]
        content_ids = iter(self.tokenizer.encode_batch(contents))
        return [self._assemble(c, content_ids) for c in conversations]

    def _render_without_tools(self, conversations: list[Conversation]) -> list[Encoded | RecordError]:
        """The batch with each conversation that has tool turns rejected, the others rendered."""
        rendered = iter(self.render_batch([c for c in conversations if not c.has_tool_turns]))
        return [tools_unsupported(c) if c.has_tool_turns else next(rendered) for c in conversations]

    def _assemble(self, conversation: Conversation, content_ids) -> Encoded | RecordError:
        """Lay out BOS, headers, contents and end-of-turn ids, with the mask known from their lengths."""
        eot = self.tokenizer.eot_id
        train_headers = self.policy is MaskPolicy.ALL
        input_ids = [self.tokenizer.bos_id]
        loss_mask = [0]
        for message, trained in zip(conversation.messages, trained_flags(conversation.messages, self.policy)):
            header = self.header_ids(message.role)
            body = next(content_ids)
            input_ids += header
            input_ids += body
            input_ids.append(eot)
            loss_mask += [int(trained and train_headers)] * len(header)
            loss_mask += [int(trained)] * (len(body) + 1)
        if not any(loss_mask):
            return RecordError(NO_TRAINED_TOKENS, f"no token is trained under --train-on {self.policy.value}")
        return Encoded(input_ids, loss_mask, conversation.location)


def tools_unsupported(conversation: Conversation) -> RecordError:
    """The rejection of a conversation with tool turns, naming the first."""
    index, message = next((i, m) for i, m in enumerate(conversation.messages, 1) if m.tool_calls or m.role == TOOL)
    what = "calls a tool" if message.tool_calls else "is a tool's result"
    return RecordError(TOOL_CALLS_UNSUPPORTED, f"turn {index} {what}; Llama 3 has no tool turns: "
                                               "pass --template llama3.1")
