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


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@source_options
@click.option("--max-seq-len", type=click.IntRange(min=1),
              help="Report samples longer than this many tokens as errors.  [default: lengths not checked]")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Pass while at most this share of records (rows) has errors, e.g. 0.01 for 1%.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (for the exit code and the error rate).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: a short summary for people; json: the report in schemas/validate_report.schema.json.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Locations shown per reason code.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def validate(inputs, max_seq_len, max_error_rate, strict, output_format, examples, quiet, **source):
    """Check raw chat records, or a finished output folder, before training on them.

    Raw input (files, folders or quoted globs) is read exactly as convert reads it: every
    record convert would reject is an error with its reason code, file and line. On top,
    validate checks the text (lone surrogates: error; control characters, Llama 3 special-token
    text, other models' template markers such as <|im_end|>, </s> or [INST]: warnings), the
    samples (longer than --max-seq-len: error; duplicates: warning) and shows statistics.

    An output folder of convert (holding manifest.json) is checked against its manifest:
    every shard present, its sha256, row and token counts, and every row: equal lengths,
    ids below the vocabulary size, labels agreeing with loss_mask, one <|begin_of_text|>,
    trained turns ending with a trained <|eot_id|>, no trained header.

    Exit code 0 when clean, 1 when errors are found, 2 on bad usage. Warnings change the
    exit code only with --strict.

    \b
    Example:
        sftconv validate 'data/*.jsonl' --max-seq-len 8192
        sftconv validate data/ --max-error-rate 0.01 --format json > report.json
        sftconv validate out/
    """
    from .pipeline import ConvertError, SourceOptions
    from .validate import RawChecks, is_output_folder, validate_raw, validate_shards

    folders = [i for i in inputs if is_output_folder(i)]
    settings = {"max_examples": examples, "strict": strict, "max_error_rate": max_error_rate}
    if folders and len(inputs) > 1:
        raise click.UsageError(f"{folders[0]} is an output folder; validate it on its own, not with other inputs")
    if folders:
        report = validate_shards(folders[0], max_seq_len=max_seq_len, progress=not quiet, **settings)
    else:
        try:
            report = validate_raw(list(inputs), SourceOptions(**source_fields(source)),
                                  RawChecks(max_seq_len=max_seq_len, **settings), progress=not quiet)
        except ConvertError as error:
            raise click.UsageError(str(error)) from error
    if output_format == "json":
        import json

        click.echo(printable(json.dumps(report.to_json(), indent=2, ensure_ascii=False)))
    else:
        echo_report(report)
    click.get_current_context().exit(report.exit_code)


def printable(text: str) -> str:
    """Text safe to print: a lone surrogate from the data becomes `\\udXXX`, in JSON that very character escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def echo_report(report) -> None:
    """The report as a short table on stdout: one line per reason code and its first locations, stats, verdict."""
    stats = report.stats
    if report.kind == "raw":
        click.echo(f"{report.checked:,} records in {stats['files']:,} file(s)")
    else:
        click.echo(f"{report.checked:,} rows in {stats.get('shards', 0):,} shard(s) of {report.inputs[0]}")
    issues = report.sorted_issues()
    if issues:
        code_width = max(len(i.code) for i in issues)
        count_width = max(len(f"{i.count:,}") for i in issues)
        for issue in issues:
            colour = "red" if issue.severity == "error" else "yellow"
            head = (click.style(f"{issue.severity:<8}", fg=colour) + f"{issue.code:<{code_width}}  "
                    f"{issue.count:>{count_width},}  ")
            lines = [printable(f"{loc}  {f'{f.field}: ' if f.field else ''}{f.detail}")
                     for loc, f in issue.examples] or [""]
            click.echo(head + lines[0])
            for line in lines[1:]:
                click.echo(" " * (8 + code_width + count_width + 4) + line)
    rows = stats_rows(stats)
    if rows:
        click.echo()
        width = max(len(label) for label, _ in rows) + 2
        for label, value in rows:
            click.echo(f"{label:<{width}}{value}")
    click.echo()
    click.echo(click.style(report.verdict(), fg="green" if report.ok else "red", bold=True))


def stats_rows(stats: dict) -> list[tuple[str, str]]:
    """Labelled statistics lines for the table, for whichever statistics the report holds."""
    def spread(d: dict) -> str:
        return ", ".join(f"{k} {d[k]:,}" for k in ("min", "median", "p95", "max")) if d["count"] else "-"

    labels = {"format": "format", "samples": "samples", "rows": "rows",
              "turns_per_conversation": "turns per conversation", "tokens_per_sample": "tokens per sample",
              "tokens": "tokens", "trained_tokens": "trained tokens"}
    rows = []
    for key, label in labels.items():
        value = stats.get(key)
        if isinstance(value, dict):
            rows.append((label, spread(value)))
        elif key == "trained_tokens" and stats["trained_share"] is not None:
            rows.append((label, f"{value:,} ({stats['trained_share']:.1%})"))
        elif value is not None:
            rows.append((label, value if isinstance(value, str) else f"{value:,}"))
    return rows
