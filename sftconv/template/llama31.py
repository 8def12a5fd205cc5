"""The Llama 3.1 Instruct chat format, with tools: Conversation -> token ids and a loss mask.

Two references define this format and they differ: Meta's `ChatFormat` (package `llama-models`,
with the examples of `llama_models/llama3_1/prompt_format.md`, whose answers are the model's own
output) and the chat template of Meta-Llama-3.1-8B-Instruct on the Hugging Face hub, which
`apply_chat_template`, vLLM and TGI render. sftconv follows the hub template, which is what the
model is served with, except where it is broken or silent; each choice is pinned by a test.

As in the Llama 3 template (see llama3.py): one `<|begin_of_text|>`, `<|start_header_id|>{role}
<|end_header_id|>\\n\\n` headers, user/assistant/system contents trimmed, no generation prompt at
the end, the same mask policies, and special ids placed only by the template. On top:

- A system turn always comes first, even without a system prompt: `Environment: ipython\\n` when the
  conversation has tools; `Tools: brave_search, wolfram_alpha\\n\\n` naming its built-in tools other
  than the code interpreter (no such line when there are none, where the hub template writes an
  empty `Tools: ` line); `Cutting Knowledge Date: December 2023\\n`; `Today Date: {date}\\n\\n`; then
  the system prompt. Meta's examples lay these lines out differently (no blank line after `Tools:`,
  the date lines sometimes left out, a newline after the prompt); sftconv follows the hub template.
- The date is pinned (`26 Jul 2024` by default, the hub template's own fallback): output never
  depends on the day it runs, so the same data converts to the same bytes on any day. Llama 3.2's
  template writes today's date instead; sftconv does not, for that reason.
- Function definitions are written as the hub template writes them: a call-format instruction,
  then each definition as JSON indented by 4 (in OpenAI's `{"type": "function", "function": {...}}`
  form, whatever form the data used), each followed by a blank line, at the start of the first user
  message (the default) or, with `ToolPlacement.SYSTEM`, after the date lines of the system turn.
  Built-in tools are named on the `Tools:` line only.
- A function call renders as `{"name": ..., "parameters": {...}}` (the hub template's form; Meta's
  ChatFormat writes `{"type": "function", "name": ..., "parameters": ...}`), as JSON that keeps
  non-ASCII characters (Meta's escapes them).
- A built-in call renders after `<|python_tag|>`: `brave_search.call(query="...")`, and the code
  interpreter's code as it is (the hub template writes `code_interpreter.call(code="...")`, which
  Meta neither writes nor parses). Meta's ChatFormat puts `<|python_tag|>` only before code, and
  before the turn's content; sftconv puts it before every built-in call, as Meta's examples show
  the model writing it, and after the content.
- A turn that calls tools renders its trimmed content first (the hub template drops that text),
  then each call, one after another with nothing between (as Meta's ChatFormat does; Llama 3.1 has
  no format for parallel calls, and the hub template refuses them). The turn ends with `<|eom_id|>`
  when the conversation uses built-in tools, else with `<|eot_id|>`, as the hub template decides.
- A tool's result is an `ipython` turn with its content as it is, not trimmed (both references agree;
  the hub template additionally writes a string result as a quoted JSON string, which Meta does not).
- A reasoning trace renders before the turn's content and calls, as in llama3 (see reasoning.py).
- Masks: tool results, the system lines and the function definitions are never trained, whatever the
  policy or the data's own flags; a turn that calls tools is trained like any assistant turn, its
  closing `<|eom_id|>` like an `<|eot_id|>`, unless `train_tool_calls` is False and its message has
  no flag of its own. The system turn added when the data has no system prompt is never trained.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING

from ..conversation import NO_TRAINED_TOKENS, NO_USER_TURN, SYSTEM, TOOL, USER, Conversation, Message, RecordError
from .llama3 import CONTROL_TOKENS, Encoded, Llama3Template, MaskPolicy, Samples, trained_flags
from .reasoning import ReasoningPolicy, block
from .tools import CODE_INTERPRETER, Toolbox

if TYPE_CHECKING:
    from ..tokenizer import Tokenizer

IPYTHON = "ipython"  # the header of a tool's result
KNOWLEDGE_CUTOFF = "Cutting Knowledge Date: December 2023\n"
CALL_FORMAT = ('Respond in the format {"name": function name, "parameters": dictionary of argument name and its '
               'value}.Do not use variables.\n\n')
FUNCTIONS_IN_USER = ("Given the following functions, please respond with a JSON for a function call with its proper "
                     "arguments that best answers the given prompt.\n\n" + CALL_FORMAT)
FUNCTIONS_IN_SYSTEM = ("You have access to the following functions. To call a function, please respond with JSON for a "
                       "function call." + CALL_FORMAT)


class Thought(str):
    """A reasoning block in a plan: text like any other, told apart so its tokens are counted."""


# A planned sample: pieces in order, each text to encode or ids as they are, and whether it is trained.
Plan = list[tuple[str | list[int], bool]]
GENERATED_KEPT = 4096  # tool sets whose system lines and definitions are kept encoded (records often share one)


class ToolPlacement(str, Enum):
    """Where the function definitions go."""

    USER = "user"
    SYSTEM = "system"


class Llama31Template(Llama3Template):
    """Renders conversations, tool calls and results included, in the Llama 3.1 Instruct format with a loss mask.

    Args:
        tokenizer: encodes texts (every special id is a constant).
        policy: the mask policy, `MaskPolicy.ASSISTANT` by default.
        date_string: the `Today Date:` of the system turn (default `26 Jul 2024`).
        tools_in: where function definitions go, `ToolPlacement.USER` (the first user message) by default.
        train_tool_calls: whether turns that call tools are trained (default True).
        reasoning: what becomes of reasoning traces (default: every trace kept and trained).

    Example:
        >>> chat = Conversation((Message("user", "Hi"), Message("assistant", "Hello!")), Location("x"))
        >>> tokenizer.decode(Llama31Template(tokenizer).render(chat).input_ids)
        '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n<|eot_id|><|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\nHello!<|eot_id|>'
    """

    name = "llama3.1"
    control_tokens = (*CONTROL_TOKENS, "<|eom_id|>", "<|python_tag|>")
    DEFAULT_DATE = "26 Jul 2024"

    def __init__(self, tokenizer: Tokenizer, policy: MaskPolicy = MaskPolicy.ASSISTANT, *,
                 date_string: str = DEFAULT_DATE, tools_in: ToolPlacement = ToolPlacement.USER,
                 train_tool_calls: bool = True, reasoning: ReasoningPolicy = ReasoningPolicy()):
        super().__init__(tokenizer, policy, reasoning=reasoning)
        self.date_string = date_string
        self.tools_in = ToolPlacement(tools_in)
        self.train_tool_calls = train_tool_calls
        self._generated: dict[str, tuple[list[int], list[int]]] = {}

    def render_batch(self, conversations: list[Conversation]) -> list[Encoded | RecordError]:
        """Many conversations, their texts tokenized in one batch; a failure takes its sample's place."""
        plans: list[Plan | RecordError] = []
        for conversation in conversations:
            try:
                plans.append(self._plan(conversation))
            except RecordError as error:
                plans.append(error)
        texts = [piece for plan in plans if not isinstance(plan, RecordError)
                 for piece, _ in plan if isinstance(piece, str)]
        encoded = iter(self.tokenizer.encode_batch(texts))
        return [plan if isinstance(plan, RecordError) else self._lay_out(plan, conversation, encoded)
                for plan, conversation in zip(plans, conversations)]

    def render_samples(self, conversations: list[Conversation]) -> tuple[Samples, list[RecordError | None]]:
        """`render_batch` as flat arrays, the form the convert pipeline moves samples in."""
        results = self.render_batch(conversations)
        samples = Samples.from_lists((r.input_ids, r.loss_mask) for r in results if isinstance(r, Encoded))
        return samples, [r if isinstance(r, RecordError) else None for r in results]

    def _lay_out(self, plan: Plan, conversation: Conversation, encoded) -> Encoded | RecordError:
        """The planned pieces as ids, with the mask known from their lengths."""
        input_ids: list[int] = []
        loss_mask: list[int] = []
        thought = [0, 0]  # block tokens, all and trained
        for piece, trained in plan:
            ids = next(encoded) if isinstance(piece, str) else piece
            input_ids += ids
            loss_mask += [int(trained)] * len(ids)
            if type(piece) is Thought:
                thought[0] += len(ids)
                thought[1] += len(ids) * trained
        if not any(loss_mask):
            return RecordError(NO_TRAINED_TOKENS, f"no token is trained under --train-on {self.policy.value}"
                                                  + ("" if self.train_tool_calls else " --no-train-tool-calls"))
        self.reasoning_counts.tokens += thought[0]
        self.reasoning_counts.trained_tokens += thought[1]
        return Encoded(input_ids, loss_mask, conversation.location)

    def _plan(self, conversation: Conversation) -> Plan:
        """The sample's pieces: BOS, the system turn, then every message.

        Raises:
            RecordError: a tool or call Llama 3.1 cannot render, or no user turn to hold the definitions.
        """
        tools = Toolbox.of(conversation)
        messages = conversation.messages
        flags = self._flags(messages)
        traces = self.reasoning.traces(messages) if self.reasoning.applies(messages) else [None] * len(messages)
        system, system_trained = None, False
        if messages and messages[0].role == SYSTEM:
            system, system_trained = messages[0], flags[0]
            messages, flags, traces = messages[1:], flags[1:], traces[1:]
        system_lines, definitions = self._generated_ids(tools)
        plan: Plan = [([self.tokenizer.bos_id], False),
                      (self.header_ids(SYSTEM), system_trained and self.policy is MaskPolicy.ALL),
                      (system_lines, False)]
        if system is not None:
            plan.append((system.content.strip(), system_trained))
        plan.append(([self.tokenizer.eot_id], system_trained))
        first_user = None
        if definitions:
            first_user = next((i for i, m in enumerate(messages) if m.role == USER), None)
            if first_user is None:
                raise RecordError(NO_USER_TURN, "the function definitions go in the first user message and there is "
                                                "none; pass --tools-in system")
        end = self.tokenizer.eom_id if tools.builtin else self.tokenizer.eot_id
        first_turn = 0 if system is None else 1  # turns are numbered from 0 as in the record, the system prompt first
        for index, (message, trained, trace) in enumerate(zip(messages, flags, traces)):
            prefix = definitions if index == first_user else []
            plan += self._turn(message, trained, tools, end, prefix, f"turn {first_turn + index}", trace)
        self.reasoning_counts.count(messages, traces)
        return plan

    def _flags(self, messages: tuple[Message, ...]) -> list[bool]:
        """Whether each message is trained: tool results never; tool calls unless told not to."""
        def trained(message: Message, flag: bool) -> bool:
            if message.role == TOOL:
                return False
            if message.tool_calls and message.train is None:
                return flag and self.train_tool_calls
            return flag

        return [trained(m, flag) for m, flag in zip(messages, trained_flags(messages, self.policy))]

    def _generated_ids(self, tools: Toolbox) -> tuple[list[int], list[int]]:
        """Ids of the text added for these tools: system lines (and definitions put there), the user's definitions."""
        # Each is followed by a trimmed content, which starts a new pre-token after their closing blank line, so
        # encoding them apart gives the ids of the whole text encoded at once. Records often share their tools.
        key = json.dumps([tools.builtin, tools.functions], ensure_ascii=False, separators=(",", ":"))
        ids = self._generated.get(key)
        if ids is None:
            functions = self._functions(tools)
            in_system = self.tools_in is ToolPlacement.SYSTEM
            ids = (self.tokenizer.encode(self._system_lines(tools) + (functions if in_system else "")),
                   [] if in_system else self.tokenizer.encode(functions))
            if len(self._generated) >= GENERATED_KEPT:
                self._generated.clear()
            self._generated[key] = ids
        return ids

    def _system_lines(self, tools: Toolbox) -> str:
        """The lines the system turn starts with: environment, built-in tools, knowledge cutoff and date."""
        named = [name for name in tools.builtin if name != CODE_INTERPRETER]
        environment = "Environment: ipython\n" if tools.builtin or tools.functions else ""
        builtin = f"Tools: {', '.join(named)}\n\n" if named else ""
        return environment + builtin + KNOWLEDGE_CUTOFF + f"Today Date: {self.date_string}\n\n"

    def _functions(self, tools: Toolbox) -> str:
        """The call-format instruction and the function definitions, or "" when there are none."""
        if not tools.functions:
            return ""
        lead = FUNCTIONS_IN_USER if self.tools_in is ToolPlacement.USER else FUNCTIONS_IN_SYSTEM
        return lead + "".join(json.dumps(f, ensure_ascii=False, indent=4) + "\n\n" for f in tools.functions)

    def _turn(self, message: Message, trained: bool, tools: Toolbox, call_end: int, prefix: list[int],
              where: str, trace: str | None = None) -> Plan:
        """One message's pieces: header, content (after the definitions, for the first user message; after
        the reasoning block, if any), calls, end."""
        if message.role == TOOL:
            return [(self.header_ids(IPYTHON), False), (message.content, False), ([self.tokenizer.eot_id], False)]
        plan: Plan = [(self.header_ids(message.role), trained and self.policy is MaskPolicy.ALL)]
        if prefix:
            plan.append((prefix, False))
        content = message.content.strip()
        if trace is not None:
            plan.append((Thought(block(trace, bool(content or message.tool_calls))), trained and self.reasoning.train))
        if content:
            plan.append((content, trained))
        for call in message.tool_calls:
            if tools.builtin_of(call) is not None:
                plan.append(([self.tokenizer.special_tokens["<|python_tag|>"]], trained))
            plan.append((tools.call_text(call, where), trained))
        plan.append(([call_end if message.tool_calls else self.tokenizer.eot_id], trained))
        return plan
