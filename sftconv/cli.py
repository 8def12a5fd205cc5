"""The `sftconv` command line: option parsing, wiring and messages only.

Heavy libraries (pyarrow, datasets, tiktoken) are imported inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import click

from . import __version__
from .lengths import Overflow
from .packing import DEFAULT_WINDOW
from .template.llama3 import MaskPolicy

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The keys of sftconv.writers.WRITERS (a test keeps them equal), named here so --help need not import pyarrow.
FORMATS = ("parquet", "hf", "megatron", "jsonl")


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


class ByteSize(click.ParamType):
    """A size such as 500MB, 1.5GB or 2GiB (decimal units by default, binary with `iB`)."""

    name = "SIZE"
    UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B")
        number = text.rstrip("KMGTI")
        try:
            size = int(float(number) * self.UNITS[text[len(number):]])
        except (KeyError, ValueError):
            self.fail(f"{value!r} is not a size (examples: 500MB, 1.5GB, 2GiB, 1000000)", param, ctx)
        if size < 1:
            self.fail(f"{value!r} is below one byte", param, ctx)
        return size


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for shards, rejects.jsonl and manifest.json.")
@source_options
@click.option("--format", "output_format", type=click.Choice(FORMATS),
              default="parquet", show_default=True,
              help="parquet: Parquet shards; hf: a folder for datasets.load_from_disk; megatron: Megatron-LM "
                   ".bin/.idx indexed datasets of ids and of loss masks; jsonl: readable JSON lines, for debugging.")
@click.option("--shard-rows", type=click.IntRange(min=1), default=None,
              help="Rows per shard.  [default: 100000, or no row limit with --shard-size]")
@click.option("--shard-size", type=ByteSize(), default=None,
              help="End a shard before the row that would take it past SIZE of uncompressed token data "
                   "(9 bytes a token, 13 packed), e.g. 500MB.")
@click.option("--max-seq-len", type=click.IntRange(min=1), default=None,
              help="Longest sample in tokens; longer ones follow --overflow.  [default: no limit, or --pack]")
@click.option("--overflow", type=click.Choice([o.value for o in Overflow]), default=None,
              help="For a sample over --max-seq-len: drop it (counted as too_long); truncate it after the "
                   "last whole turn that fits and is trained (dropped if none); truncate-tokens: cut at "
                   "exactly N tokens, which can cut a trained turn short (unsafe for masks).  [default: drop]")
@click.option("--pack", type=click.IntRange(min=1), default=None, metavar="N",
              help="Pack whole samples into rows of at most N tokens, with position_ids and seq_lens.")
@click.option("--pack-window", type=click.IntRange(min=1), default=None,
              help=f"Samples packed together; bounds memory.  [default: {DEFAULT_WINDOW}]")
@click.option("--on-error", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="skip: write bad records to rejects.jsonl and go on; fail: stop at the first one (exit 1).")
@click.option("--overwrite", is_flag=True, help="Replace the output of an earlier run in the output folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def convert(inputs, out_dir, output_format, shard_rows, shard_size, max_seq_len, overflow, pack, pack_window,
            on_error, overwrite, quiet, **source):
    """Convert chat records (OpenAI `messages` JSONL) into tokenized shards.

    Each record becomes one sample in the Llama 3 Instruct format: `input_ids`, `labels`
    (the id where trained, -100 elsewhere) and `loss_mask` (1 = trained). Bad records are
    written to OUTPUT/rejects.jsonl with their file, line and reason; the counts always add up:
    read = written + rejected + dropped. Exit code 0 on success, 1 on failure, 2 on bad usage.

    INPUT may be files, folders or quoted globs.

    --pack N packs samples into rows of at most N tokens (best fit decreasing within
    --pack-window samples); position_ids restart at 0 for each sample and seq_lens gives the
    sample boundaries, so padding-free attention keeps samples apart. Samples longer than N
    follow --overflow.

    \b
    Example:
        sftconv convert examples/chat_logs.jsonl -o out/
        sftconv convert 'data/*.jsonl' -o out/ --train-on last --shard-rows 50000
        sftconv convert data.jsonl -o out/ --format hf --max-seq-len 8192 --overflow truncate
        sftconv convert data.jsonl -o out/ --format megatron --pack 4096 --shard-size 1GB
    """
    from .pipeline import ConvertError, ConvertOptions
    from .pipeline import convert as run_convert

    if overflow is not None and max_seq_len is None and pack is None:
        raise click.UsageError("--overflow needs --max-seq-len or --pack: without a length limit nothing overflows")
    if pack_window is not None and pack is None:
        raise click.UsageError("--pack-window needs --pack")
    if max_seq_len is not None and pack is not None and max_seq_len > pack:
        raise click.UsageError(f"--max-seq-len {max_seq_len} is longer than --pack {pack}: such a sample cannot "
                               "be packed; lower --max-seq-len or leave it out (it defaults to --pack)")
    options = ConvertOptions(
        **source_fields(source), format=output_format, on_error=on_error,
        shard_rows=shard_rows if shard_rows is not None or shard_size is not None else 100_000,
        shard_bytes=shard_size, max_seq_len=max_seq_len, overflow=Overflow(overflow or Overflow.DROP),
        pack=pack, pack_window=pack_window or DEFAULT_WINDOW)
    try:
        summary = run_convert(list(inputs), out_dir, options, overwrite=overwrite, progress=not quiet)
    except ConvertError as error:
        raise click.ClickException(str(error)) from error
    if not quiet:
        echo_summary(summary, out_dir, limited=options.seq_limit is not None)


def echo_summary(summary, out_dir: str, limited: bool) -> None:
    """The end-of-run table on stdout; the rejects hint on stderr. `limited`: a length limit was set."""
    share = summary.trained_tokens / summary.tokens if summary.tokens else 0.0
    lengths = summary.lengths
    rows = [
        ("records read", f"{summary.read:,}"),
        ("samples written", f"{summary.written:,}"),
        ("rejected", f"{summary.rejected:,}"),
        *((f"  {reason}", f"{count:,}") for reason, count in sorted(summary.rejected_by_reason.items())),
        ("dropped", f"{summary.dropped:,}"),
        *((f"  {reason}", f"{count:,}") for reason, count in sorted(summary.dropped_by_reason.items())),
        *([("truncated", f"{lengths.truncated:,}"),
           ("tokens lost", f"{lengths.tokens_lost:,} ({lengths.trained_tokens_lost:,} trained)")] if limited else []),
        ("tokens", f"{summary.tokens:,}"),
        ("trained tokens", f"{summary.trained_tokens:,} ({share:.1%})"),
        *([("packed rows", f"{summary.rows:,} of {summary.pack:,} tokens, {summary.efficiency:.1%} full")]
          if summary.pack is not None else []),
        ("shards", f"{len(summary.shards):,} in {out_dir}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        click.echo(f"{label:<{width}}{value}")
    if summary.rejected:
        click.echo(f"see {out_dir.rstrip('/')}/rejects.jsonl for each rejected record", err=True)
