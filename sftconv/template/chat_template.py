"""Which sftconv template renders like a model folder's own `chat_template`, found by rendering a probe both ways.

A model folder's tokenizer_config.json says how the model is served; training data in another format
teaches the model a format it will never see. The chat template is rendered as transformers renders
it (Jinja2 in a sandbox, `trim_blocks` and `lstrip_blocks`, `bos_token` given, no generation prompt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..conversation import Conversation, Location, Message
from .llama3 import Llama3Template
from .llama31 import Llama31Template

if TYPE_CHECKING:
    from ..tokenizer import Tokenizer

# Contents with outer whitespace, so a template that does not trim is told apart from one that does.
PROBE = (("system", "You are a helpful assistant."), ("user", " What is 2 + 2? "),
         ("assistant", "4.\n"), ("user", "And 3 + 3?"), ("assistant", " 6. "))


def render_chat_template(source: str, messages: list[dict], **variables) -> str:
    """A Jinja chat template rendered as transformers renders it (no generation prompt)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(source).render(messages=messages, add_generation_prompt=False, **variables)


def matching_templates(tokenizer: Tokenizer, chat_template: str) -> list[str] | str:
    """The names of sftconv's templates that render the probe as `chat_template` does, or why it could not render."""
    messages = [{"role": role, "content": content} for role, content in PROBE]
    conversation = Conversation(tuple(Message(role, content) for role, content in PROBE), Location("probe"))
    matches = []
    for template in (Llama3Template(tokenizer), Llama31Template(tokenizer)):
        variables = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                     "date_string": getattr(template, "date_string", None) or Llama31Template.DEFAULT_DATE}
        try:
            theirs = render_chat_template(chat_template, messages, **variables)
        except Exception as error:  # a template may raise anything while it renders (raise_exception, undefined names)
            return f"{type(error).__name__}: {error}"
        if tokenizer.decode(template.render(conversation).input_ids) == theirs:
            matches.append(template.name)
    return matches


def chat_template_notes(tokenizer: Tokenizer, template: Llama3Template) -> list[str]:
    """Warnings for a run whose tokenizer came with a chat template that `template` does not render like."""
    chat_template = tokenizer.source.chat_template
    if chat_template is None:
        return []
    try:
        matches = matching_templates(tokenizer, chat_template)
    except ImportError:
        return [f"{tokenizer.name} has a chat_template, not compared with --template {template.name}: "
                "it needs jinja2 (`pip install jinja2`)"]
    if isinstance(matches, str):
        return [f"{tokenizer.name}'s chat_template could not render a probe conversation ({matches}); "
                f"check that the model expects the {template.name} format"]
    if template.name in matches:
        return []
    if matches:
        return [f"{tokenizer.name}'s chat_template renders like --template {matches[0]}, not {template.name}: "
                f"pass --template {matches[0]} to train in the format the model is served with"]
    return [f"{tokenizer.name}'s chat_template renders a probe conversation unlike sftconv's llama3 and llama3.1 "
            "templates: the model expects another format than the one this data is written in"]
