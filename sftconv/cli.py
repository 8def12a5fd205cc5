"""The `sftconv` command line: option parsing, wiring and messages only.

Heavy libraries (pyarrow, datasets, tiktoken) are imported inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import click

from . import __version__
from .template.llama3 import MaskPolicy

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="sftconv")
def main() -> None:
    """Turn raw chat data into exact Llama 3 token shards with loss masks."""


def source_options(command):
    """The options that decide how records become samples, shared by every command that reads raw data."""
    options = [
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
    """The SourceOptions fields from a command's parsed parameters."""
    return {"tokenizer": params["tokenizer"], "train_on": MaskPolicy(params["train_on"])}


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
    """Convert chat records (OpenAI `messages` JSONL) into tokenized Parquet shards.

    Each record becomes one sample in the Llama 3 Instruct format: `input_ids`, `labels`
    (the id where trained, -100 elsewhere) and `loss_mask` (1 = trained). Bad records are
    written to OUTPUT/rejects.jsonl with their file, line and reason; the counts always add up:
    read = written + rejected + dropped. Exit code 0 on success, 1 on failure, 2 on bad usage.

    INPUT may be files, folders or quoted globs.

    \b
    Example:
        sftconv convert examples/chat_logs.jsonl -o out/
        sftconv convert 'data/*.jsonl' -o out/ --train-on last --shard-rows 50000
    """
    from .pipeline import ConvertError, ConvertOptions
    from .pipeline import convert as run_convert

    options = ConvertOptions(**source_fields(source), shard_rows=shard_rows, on_error=on_error)
    try:
        summary = run_convert(list(inputs), out_dir, options, overwrite=overwrite, progress=not quiet)
    except ConvertError as error:
        raise click.ClickException(str(error)) from error
    if not quiet:
        echo_summary(summary, out_dir)


def echo_summary(summary, out_dir: str) -> None:
    """The end-of-run table on stdout; the rejects hint on stderr."""
    share = summary.trained_tokens / summary.tokens if summary.tokens else 0.0
    rows = [
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
