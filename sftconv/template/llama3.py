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
- An assistant's reasoning trace renders as plain text before its answer, in the one form and under
  the policy (which turns keep it, whether it is trained) that `reasoning.py` documents.
- Llama 3 has no tool turns: a conversation that calls a tool or holds a tool's result is rejected
  (`tool_calls_unsupported`; the `llama3.1` template renders it). Tool definitions alone are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
from .reasoning import ReasoningCounts, ReasoningPolicy, block

if TYPE_CHECKING:
    import numpy as np

    from ..tokenizer import Tokenizer

IGNORE_INDEX = -100  # the label Hugging Face and PyTorch cross-entropy skip
BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"
# Sits between a header's "\n\n" and the content when many samples are tokenized as one text, so
# the two never meet in one BPE piece; it is a reserved special token no template uses, and is
# removed from the ids. A fine-tune that renamed it gets another spare special token (`separator_for`).
SEPARATOR = "<|reserved_special_token_245|>"  # the last special token (id 128255)
CONTROL_TOKENS = (BOS, "<|start_header_id|>", "<|end_header_id|>", EOT)  # what the template places
MARKERS = frozenset({*CONTROL_TOKENS, SEPARATOR})
# Each special token in that text gets a code: whether it is trained, whether the ordinary tokens
# after it (up to the next special token) are trained, and whether it is the separator.
SELF_TRAINED, RUN_TRAINED, IS_SEPARATOR = 1, 2, 4


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


@dataclass(frozen=True)
class Samples:
    """Many tokenized samples end to end in flat arrays: sample i is tokens `offsets[i]:offsets[i + 1]`."""

    input_ids: np.ndarray  # int32
    loss_mask: np.ndarray  # uint8, 1 = trained
    lengths: np.ndarray  # int64, tokens per sample

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def offsets(self) -> np.ndarray:
        import numpy as np

        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets

    @classmethod
    def from_lists(cls, pairs: Iterable[tuple[list[int], list[int]]]) -> Samples:
        """Samples from (ids, mask) pairs."""
        import numpy as np

        ids, mask, lengths = [], [], []
        for sample_ids, sample_mask in pairs:
            ids += sample_ids
            mask += sample_mask
            lengths.append(len(sample_ids))
        return cls(np.array(ids, dtype=np.int32), np.array(mask, dtype=np.uint8), np.array(lengths, dtype=np.int64))

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        """The samples of `parts`, in order."""
        import numpy as np

        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.input_ids for p in parts]), np.concatenate([p.loss_mask for p in parts]),
                   np.concatenate([p.lengths for p in parts]))

    @classmethod
    def in_order(cls, parts: list[tuple[Samples, list[int]]]) -> Samples:
        """The samples of `parts`, each given with its samples' places, in the order of those places."""
        import numpy as np

        parts = [(samples, places) for samples, places in parts if len(samples)] or parts[:1]
        if len(parts) == 1:
            return parts[0][0]
        order = np.argsort(np.concatenate([np.asarray(places, dtype=np.int64) for _, places in parts]), kind="stable")
        return cls.concat([samples for samples, _ in parts]).take(order)

    def take(self, indices) -> Samples:
        """The samples at `indices` (ints, in any order), in that order."""
        import numpy as np

        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        tokens = np.arange(int(lengths.sum())) + np.repeat(self.offsets[indices] - starts, lengths)
        return Samples(self.input_ids[tokens], self.loss_mask[tokens], lengths)

    def split(self) -> list[tuple[list[int], list[int]]]:
        """Each sample's ids and mask as lists."""
        ids, mask, offsets = self.input_ids.tolist(), self.loss_mask.tolist(), self.offsets.tolist()
        return [(ids[start:stop], mask[start:stop]) for start, stop in zip(offsets, offsets[1:])]

    def merged(self, others: dict[int, tuple[list[int], list[int]]]) -> Samples:
        """These samples with `others` (ids and mask) put in at their positions in the result."""
        import numpy as np

        offsets = self.offsets
        ids, mask, lengths, mine = [], [], [], 0
        for position in range(len(self) + len(others)):
            if position in others:
                other_ids, other_mask = others[position]
                ids.append(np.array(other_ids, dtype=np.int32))
                mask.append(np.array(other_mask, dtype=np.uint8))
            else:
                ids.append(self.input_ids[offsets[mine]:offsets[mine + 1]])
                mask.append(self.loss_mask[offsets[mine]:offsets[mine + 1]])
                mine += 1
            lengths.append(len(ids[-1]))
        return Samples(np.concatenate(ids), np.concatenate(mask), np.array(lengths, dtype=np.int64))


def message_codes(kind: int) -> tuple[int, ...]:
    """The codes of one message's special tokens: start header (then the role), end header (then
    "\\n\\n"), separator (then the content) and end of turn. `kind`: 0 untrained, 1 trained, 2 header trained too."""
    header = SELF_TRAINED | RUN_TRAINED if kind == 2 else 0
    return header, header, IS_SEPARATOR | (RUN_TRAINED if kind else 0), SELF_TRAINED if kind else 0


MARKS_PER_MESSAGE = 4  # special tokens in one message's marked text


def trained_flags(messages: tuple[Message, ...], policy: MaskPolicy) -> list[bool]:
    """Whether each message is trained: its own flag if the data set one, else the policy's."""
    if policy is MaskPolicy.ASSISTANT:
        return [m.role == ASSISTANT if m.train is None else m.train for m in messages]
    if policy is MaskPolicy.ALL:
        return [True if m.train is None else m.train for m in messages]
    last = max((i for i, m in enumerate(messages) if m.role == ASSISTANT), default=-1)
    return [i == last if m.train is None else m.train for i, m in enumerate(messages)]


class Llama3Template:
    """Renders conversations in the Llama 3 Instruct format with a loss mask.

    Args:
        tokenizer: encodes message contents (only contents; every special id is a constant).
        policy: the mask policy, `MaskPolicy.ASSISTANT` by default.
        reasoning: what becomes of reasoning traces (default: every trace kept and trained).

    `reasoning_counts` adds up the traces of the samples rendered, for the run's summary.

    Example:
        >>> tokenizer = Tokenizer()
        >>> chat = Conversation((Message("user", "Hi"), Message("assistant", " Hello! ")), Location("x"))
        >>> tokenizer.decode(Llama3Template(tokenizer).render(chat).input_ids)
        '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\nHello!<|eot_id|>'
    """

    name = "llama3"
    control_tokens = CONTROL_TOKENS

    def __init__(self, tokenizer: Tokenizer, policy: MaskPolicy = MaskPolicy.ASSISTANT, *,
                 reasoning: ReasoningPolicy = ReasoningPolicy()):
        tokenizer.require(list(self.control_tokens), f"the {self.name} template")
        self.tokenizer = tokenizer
        self.policy = MaskPolicy(policy)
        self.reasoning = reasoning
        self.reasoning_counts = ReasoningCounts()
        self._headers: dict[str, list[int]] = {}
        self._header_texts: dict[str, str] = {}
        special = tokenizer.special_tokens
        self._separator = separator_for(special)
        self._markers = frozenset({*CONTROL_TOKENS, self._separator})
        self._special_ids = {name: special[name] for name in self._markers}
        self._first_special = min(special.values())

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Render without adding to `reasoning_counts`: for renders that are not samples (a pair's prompt alone...)."""
        counts, self.reasoning_counts = self.reasoning_counts, ReasoningCounts()
        try:
            yield
        finally:
            self.reasoning_counts = counts

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
        samples, errors = self.render_samples(conversations)
        rendered = iter(samples.split())
        return [error or Encoded(*next(rendered), c.location) for c, error in zip(conversations, errors)]

    def render_samples(self, conversations: list[Conversation]) -> tuple[Samples, list[RecordError | None]]:
        """Many conversations as flat arrays, in order; `errors[i]` is None where conversation i became a sample.

        The samples are laid out as one text in which the template's special tokens are written by
        name and every content is cut off from its neighbours by special tokens, then tokenized in a
        single call: special tokens are split points of the BPE, so each content gets exactly the ids
        it gets alone. The mask follows from where the special ids land, without a loop over tokens.
        A backend that encodes a list of texts faster (`flat_batches`: fastokens) gets the contents as
        one list instead, and the special ids are put around them (`_tokenize_flat`): the same arrays.
        A conversation whose content holds `<|` (which could spell a special token) is rendered
        message by message instead, so typed special-token text always stays text, and so is one
        with a reasoning block, whose mask changes inside a content.
        """
        policy, train_headers = self.policy, self.policy is MaskPolicy.ALL
        roles: list[str] = []  # per message of the batch-rendered samples
        contents: list[str] = []
        kinds: list[int] = []  # per message: 0 untrained, 1 trained, 2 header trained too
        sizes: list[int] = []  # per sample: its number of messages
        errors: list[RecordError | None] = []
        exact: dict[int, tuple[list[int], list[int]]] = {}  # sample number -> ids and mask, rendered alone
        for conversation in conversations:
            if conversation.has_tool_turns:
                errors.append(tools_unsupported(conversation))
                continue
            messages = conversation.messages
            flags = trained_flags(messages, policy)
            if not any(flags):
                errors.append(RecordError(NO_TRAINED_TOKENS, f"no token is trained under --train-on {policy.value}"))
                continue
            errors.append(None)
            if self.reasoning.applies(messages):
                exact[len(sizes) + len(exact)] = self._assemble(messages, flags)
                continue
            texts = [message.content.strip() for message in messages]
            if "<|" in "\0".join(texts):  # in one of them: "\0" cannot be part of "<|"
                exact[len(sizes) + len(exact)] = self._assemble(messages, flags)
                continue
            roles += [message.role for message in messages]
            contents += texts
            sizes.append(len(messages))
            kinds += [2 * trained for trained in flags] if train_headers else flags
        samples = self.lay_out(roles, contents, kinds, sizes)
        return (samples.merged(exact) if exact else samples), errors

    def lay_out(self, roles: list[str], contents: list[str], kinds: list[int], sizes: list[int]) -> Samples:
        """Samples of plain messages (trimmed contents free of `<|`, no traces), in the backend's fastest form.

        `roles` and `contents` are per message, `kinds` its mask (0 untrained, 1 trained, 2 header trained
        too), `sizes` the messages of each sample.
        """
        if self.tokenizer.backend.flat_batches:
            return self._tokenize_flat(roles, contents, kinds, sizes)
        return self._tokenize(self._marked_text(roles, contents, sizes), kinds, sizes)

    def _marked_text(self, roles: list[str], contents: list[str], sizes: list[int]) -> str:
        """The samples as one text: per sample BOS, then each message's header, content and end of turn."""
        headers = self._header_texts
        parts: list[str] = []
        message = 0
        for size in sizes:
            parts.append(BOS)
            for role, text in zip(roles[message:message + size], contents[message:message + size]):
                parts += (headers.get(role) or self._header_text(role), text, EOT)
            message += size
        return "".join(parts)

    def _header_text(self, role: str) -> str:
        """A message's header as marked text, up to its content."""
        text = self._header_texts.get(role)
        if text is None:
            text = self._header_texts[role] = f"<|start_header_id|>{role}<|end_header_id|>\n\n{self._separator}"
        return text

    def _tokenize(self, text: str, kinds: list[int], sizes: list[int]) -> Samples:
        """Marked text -> samples: the ids, the mask from each special token's code, the lengths from the sizes."""
        import numpy as np

        ids = self.tokenizer.encode_marked(text, self._markers)
        at = np.flatnonzero(ids >= self._first_special)
        sizes = np.array(sizes, dtype=np.int64)
        # The codes of the special tokens, in order: 0 for each sample's BOS, then four per message.
        codes_by_kind = np.array([message_codes(kind) for kind in range(3)], dtype=np.uint8)
        firsts = np.zeros(len(sizes), dtype=np.int64)
        np.cumsum(sizes[:-1] * MARKS_PER_MESSAGE + 1, out=firsts[1:])
        code = np.zeros(len(sizes) + MARKS_PER_MESSAGE * len(kinds), dtype=np.uint8)
        is_message = np.ones(len(code), dtype=bool)
        is_message[firsts] = False
        code[is_message] = codes_by_kind[np.array(kinds, dtype=np.int64)].ravel()
        if len(at) != len(code):
            raise AssertionError(f"{len(at)} special tokens where the template placed {len(code)}")
        run = np.diff(at, append=len(ids)) - 1  # the ordinary tokens after each special token
        counts = np.empty(2 * len(at), dtype=np.int64)
        counts[0::2], counts[1::2] = 1, run
        values = np.empty(2 * len(at), dtype=np.uint8)
        values[0::2], values[1::2] = code & SELF_TRAINED, (code & RUN_TRAINED) >> 1
        mask = np.repeat(values, counts)
        separator = (code & IS_SEPARATOR) >> 2
        keep = ids != self._special_ids[self._separator]
        lengths = np.add.reduceat(1 + run - separator, firsts) if len(sizes) else np.zeros(0, dtype=np.int64)
        return Samples(ids[keep].astype(np.int32), mask[keep], lengths.astype(np.int64))

    def _tokenize_flat(self, roles: list[str], contents: list[str], kinds: list[int], sizes: list[int]) -> Samples:
        """Contents -> samples, for a backend that encodes a list of texts at once: the contents are encoded in one
        call, and BOS, headers and ends of turn put around them, the mask following each piece's length.

        The same ids as `_tokenize`: there the special tokens cut the marked text into these very pieces.
        """
        import numpy as np

        ids, offsets = self.tokenizer.encode_flat(contents)
        content_len = np.diff(offsets)
        names = list(dict.fromkeys(roles))
        number = {name: i for i, name in enumerate(names)}
        role = np.array([number[name] for name in roles], dtype=np.int64)
        headers = [np.array(self.header_ids(name), dtype=np.int32) for name in names]
        header_len = np.array([len(h) for h in headers], dtype=np.int64)[role]
        kind = np.array(kinds, dtype=np.uint8)
        sizes = np.array(sizes, dtype=np.int64)
        sample = np.repeat(np.arange(len(sizes)), sizes)  # each message's sample
        message_len = header_len + content_len + 1  # header, content, end of turn
        before = np.zeros(len(roles), dtype=np.int64)  # where each message starts: the messages and BOSes before it
        np.cumsum(message_len[:-1], out=before[1:])
        start = before + sample + 1
        firsts = np.zeros(len(sizes), dtype=np.int64)  # each sample's first message
        np.cumsum(sizes[:-1], out=firsts[1:])
        lengths = np.add.reduceat(message_len, firsts) + 1 if len(sizes) else np.zeros(0, dtype=np.int64)
        out = np.empty(int(lengths.sum()), dtype=np.int32)
        mask = np.zeros(len(out), dtype=np.uint8)
        out[start[firsts] - 1] = self.tokenizer.bos_id
        for i, header in enumerate(headers):
            at = start[role == i][:, None] + np.arange(len(header))
            out[at] = header
            mask[at[kind[role == i] == 2]] = 1
        body = start + header_len  # where each content starts; its end of turn follows it
        out[np.repeat(body - offsets[:-1], content_len) + np.arange(len(ids))] = ids
        out[body + content_len] = self.tokenizer.eot_id
        trained = content_len + 1  # content and end of turn share the message's mask
        firsts_trained = np.zeros(len(roles), dtype=np.int64)
        np.cumsum(trained[:-1], out=firsts_trained[1:])
        mask[np.repeat(body - firsts_trained, trained) + np.arange(int(trained.sum()))] = np.repeat(kind > 0, trained)
        return Samples(out, mask, lengths.astype(np.int64))

    def _assemble(self, messages: tuple[Message, ...], flags: list[bool]) -> tuple[list[int], list[int]]:
        """Lay out BOS, headers, contents and end-of-turn ids one message at a time, the mask known from their lengths."""
        eot = self.tokenizer.eot_id
        train_headers = self.policy is MaskPolicy.ALL
        input_ids = [self.tokenizer.bos_id]
        loss_mask = [0]
        for message, trained, (thought, text) in zip(messages, flags, self._contents(messages)):
            header = self.header_ids(message.role)
            input_ids += header
            loss_mask += [int(trained and train_headers)] * len(header)
            if thought is not None:
                input_ids += thought
                loss_mask += [int(trained and self.reasoning.train)] * len(thought)
                self.reasoning_counts.tokens += len(thought)
                self.reasoning_counts.trained_tokens += len(thought) * (trained and self.reasoning.train)
            body = self.tokenizer.encode(text)
            input_ids += body
            input_ids.append(eot)
            loss_mask += [int(trained)] * (len(body) + 1)
        return input_ids, loss_mask

    def _contents(self, messages: tuple[Message, ...]) -> list[tuple[list[int] | None, str]]:
        """Each message's reasoning block as ids (None: no block) and its trimmed content; counts the traces."""
        if not self.reasoning.applies(messages):
            return [(None, m.content.strip()) for m in messages]
        traces = self.reasoning.traces(messages)
        self.reasoning_counts.count(messages, traces)
        result = []
        for message, trace in zip(messages, traces):
            text = message.content.strip()
            thought = None if trace is None else self.tokenizer.encode(block(trace, bool(text or message.tool_calls)))
            result.append((thought, text))
        return result


def separator_for(special: dict[str, int]) -> str:
    """The special token that parts headers from contents in marked text: SEPARATOR, or where a fine-tune renamed
    it, the last special token the template does not place whose name holds `<|` (so a content that could
    spell it is never in marked text)."""
    if SEPARATOR in special:
        return SEPARATOR
    spare = [name for name in special if "<|" in name and name not in CONTROL_TOKENS]
    if not spare:
        raise ValueError("the tokenizer has no special token to spare for the template's batch layout")
    return max(spare, key=special.__getitem__)


def tools_unsupported(conversation: Conversation) -> RecordError:
    """The rejection of a conversation with tool turns, naming the first."""
    index, message = next((i, m) for i, m in enumerate(conversation.messages) if m.tool_calls or m.role == TOOL)
    what = "calls a tool" if message.tool_calls else "is a tool's result"
    return RecordError(TOOL_CALLS_UNSUPPORTED, f"turn {index} {what}; Llama 3 has no tool turns: "
                                               "pass --template llama3.1")
