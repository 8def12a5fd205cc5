"""Llama 3.1 tool turns token for token against Meta's references, and each documented difference pinned.

References: Meta's `ChatFormat.encode_message` (llama-models) with `RawMessage` tool calls and the
`tool` role, and the rendered examples of `llama_models/llama3_1/prompt_format.md`, parsed here at
run time. Turns are compared one by one: a turn is the ids from one `<|start_header_id|>` to the next.
Where sftconv follows the Hugging Face hub template instead of Meta, the test shows both sides: what
Meta gives, and that sftconv differs from it exactly as template/llama31.py documents.
"""

from __future__ import annotations

import json
import random
import re
from importlib.resources import files

import pytest
from llama_models.datatypes import BuiltinTool, RawMessage, StopReason, ToolPromptFormat
from llama_models.datatypes import ToolCall as MetaToolCall
from llama_models.llama3.chat_format import ChatFormat
from llama_models.llama3.tokenizer import Tokenizer as MetaTokenizer

from sftconv.conversation import Conversation, Location, Message, ToolCall
from sftconv.template import Llama3Template, Llama31Template

from .test_exactness import random_conversation, random_text

HERE = Location("test")
START = 128006  # <|start_header_id|>
PYTHON_TAG, EOM, EOT = 128010, 128008, 128009
HEADER = 4  # ids of a header: <|start_header_id|>, the role, <|end_header_id|>, "\n\n"
CODE = {"type": "code_interpreter"}
SEARCH = [{"type": "brave_search"}, {"type": "wolfram_alpha"}]


@pytest.fixture(scope="module")
def meta() -> ChatFormat:
    return ChatFormat(MetaTokenizer.get_instance())


def meta_ids(meta: ChatFormat, message: RawMessage) -> list[int]:
    return meta.encode_message(message, ToolPromptFormat.json)[0]


def meta_call(name: str, arguments: dict) -> MetaToolCall:
    return MetaToolCall(call_id="0", tool_name=name, arguments=arguments)


def turns(ids: list[int]) -> list[list[int]]:
    """The ids cut before each header: [BOS], then one list per turn."""
    starts = [i for i, t in enumerate(ids) if t == START] + [len(ids)]
    return [ids[:starts[0]]] + [ids[a:b] for a, b in zip(starts, starts[1:])]


def render_turns(tokenizer, messages, tools=(), **options) -> list[list[int]]:
    chat = Conversation(tuple(messages), HERE, tuple(tools))
    return turns(Llama31Template(tokenizer, **options).render(chat).input_ids)


def texts(rng: random.Random, count: int) -> list[str]:
    """Varied, often untrimmed texts without a double quote (which a built-in call's syntax cannot hold)."""
    return [random_text(rng).replace('"', "'") for _ in range(count)]


def test_tool_results_match_meta_untrimmed(tokenizer, meta):
    for content in texts(random.Random(1), 300):
        chat = [Message("user", "q"), Message("assistant", "", None, (ToolCall("f", {}),)), Message("tool", content)]
        ours = render_turns(tokenizer, chat)[-1]
        assert ours == meta_ids(meta, RawMessage(role="tool", content=content)), content
        # The hub template would write a string result as a JSON string (quoted); Meta and sftconv do not.
        assert tokenizer.decode(ours) == f"<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>"


@pytest.mark.parametrize("name", ["code_interpreter", "python"])
def test_code_interpreter_calls_match_meta(tokenizer, meta, name):
    for code in texts(random.Random(2), 200):
        call = Message("assistant", "", None, (ToolCall(name, code),))
        ours = render_turns(tokenizer, [Message("user", "q"), call], [CODE])[-1]
        expected = meta_ids(meta, RawMessage(role="assistant", content="", stop_reason=StopReason.end_of_message,
                                             tool_calls=[meta_call(BuiltinTool.code_interpreter, {"code": code})]))
        assert ours == expected, code


def test_code_given_as_an_object_is_the_same_call(tokenizer):
    user = Message("user", "q")
    as_text = render_turns(tokenizer, [user, Message("assistant", "", None, (ToolCall("code_interpreter", "x = 1"),))])
    as_object = render_turns(tokenizer, [user, Message("assistant", "", None,
                                                       (ToolCall("code_interpreter", {"code": "x = 1"}),))])
    assert as_text == as_object


@pytest.mark.parametrize("tool", ["brave_search", "wolfram_alpha"])
def test_search_calls_match_meta_but_for_the_python_tag(tokenizer, meta, tool):
    """Meta's ChatFormat writes <|python_tag|> before code only; its examples show the model writing it before
    every built-in call, and the hub template writes it too, so sftconv does."""
    for query in texts(random.Random(3), 200):
        query = query.strip()
        call = Message("assistant", "", None, (ToolCall(tool, {"query": query}),))
        ours = render_turns(tokenizer, [Message("user", "q"), call], SEARCH)[-1]
        expected = meta_ids(meta, RawMessage(role="assistant", content="", stop_reason=StopReason.end_of_message,
                                             tool_calls=[meta_call(tool, {"query": query})]))
        assert ours[HEADER] == PYTHON_TAG and ours[:HEADER] + ours[HEADER + 1:] == expected, query
        assert tokenizer.decode(ours).endswith(f'<|python_tag|>{tool}.call(query="{query}")<|eom_id|>')


def test_content_before_a_call_comes_first_and_the_python_tag_before_the_code(tokenizer, meta):
    """Meta renders a turn's content, then its calls; it puts <|python_tag|> before the content, sftconv before
    the code. The ids are Meta's with that one id moved."""
    for content, code in zip(texts(random.Random(4), 100), texts(random.Random(5), 100)):
        if not content.strip():
            continue
        call = Message("assistant", content, None, (ToolCall("code_interpreter", code),))
        ours = render_turns(tokenizer, [Message("user", "q"), call], [CODE])[-1]
        expected = meta_ids(meta, RawMessage(role="assistant", content=content.strip(),
                                             stop_reason=StopReason.end_of_message,
                                             tool_calls=[meta_call(BuiltinTool.code_interpreter, {"code": code})]))
        assert expected[HEADER] == PYTHON_TAG
        moved = expected[:HEADER] + expected[HEADER + 1:]
        code_at = len(moved) - 1 - len(tokenizer.encode(code))
        assert ours == moved[:code_at] + [PYTHON_TAG] + moved[code_at:], (content, code)


def test_function_calls_match_meta_but_for_the_json(tokenizer, meta):
    """Meta writes {"type": "function", "name", "parameters"} with non-ASCII escaped; sftconv writes the hub
    template's {"name", "parameters"}, characters as they are. Content first, parallel calls back to back,
    each encoded on its own, and the closing id, are Meta's."""
    rng = random.Random(6)
    for _ in range(200):
        content = rng.choice(["", *texts(rng, 1)])
        calls = [ToolCall(f"tool_{rng.randint(0, 9)}", {"city": random_text(rng), "n": rng.randint(0, 99)})
                 for _ in range(rng.randint(1, 3))]
        message = Message("assistant", content, None, tuple(calls))
        ours = render_turns(tokenizer, [Message("user", "q"), message])[-1]
        theirs = meta_ids(meta, RawMessage(role="assistant", content=content.strip(), stop_reason=StopReason.end_of_turn,
                                           tool_calls=[meta_call(c.name, c.arguments) for c in calls]))
        ours_json = [json.dumps({"name": c.name, "parameters": c.arguments}, ensure_ascii=False) for c in calls]
        meta_json = [json.dumps({"type": "function", "name": c.name, "parameters": c.arguments}) for c in calls]
        header = ours[:HEADER]
        body = tokenizer.encode(content.strip())
        assert ours == header + body + [t for text in ours_json for t in tokenizer.encode(text)] + [EOT]
        assert theirs == header + body + [t for text in meta_json for t in tokenizer.encode(text)] + [EOT]


def test_function_calls_end_with_eom_when_built_in_tools_are_in_use(tokenizer, meta):
    call = Message("assistant", "", None, (ToolCall("f", {"a": "b"}),))
    plain, ipython = (render_turns(tokenizer, [Message("user", "q"), call], tools)[-1] for tools in ((), [CODE]))
    assert plain[-1] == EOT and ipython[-1] == EOM and plain[:-1] == ipython[:-1]


def test_plain_chats_render_as_llama3_after_the_system_turn(tokenizer):
    """Without tools, Llama 3.1 is Llama 3 with its system turn; that turn's two pieces (the system lines and
    the trimmed prompt) give the same ids as the whole text encoded at once, as the hub template does."""
    llama3, llama31 = Llama3Template(tokenizer), Llama31Template(tokenizer, date_string="21 September 2024")
    rng = random.Random(20240723)
    for _ in range(500):
        messages = random_conversation(rng)
        chat = tuple(Message(m["role"], m["content"]) for m in messages)
        system = chat[0].content if chat[0].role == "system" else ""
        rest = chat[1:] if chat[0].role == "system" else chat
        ours = llama31.render(Conversation(chat, HERE)).input_ids
        lines = "Cutting Knowledge Date: December 2023\nToday Date: 21 September 2024\n\n"
        system_turn = llama31.header_ids("system") + tokenizer.encode(lines + system.strip()) + [EOT]
        assert ours == [tokenizer.bos_id] + system_turn + llama3.render(Conversation(rest, HERE)).input_ids[1:]


def test_function_definitions_and_the_first_user_message_encode_as_one_text(tokenizer):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Météo", "parameters": {}}}]
    rng = random.Random(7)
    for question in texts(rng, 200):
        if not question.strip():
            continue
        first_user = render_turns(tokenizer, [Message("user", question), Message("assistant", "a")], tools)[2]
        text = tokenizer.decode(first_user[HEADER:-1])
        assert text.endswith("\n\n" + question.strip()) and text.startswith("Given the following functions")
        assert first_user[HEADER:-1] == tokenizer.encode(text)


# ---- the examples of llama_models/llama3_1/prompt_format.md ----

EXAMPLE = re.compile(r"##### Input Prompt Format\n```\n(.*?)\n```\s*##### Model Response Format\n```\n(.*?)\n```", re.S)
TURN = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(<\|eot_id\|>|<\|eom_id\|>)", re.S)
BUILTIN_CALL = re.compile(r'(\w+)\.call\(query="([^"]*)"\)')
SYSTEM_LINE = re.compile(r"^(Environment: ipython|Tools: .*|Cutting Knowledge Date: .*|Today Date: .*)$", re.M)


def prompt_format_examples() -> list[list[tuple[str, str, str]]]:
    """Each example of Meta's prompt_format.md (prompt and the model's answer) as (role, body, end) turns."""
    text = (files("llama_models") / "llama3_1" / "prompt_format.md").read_text(encoding="utf-8")
    dialogs = [TURN.findall(prompt + answer) for prompt, answer in EXAMPLE.findall(text)]
    return [d for d in dialogs if d]


def meta_turn(meta: ChatFormat, role: str, body: str, end: str) -> list[int]:
    """A turn as Meta's ChatFormat encodes it. A body after <|python_tag|> is given as code, the only call
    before which ChatFormat writes that id; its text is then encoded as it stands."""
    stop = StopReason.end_of_message if end == "<|eom_id|>" else StopReason.end_of_turn
    if body.startswith("<|python_tag|>"):
        call = meta_call(BuiltinTool.code_interpreter, {"code": body.removeprefix("<|python_tag|>")})
        return meta_ids(meta, RawMessage(role=role, content="", stop_reason=stop, tool_calls=[call]))
    return meta_ids(meta, RawMessage(role="tool" if role == "ipython" else role, content=body, stop_reason=stop))


def our_message(role: str, body: str) -> Message:
    """The message a turn of the examples means, as a record would hold it."""
    if role == "ipython":
        return Message("tool", body)
    if role != "assistant" or not body.startswith("<|python_tag|>"):
        return Message(role, body)
    call = body.removeprefix("<|python_tag|>")
    if match := BUILTIN_CALL.fullmatch(call):
        return Message(role, "", None, (ToolCall(match[1], {"query": match[2]}),))
    try:
        value = json.loads(call)
    except json.JSONDecodeError:
        return Message(role, "", None, (ToolCall("code_interpreter", call),))
    return Message(role, "", None, (ToolCall(value["name"], value["parameters"]),))


def test_prompt_format_examples(tokenizer, meta):
    """Every turn but the system turn matches Meta's examples token for token, except the JSON of a function
    call, which is the hub template's. The system turn holds the same prompt, laid out as the hub template
    lays it out."""
    examples = prompt_format_examples()
    assert len(examples) >= 6
    compared, kinds = 0, set()
    for dialog in examples:
        (role, system, _), rest = dialog[0], dialog[1:]
        assert role == "system"
        builtin = re.search(r"^Tools: (.*)$", system, re.M)
        names = builtin[1].split(", ") if builtin else []
        tools = [{"type": name} for name in names] + ([CODE] if "Environment: ipython" in system else [])
        date = re.search(r"^Today Date: (.*)$", system, re.M)
        prompt = SYSTEM_LINE.sub("", system).strip()
        messages = [Message("system", prompt)] + [our_message(r, body) for r, body, _ in rest]
        ours = render_turns(tokenizer, messages, tools, date_string=date[1] if date else "26 Jul 2024")
        assert tokenizer.decode(ours[1]) == (
            "<|start_header_id|>system<|end_header_id|>\n\n"
            + ("Environment: ipython\n" if tools else "") + (f"Tools: {', '.join(names)}\n\n" if names else "")
            + f"Cutting Knowledge Date: December 2023\nToday Date: {date[1] if date else '26 Jul 2024'}\n\n"
            + prompt + "<|eot_id|>")
        for (role, body, end), message, turn in zip(rest, messages[1:], ours[2:]):
            call = message.tool_calls[0] if message.tool_calls else None
            if call is not None and call.name not in ("brave_search", "wolfram_alpha", "code_interpreter"):
                # The model answered Meta's JSON-format prompt as it was shown; sftconv writes the hub template's.
                assert json.loads(body.removeprefix("<|python_tag|>")) == {
                    "type": "function", "name": call.name, "parameters": call.arguments}
                assert tokenizer.decode(turn).endswith(
                    json.dumps({"name": call.name, "parameters": call.arguments}) + end)
                kinds.add("function call (JSON differs)")
                continue
            assert turn == meta_turn(meta, role, body, end), (role, body)
            compared += 1
            kinds.add(call.name if call else role)
    assert compared >= 12
    assert kinds >= {"user", "assistant", "ipython", "brave_search", "wolfram_alpha", "code_interpreter",
                     "function call (JSON differs)"}
