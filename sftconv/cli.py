"""The `sftconv` command line: option parsing, wiring and messages only.

Heavy libraries (pyarrow, datasets, tiktoken) are imported inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import click

from . import __version__
from .shapes import AUTO, SHAPES, FieldMapping, MappingError
from .shapes.turns import ALIAS_TARGETS
from .template.llama3 import MaskPolicy

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="sftconv")
def main() -> None:
    """Turn raw chat data into exact Llama 3 token shards with loss masks."""


# Field-mapping flags: mapping key -> what the named field holds. Each becomes --KEY-field NAME.
MAPPING_FLAGS = {
    "messages": "the list of chat turns [shape's own: messages, conversations]",
    "role": "each turn's role, inside that list [role, from]",
    "content": "each turn's text, inside that list [content, value]",
    "system": "a top-level system prompt [system]",
    "instruction": "Alpaca's instruction [instruction]",
    "input": "Alpaca's optional input [input]",
    "output": "Alpaca's answer [output or response]",
    "prompt": "the prompt of a prompt/completion pair [prompt, query, input]",
    "completion": "its completion [completion, response]",
    "history": "earlier [question, answer] pairs [history]",
    "transcript": "one string holding a whole Human:/Assistant: chat [transcript]",
}
SHOWN_SHAPES = 20  # inputs listed one by one in the summary; the manifest lists all


def parse_role_aliases(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    """`--role-alias bot=assistant` (repeatable) as a dict, checked as it is parsed."""
    aliases = {}
    for value in values:
        name, equals, role = value.partition("=")
        if not equals or not name or role not in ALIAS_TARGETS:
            raise click.BadParameter(f"{value!r}: expected NAME=ROLE with ROLE one of {', '.join(ALIAS_TARGETS)}")
        aliases[name] = role
    return aliases


def source_options(command):
    """The options that decide how records become samples, shared by every command that reads raw data."""
    options = [
        click.option("--shape", type=click.Choice([AUTO, *SHAPES]), default=AUTO, show_default=True,
                     help="The record shape. auto detects it for each input from its first records' fields "
                          "(the summary and manifest say which it chose)."),
        click.option("--split", metavar="NAME",
                     help="The split to read from a Hugging Face DatasetDict folder or hf:NAME dataset "
                          "[default: the only split]."),
        click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
                     help="A YAML or JSON file naming your fields, with the keys of the --*-field options "
                          "below and `roles: {bot: assistant}`; the flags win over it."),
        *(click.option(f"--{key}-field", f"{key}_field", metavar="NAME", help=f"Your field for {text}.")
          for key, text in MAPPING_FLAGS.items()),
        click.option("--role-alias", "role_aliases", multiple=True, metavar="NAME=ROLE", callback=parse_role_aliases,
                     help="Read role NAME as ROLE (system, user, assistant, tool); repeatable. Built in: "
                          "human=user, gpt/model/bot=assistant, developer=system."),
        click.option("--system", "system_prompt", metavar="TEXT",
                     help="A system prompt for every conversation that has none."),
        click.option("--replace-system", is_flag=True,
                     help="Use --system even where a conversation has its own system prompt."),
        click.option("--merge-consecutive", is_flag=True,
                     help="Join consecutive turns of the same role with a blank line, instead of rejecting "
                          "the record (consecutive_same_role)."),
        click.option("--drop-empty-turns", is_flag=True,
                     help="Drop user/assistant turns that are empty after trimming, instead of rejecting "
                          "the record (empty_content)."),
        click.option("--tokenizer", type=click.Path(exists=True, dir_okay=False),
                     help="A tiktoken-format Llama 3 BPE file. [default: Meta's Llama 3 file from llama-models]"),
        click.option("--train-on", type=click.Choice([p.value for p in MaskPolicy]),
                     default=MaskPolicy.ASSISTANT.value, show_default=True,
                     help="Tokens that count toward the loss: every assistant answer, the last one only, or "
                          "all but the BOS. A message's own `weight`/`train` field overrides this."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def source_fields(params: dict) -> dict:
    """The SourceOptions fields from a command's parsed parameters.

    Raises:
        click.BadParameter: the mapping file cannot be used.
        click.UsageError: --replace-system without --system.
    """
    if params["replace_system"] and params["system_prompt"] is None:
        raise click.UsageError("--replace-system needs --system TEXT, the prompt to put in place")
    try:
        mapping = FieldMapping.from_file(params["mapping_file"]) if params["mapping_file"] else FieldMapping()
    except (MappingError, OSError) as error:
        raise click.BadParameter(str(error), param_hint="'--mapping'") from error
    mapping = mapping.merged(**{key: params[f"{key}_field"] for key in MAPPING_FLAGS}, roles=params["role_aliases"])
    return {
        "tokenizer": params["tokenizer"],
        "shape": params["shape"],
        "split": params["split"],
        "mapping": mapping,
        "system": params["system_prompt"],
        "replace_system": params["replace_system"],
        "merge_consecutive": params["merge_consecutive"],
        "drop_empty_turns": params["drop_empty_turns"],
        "train_on": MaskPolicy(params["train_on"]),
    }


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for shards, rejects.jsonl and manifest.json.")
@source_options
@click.option("--shard-rows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Samples per Parquet shard.")
@click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="skip: write bad records to rejects.jsonl and go on; fail: stop at the first one (exit 1).")
@click.option("--overwrite", is_flag=True, help="Replace the output of an earlier run in the output folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def convert(inputs, out_dir, shard_rows, on_error, overwrite, quiet, **source):
    """Convert chat records (JSONL, JSON, CSV, Parquet, Hugging Face datasets) into tokenized Parquet shards.

    Each record becomes one sample in the Llama 3 Instruct format: `input_ids`, `labels`
    (the id where trained, -100 elsewhere) and `loss_mask` (1 = trained). Bad records are
    written to OUTPUT/rejects.jsonl with their file, line and reason; the counts always add up:
    read = written + rejected + dropped. Exit code 0 on success, 1 on failure, 2 on bad usage.

    INPUT may be files (.jsonl, .json, .csv, .parquet, each maybe .gz or .zst), folders, quoted
    globs, Hugging Face save_to_disk folders or hf:NAME for a dataset in the local datasets cache.
    The record shape (OpenAI messages, ShareGPT, Alpaca, prompt/completion, transcript) is detected
    for each input; name your own fields with the --*-field options or --mapping FILE.

    \b
    Example:
        sftconv convert examples/chat_logs.jsonl -o out/
        sftconv convert 'data/*.jsonl' -o out/ --train-on last --shard-rows 50000
        sftconv convert logs.json.gz -o out/ --messages-field dialog --role-field speaker \\
            --content-field text --role-alias bot=assistant --system "You are helpful."
    """
    from .pipeline import ConvertError, ConvertOptions
    from .pipeline import convert as run_convert

    options = ConvertOptions(**source_fields(source), shard_rows=shard_rows, on_error=on_error)
    try:
        summary = run_convert(list(inputs), out_dir, options, overwrite=overwrite, progress=not quiet)
    except ConvertError as error:
        raise click.ClickException(str(error)) from error
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not quiet:
        echo_summary(summary, out_dir)


def echo_summary(summary, out_dir: str) -> None:
    """The end-of-run table on stdout; the rejects hint on stderr."""
    share = summary.trained_tokens / summary.tokens if summary.tokens else 0.0
    shapes = [("shape", f"{shape or '(no records)'}  {source}") for source, shape in summary.shapes.items()]
    if len(shapes) > SHOWN_SHAPES:
        shapes[SHOWN_SHAPES:] = [("shape", f"... {len(shapes) - SHOWN_SHAPES} more inputs: see manifest.json")]
    rows = [
        *shapes,
        ("records read", f"{summary.read:,}"),
        ("samples written", f"{summary.written:,}"),
        ("rejected", f"{summary.rejected:,}"),
        *((f"  {reason}", f"{count:,}") for reason, count in sorted(summary.rejected_by_reason.items())),
        ("dropped", f"{summary.dropped:,}"),
        ("tokens", f"{summary.tokens:,}"),
        ("trained tokens", f"{summary.trained_tokens:,} ({share:.1%})"),
        ("shards", f"{len(summary.shards):,} in {out_dir}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        click.echo(f"{label:<{width}}{value}")
    if summary.rejected:
        click.echo(f"see {out_dir.rstrip('/')}/rejects.jsonl for each rejected record", err=True)
