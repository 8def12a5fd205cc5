"""The `sftconv` command line: option parsing, wiring and messages only.

Heavy libraries (pyarrow, datasets, tiktoken) are imported inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import click

from . import __version__
from .lengths import Overflow
from .packing import DEFAULT_WINDOW
from .shapes import AUTO, SHAPES, FieldMapping, MappingError
from .shapes.preference import PREFERENCE_SHAPES
from .shapes.mapping import UnknownField
from .shapes.turns import ALIAS_TARGETS
from .template import TEMPLATES, Llama3Template, Llama31Template, MaskPolicy, ToolPlacement
from .template.reasoning import KeepReasoning, ReasoningPolicy
from .units import UNIT_BYTES

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# The keys of sftconv.writers.WRITERS (a test keeps them equal), named here so --help need not import pyarrow.
FORMATS = ("parquet", "hf", "megatron", "jsonl")
# sftconv.tokenizer_backends.BACKENDS (a test keeps them equal), named here so --help need not import tiktoken.
BACKENDS = ("auto", "fastokens", "tiktoken")


class Commands(click.Group):
    """The command group, turning an interrupt or a failure of the operating system into one line on stderr.

    Ctrl-C exits with 130, as shells expect of an interrupted program; an OSError (disk full, permission
    denied, a folder where a file belongs) exits with 1. `--debug` shows the traceback as well. A field
    flag naming a field the data does not have (UnknownField) is bad usage: exit 2.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()
            hint = {"convert": "; rerun with --resume (not --overwrite) to finish the run",
                    "mix": "; run the mix again (with --overwrite if it had started writing): the caches it "
                           "finished are kept and the one it was converting resumes"}.get(ctx.invoked_subcommand, "")
            click.echo(f"sftconv: interrupted{hint}", err=True)
            ctx.exit(130)
        except UnknownField as error:  # a field flag naming no field of the data, found once the data is read
            raise click.UsageError(str(error)) from error
        except OSError as error:
            if ctx.params.get("debug") or isinstance(error, BrokenPipeError):
                raise
            where = f"{error.filename}: " if error.filename else ""
            raise click.ClickException(f"{where}{error.strerror or error}") from error


@click.group(cls=Commands, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="sftconv")
@click.option("--debug", is_flag=True, help="Show the full traceback of an interrupt or a system error.")
def main(debug: bool) -> None:
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
    "tools": "the tool definitions, a list or its JSON text [tools, functions]",
    "reasoning": "an assistant's reasoning trace: a field of each turn [reasoning_content, reasoning, thinking], "
                 "or of the record for Alpaca and prompt/completion [reasoning_content]",
    "chosen": "a preference pair's preferred answer or conversation [chosen, chosen_messages, response_j]",
    "rejected": "its other answer or conversation [rejected, rejected_messages, response_k]",
    "label": "a KTO answer's true/false label [label, kto_tag]",
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
        click.option("--shape", type=click.Choice([AUTO, *SHAPES, *PREFERENCE_SHAPES]), default=AUTO,
                     show_default=True,
                     help="The record shape. auto detects it for each input from its first records' fields "
                          "(the summary and manifest say which it chose)."),
        click.option("--task", type=click.Choice(["auto", "sft", "preference"]), default=AUTO, show_default=True,
                     help="sft: one sample per record; preference: a prompt with chosen and rejected answers (DPO) "
                          "or one answer and a true/false label (KTO), one pair per row. auto picks preference "
                          "where most records are pairs or labelled answers."),
        click.option("--split", metavar="NAME",
                     help="The split to read from a Hugging Face DatasetDict folder or hf:NAME dataset "
                          "[default: the only split]."),
        click.option("--records-field", metavar="NAME",
                     help="The list holding the records of a .json file that wraps them, such as data in "
                          '{"version": 1, "data": [...]} (a.b for a nested one).'),
        click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
                     help="A YAML or JSON file naming your fields, with the keys of the --*-field options "
                          "below and `roles: {bot: assistant}`; the flags win over it."),
        *(click.option(f"--{key}-field", f"{key}_field", metavar="NAME", help=f"Your field for {text}.")
          for key, text in MAPPING_FLAGS.items()),
        click.option("--role-alias", "role_aliases", multiple=True, metavar="NAME=ROLE", callback=parse_role_aliases,
                     help="Read role NAME as ROLE (system, user, assistant, tool: a tool's result, tool_call: "
                          "a turn holding a call as JSON text); repeatable. Built in: human=user, "
                          "gpt/model/bot=assistant, developer=system, function/observation/ipython=tool, "
                          "function_call=tool_call."),
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
        click.option("--tokenizer", metavar="FILE|FOLDER|MODEL", callback=check_tokenizer,
                     help="Llama 3's tokenizer as you have it: a tiktoken file, a tokenizer.json, a model folder, "
                          "or a model name (org/model) in the local Hugging Face cache; never downloaded. "
                          "[default: Meta's Llama 3 file from llama-models]"),
        click.option("--tokenizer-backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                     help="What encodes text: fastokens (exact, several times faster; checked against tiktoken "
                          "at start-up and on samples during the run) or tiktoken, the reference. auto: "
                          "fastokens where it is installed and the input is 64 MB or more. The ids are the same."),
        click.option("--train-on", type=click.Choice([p.value for p in MaskPolicy]),
                     default=MaskPolicy.ASSISTANT.value, show_default=True,
                     help="Tokens that count toward the loss: every assistant answer, the last one only, or "
                          "all but the BOS. A message's own `weight`/`train` field overrides this."),
        click.option("--template", type=click.Choice(list(TEMPLATES)), default=Llama3Template.name, show_default=True,
                     help="The chat format. llama3.1 renders tool calls and results (ipython turns) and starts "
                          "every sample with its system lines (knowledge cutoff, date); llama3 rejects records "
                          "with tool turns (tool_calls_unsupported)."),
        click.option("--date-string", metavar="TEXT",
                     help="llama3.1: the 'Today Date:' of the system turn, fixed so output never depends on the "
                          f"day it runs.  [default: {Llama31Template.DEFAULT_DATE}]"),
        click.option("--tools-in", type=click.Choice([p.value for p in ToolPlacement]),
                     help="llama3.1: put the function definitions in the first user message, as the official "
                          "template does, or in the system turn.  [default: user]"),
        click.option("--train-tool-calls/--no-train-tool-calls", default=True, show_default=True,
                     help="llama3.1: train the assistant turns that call tools. Tool results and definitions "
                          "are never trained."),
        click.option("--keep-reasoning", type=click.Choice([k.value for k in KeepReasoning]),
                     help="Which assistant turns keep their reasoning trace (a <think> block before the answer): "
                          "all, the last one only, or none (dropped traces are counted).  [default: all]"),
        click.option("--train-reasoning/--no-train-reasoning", default=None,
                     help="Train the tokens of kept traces; the answer keeps its own mask.  [default: train]"),
        click.option("--empty-reasoning/--no-empty-reasoning", default=None,
                     help="Give kept assistant turns with no trace an empty <think> block, for data that mixes "
                          "reasoning on and off.  [default: no]"),
        click.option("--special-text", type=click.Choice(["keep", "reject"]), default="keep", show_default=True,
                     help="A record with Llama 3 special-token text (<|eot_id|>...) or another template's markers "
                          "(<|im_end|>, [INST], </s>...) in any field: keep it (encoded as plain text, never as "
                          "the control token; counted in a warning) or reject it (special_text)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def check_tokenizer(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--tokenizer names something that is there: a file, a folder, or a model in the local Hugging Face cache."""
    from .tokenizer_sources import locate

    if value is not None:
        try:
            locate(value)
        except FileNotFoundError as error:
            raise click.BadParameter(str(error), ctx=ctx, param=param) from error
    return value


def source_fields(params: dict) -> dict:
    """The SourceOptions fields from a command's parsed parameters.

    Raises:
        click.BadParameter: the mapping file cannot be used.
        click.UsageError: --replace-system without --system, or a llama3.1 option with another template.
    """
    if params["replace_system"] and params["system_prompt"] is None:
        raise click.UsageError("--replace-system needs --system TEXT, the prompt to put in place")
    if params["template"] != Llama31Template.name:
        given = [flag for flag, unset in (("--date-string", params["date_string"] is None),
                                          ("--tools-in", params["tools_in"] is None),
                                          ("--no-train-tool-calls", params["train_tool_calls"])) if not unset]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --template llama3.1")
    try:
        mapping = FieldMapping.from_file(params["mapping_file"]) if params["mapping_file"] else FieldMapping()
    except (MappingError, OSError) as error:
        raise click.BadParameter(str(error), param_hint="'--mapping'") from error
    mapping = mapping.merged(**{key: params[f"{key}_field"] for key in MAPPING_FLAGS}, roles=params["role_aliases"])
    return {
        "tokenizer": params["tokenizer"],
        "tokenizer_backend": params["tokenizer_backend"],
        "shape": params["shape"],
        "task": params["task"],
        "split": params["split"],
        "records_field": params["records_field"],
        "mapping": mapping,
        "system": params["system_prompt"],
        "replace_system": params["replace_system"],
        "merge_consecutive": params["merge_consecutive"],
        "drop_empty_turns": params["drop_empty_turns"],
        "train_on": MaskPolicy(params["train_on"]),
        "template": params["template"],
        "date_string": params["date_string"] or Llama31Template.DEFAULT_DATE,
        "tools_in": ToolPlacement(params["tools_in"] or ToolPlacement.USER),
        "train_tool_calls": params["train_tool_calls"],
        "special_text": params["special_text"],
        # each flag given wins over the mapping file's key, which wins over the default
        "reasoning": ReasoningPolicy.first_given(
            (params["keep_reasoning"] or None, params["train_reasoning"], params["empty_reasoning"]),
            (mapping.keep_reasoning, mapping.train_reasoning, mapping.empty_reasoning)),
    }


def progress_option(command):
    """`--progress`, shared by the commands that draw a bar: by default it is drawn only where stderr is a terminal."""
    return click.option("--progress", "force_progress", is_flag=True,
                        help="Draw the progress bar even when stderr is not a terminal (a CI log); "
                             "--quiet still hides it.  [default: only on a terminal]")(command)


def allow_empty_option(command):
    """`--allow-empty`, shared by the commands that write a dataset: an empty result exits 1 without it."""
    return click.option("--allow-empty", is_flag=True,
                        help="Exit 0 even when no sample is written (every record rejected or dropped, or no "
                             "records); without it such a run exits 1, saying why.")(command)


def bar_shown(quiet: bool, force_progress: bool) -> bool | None:
    """Whether to draw the bar: no with --quiet, yes with --progress, else None: only if stderr is a terminal."""
    return False if quiet else (True if force_progress else None)


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
              help="Output folder for shards, rejects.jsonl and manifest.json: a path, or a URL such as "
                   "s3://bucket/run (needs its fsspec package: pip install 'sftconv[s3]'; credentials come "
                   "from the environment, as for the AWS CLI).")
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
@click.option("--resume", is_flag=True,
              help="Finish an interrupted run into the same folder with the same inputs and options: the units "
                   "it finished are verified (sha256) and kept, the rest converted. The output is byte-identical "
                   "to an uninterrupted run's.")
@click.option("--unit-size", "unit_size", type=ByteSize(), default=None,
              help="Cut inputs into units of about SIZE (JSON Lines by lines, Parquet by row groups; other "
                   "inputs whole). Each unit has its own shards (part-00003-shard-00000...), and --resume "
                   f"redoes only unfinished units.  [default: {UNIT_BYTES >> 20}MiB]")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@progress_option
@allow_empty_option
@click.option("-j", "--workers", type=click.IntRange(min=1), default=None,
              help="Processes that parse, render and tokenize; 1 runs everything in one process. The output "
                   "is the same whatever the number.  [default: the number of CPU cores]")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Who converts the units: local: this machine's worker processes; ray: Ray tasks, one unit "
                   "each, on a Ray instance started here with --workers CPUs or on the cluster of "
                   "--ray-address. The output is the same bytes (see docs/scaling.md).")
@click.option("--ray-address", metavar="ADDRESS", default=None,
              help="The Ray cluster to run on with --engine ray: auto, HOST:6379 or ray://HOST:10001; the "
                   "output folder must be on storage every node sees.  [default: RAY_ADDRESS, else a Ray "
                   "instance on this machine]")
@click.option("--keep-columns", metavar="NAME,...", default="",
              help="Record fields to carry into every row, so it can be traced to its record (id,meta.source): "
                   "one column each, the value as JSON text, null where a record has none. Not with --pack "
                   "or --format megatron.")
def convert(inputs, out_dir, output_format, shard_rows, shard_size, max_seq_len, overflow, pack, pack_window,
            on_error, overwrite, resume, unit_size, quiet, force_progress, allow_empty, workers, engine, ray_address,
            keep_columns, **source):
    """Convert chat records (JSONL, JSON, CSV, Parquet, Hugging Face datasets) into tokenized shards.

    Each record becomes one sample in the Llama 3 Instruct format (or, with --template
    llama3.1, the Llama 3.1 format with tool calls and results): `input_ids`, `labels`
    (the id where trained, -100 elsewhere) and `loss_mask` (1 = trained). Bad records are
    written to OUTPUT/rejects.jsonl with their file, line and reason; the counts always add up:
    read = written + rejected + dropped. Exit code 0 on success, 1 on failure, 2 on bad usage.

    INPUT may be files (.jsonl, .json, .csv, .parquet, .arrow, each maybe .gz or .zst), folders, quoted
    globs, Hugging Face save_to_disk folders or hf:NAME for a dataset in the local datasets cache.
    Files, folders and globs may be URLs ('s3://bucket/raw/*.jsonl', with sftconv[s3] installed;
    credentials come from the environment, as for the AWS CLI).
    The record shape (OpenAI messages, ShareGPT, Alpaca, prompt/completion, transcript) is detected
    for each input; name your own fields with the --*-field options or --mapping FILE (a.b reaches
    a nested field). Fields that change what a record means (images, chosen/rejected, a KTO label)
    reject it or are counted in a warning; see the README.
    Preference data (prompt + chosen/rejected, ShareGPT pairwise, HH-RLHF transcripts, KTO
    messages + label) is detected too: each pair becomes one row with chosen_input_ids,
    chosen_labels, rejected_input_ids, ... and prompt_length (--task sft reads it as SFT).

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
        sftconv convert logs.json.gz -o out/ --messages-field dialog --role-field speaker \\
            --content-field text --role-alias bot=assistant --system "You are helpful."
        sftconv convert examples/tool_calls.jsonl -o out/ --template llama3.1
        sftconv convert qa.json -o out/ --records-field data --prompt-field meta.question \\
            --completion-field answer --keep-columns id
        sftconv convert '/shared/raw/*.jsonl' -o /shared/out/ --engine ray --ray-address auto
        sftconv convert data.jsonl -o s3://my-bucket/sft/mix-v1 --engine ray --ray-address auto
        sftconv convert dpo_pairs.jsonl -o out/ --task preference --max-seq-len 4096
    """
    from contextlib import nullcontext

    from .engine import default_workers
    from .pipeline import ConvertError, ConvertOptions, InputError
    from .pipeline import convert as run_convert

    if overflow is not None and max_seq_len is None and pack is None:
        raise click.UsageError("--overflow needs --max-seq-len or --pack: without a length limit nothing overflows")
    if pack_window is not None and pack is None:
        raise click.UsageError("--pack-window needs --pack")
    if overwrite and resume:
        raise click.UsageError("--overwrite starts again and --resume continues: pass one of them")
    if max_seq_len is not None and pack is not None and max_seq_len > pack:
        raise click.UsageError(f"--max-seq-len {max_seq_len} is longer than --pack {pack}: such a sample cannot "
                               "be packed; lower --max-seq-len or leave it out (it defaults to --pack)")
    keep = tuple(name.strip() for name in keep_columns.split(",") if name.strip())
    try:
        options = ConvertOptions(
            **source_fields(source), format=output_format, on_error=on_error, keep_columns=keep,
            shard_rows=shard_rows if shard_rows is not None or shard_size is not None else 100_000,
            shard_bytes=shard_size, max_seq_len=max_seq_len, overflow=Overflow(overflow or Overflow.DROP),
            pack=pack, pack_window=pack_window or DEFAULT_WINDOW, unit_bytes=unit_size or UNIT_BYTES)
    except ValueError as error:  # options that cannot go together (kept columns with --pack...)
        raise click.UsageError(str(error)) from error
    if ray_address is not None and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    runner = None  # the local engine
    try:
        if engine == "ray":
            from .ray_engine import RayEngine

            runner = RayEngine(ray_address, cpus=workers)
        with runner or nullcontext():
            summary = run_convert(list(inputs), out_dir, options, overwrite=overwrite, resume=resume,
                                  progress=bar_shown(quiet, force_progress), workers=workers or default_workers(),
                                  engine=runner)
    except InputError as error:
        raise click.UsageError(str(error)) from error
    except ConvertError as error:
        raise click.ClickException(str(error)) from error
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not quiet:
        echo_summary(summary, out_dir, limited=options.seq_limit is not None)
    if not summary.written and not allow_empty:
        raise click.ClickException(empty_run_reason(summary, out_dir))


def empty_run_reason(summary, out_dir: str) -> str:
    """Why a run wrote no samples, from its top reject and drop reasons, and how to accept an empty result."""
    if not summary.read:
        why = "the inputs hold no records"
    else:
        top = (summary.rejected_by_reason + summary.dropped_by_reason).most_common(3)
        more = len(summary.rejected_by_reason) + len(summary.dropped_by_reason) - len(top)
        why = (f"all {summary.read:,} records were rejected or dropped: "
               + ", ".join(f"{reason} {count:,}" for reason, count in top)
               + (f", and {more} other reason(s)" if more else "")
               + (f" (see {out_dir.rstrip('/')}/rejects.jsonl)" if summary.rejected else ""))
    return f"no samples written: {why}; pass --allow-empty if an empty result is what you want"


def reasoning_rows(counts) -> list[tuple[str, str]]:
    """The summary's trace lines, when the data had traces (or the policy added empty blocks)."""
    if not (counts.turns or counts.dropped):
        return []
    return [("reasoning turns", f"{counts.turns:,}" + (f" ({counts.filled:,} given an empty block)" if counts.filled else "")),
            ("  trace tokens", f"{counts.tokens:,} ({counts.trained_tokens:,} trained)"),
            *([("  traces dropped", f"{counts.dropped:,} (--keep-reasoning)")] if counts.dropped else [])]


def echo_summary(summary, out_dir: str, limited: bool) -> None:
    """The end-of-run table on stdout; the rejects hint on stderr. `limited`: a length limit was set."""
    share = summary.trained_tokens / summary.tokens if summary.tokens else 0.0
    lengths = summary.lengths
    shapes = [("shape", f"{shape or '(no records)'}  {source}") for source, shape in summary.shapes.items()]
    if len(shapes) > SHOWN_SHAPES:
        shapes[SHOWN_SHAPES:] = [("shape", f"... {len(shapes) - SHOWN_SHAPES} more inputs: see manifest.json")]
    rows = [
        *shapes,
        *([("task", "preference: one pair (or KTO sample) per row")] if summary.task == "preference" else []),
        ("records read", f"{summary.read:,}"),
        ("rows written" if summary.task == "preference" else "samples written", f"{summary.written:,}"),
        ("rejected", f"{summary.rejected:,}"),
        *((f"  {reason}", f"{count:,}") for reason, count in sorted(summary.rejected_by_reason.items())),
        ("dropped", f"{summary.dropped:,}"),
        *((f"  {reason}", f"{count:,}") for reason, count in sorted(summary.dropped_by_reason.items())),
        *([("truncated", f"{lengths.truncated:,}"),
           ("tokens lost", f"{lengths.tokens_lost:,} ({lengths.trained_tokens_lost:,} trained)")] if limited else []),
        ("tokens", f"{summary.tokens:,}"),
        ("trained tokens", f"{summary.trained_tokens:,} ({share:.1%})"),
        *reasoning_rows(summary.reasoning),
        *([("packed rows", f"{summary.rows:,} of {summary.pack:,} tokens, {summary.efficiency:.1%} full")]
          if summary.pack is not None else []),
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
@click.option("--index", "indices", type=click.IntRange(min=0), multiple=True, metavar="N",
              help="Show the sample at 0-based position N (repeatable). Positions count samples, not "
                   "rejected records, so they match the rows of convert's output.")
@click.option("--sample", "sample_size", type=click.IntRange(min=1), metavar="K",
              help="Show K samples drawn at random in one pass (reservoir sampling, K in memory).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for --sample: the same seed picks the same positions, in raw files and in output.")
@click.option("--head", type=click.IntRange(min=1), default=3, show_default=True, metavar="N",
              help="Without --index or --sample, show the first N samples.")
@click.option("--plain", is_flag=True,
              help="No colour; trained text wrapped in [[ ]]. Automatic when stdout is not a terminal.")
@click.option("--tokens", "token_table", is_flag=True, help="One token per row: position, id, label, text.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the samples to FILE as a self-contained HTML page (hover a token for its id).")
@click.option("--stats", is_flag=True,
              help="Instead of samples: token-length and trained-share histograms over every sample.")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also draw the --stats histograms to FILE (.svg or .png); implies --stats.")
@click.pass_context
def inspect(ctx, inputs, indices, sample_size, seed, head, plain, token_table, html_file, stats, plot_file,
            **source):
    """Show samples as the model sees them, with the tokens it learns from marked.

    INPUT is raw data (rendered by the same pipeline and options as `convert`) or a folder or
    shard that `convert` wrote, in any --format (its stored ids and masks are decoded; a packed
    row's samples are shown one by one). Each sample starts with a header line: position,
    origin (file and line, or shard and row and a packed sample's place in it), token count and
    trained-token count. Special tokens are shown by name; trained text is green and the rest
    dimmed, or, with --plain, trained text is wrapped in [[ ]] and nothing else is added.
    A preference pair shows its prompt once, then each answer (chosen, rejected) under its name.

    \b
    Example:
        sftconv inspect examples/chat_logs.jsonl --index 3
        sftconv inspect examples/chat_logs.jsonl --train-on last --plain | less
        sftconv inspect out/ --sample 5 --seed 1 --html samples.html
        sftconv inspect out/ --index 0 --tokens
        sftconv inspect examples/chat_logs.jsonl --stats --plot stats.svg
    """
    import os
    import sys

    from .inspect import (PLOT_SUFFIXES, InspectError, SampleIndexError, StoredSamples, collect, histograms,
                          open_samples, render_html, render_stats, render_text, render_tokens, write_plot)
    from .pipeline import ConvertError, InputError, SourceOptions

    stats = stats or plot_file is not None
    if indices and sample_size:
        raise click.UsageError("choose samples with --index or with --sample, not both")
    views = [name for name, given in (("--tokens", token_table), ("--html", html_file), ("--stats", stats))
             if given]
    if stats and (indices or sample_size):
        raise click.UsageError("--stats covers every sample; drop --index and --sample")
    if len(views) > 1:
        raise click.UsageError(f"{' and '.join(views)} are different views; choose one")
    if plot_file and not plot_file.lower().endswith(PLOT_SUFFIXES):
        raise click.BadParameter(f"{plot_file} must end in .svg or .png", param_hint="'--plot'")
    color = not plain and sys.stdout.isatty() and "NO_COLOR" not in os.environ

    try:
        samples = open_samples(list(inputs), SourceOptions(**source_fields(source)))
        if isinstance(samples, StoredSamples):
            note_unused_source_options(ctx)
            if samples.note:
                click.echo(f"note: {samples.note}", err=True)
        if stats:
            result = collect(samples)
            click.echo(render_stats(result, samples.name))
            if plot_file and result.samples:
                write_plot(histograms(result), plot_file, f"sftconv inspect --stats: {samples.name}")
                click.echo(f"wrote the histograms to {plot_file}", err=True)
            elif plot_file:
                raise click.ClickException(f"nothing to plot: {samples.name} holds no samples")
            return
        if indices:
            shown = samples.at(list(indices))
        elif sample_size:
            shown = samples.sample(sample_size, seed)
        else:
            shown = samples.head(head)
        if isinstance(samples, StoredSamples) and "mix" in (samples.stored.manifest or {}):
            from .mix.output import with_origins

            shown = with_origins(shown, samples.stored.format, samples.stored.manifest["mix"]["sources"])
        if html_file:
            with open(html_file, "w", encoding="utf-8") as handle:
                handle.write(render_html(shown, samples.tokenizer, title=samples.name))
            click.echo(f"wrote {len(shown):,} sample{'' if len(shown) == 1 else 's'} to {html_file}", err=True)
        else:
            render = render_tokens if token_table else render_text
            for number, item in enumerate(shown):
                click.echo(("\n" if number else "") + render(item, samples.tokenizer, color=color))
    except SampleIndexError as error:
        raise click.BadParameter(str(error), param_hint="'--index'") from error
    except InputError as error:
        raise click.UsageError(str(error)) from error
    except BrokenPipeError:
        # The reader of our stdout (`| head`) has gone: stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (ConvertError, InspectError, OSError) as error:
        raise click.ClickException(str(error)) from error
    if not shown:
        click.echo(f"no samples in {samples.name}", err=True)
    if samples.rejected and not isinstance(samples, StoredSamples):
        first = samples.first_rejected
        click.echo(f"note: {samples.rejected:,} rejected records were skipped (positions count samples only); "
                   f"the first: {first.location}: {first.reason}: {first.detail}", err=True)


def note_unused_source_options(ctx: click.Context) -> None:
    """Say on stderr that options which render raw records change nothing in stored samples."""
    from click.core import ParameterSource

    given = [p.opts[0] for p in source_options(lambda: None).__click_params__
             if p.name != "tokenizer" and ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE]
    if given:
        click.echo(f"note: ignored for stored samples, which keep the ids and masks convert wrote: "
                   f"{', '.join(given)}", err=True)


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@source_options
@click.option("--max-seq-len", type=click.IntRange(min=1),
              help="Report samples (in an output folder, rows) longer than this many tokens as errors.  "
                   "[default: raw lengths not checked]")
@click.option("--max-error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Pass while at most this share of records (rows) has errors, e.g. 0.01 for 1%.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (for the exit code and the error rate).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: a short summary for people; json: the report in schemas/validate_report.json.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Locations shown per reason code.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@progress_option
def validate(inputs, max_seq_len, max_error_rate, strict, output_format, examples, quiet, force_progress, **source):
    """Check raw chat records, or a finished output folder, before training on them.

    Raw input (files, folders or quoted globs) is read exactly as convert reads it: every
    record convert would reject is an error with its reason code, file and line. On top,
    validate checks the text (lone surrogates: error; control characters, Llama 3 special-token
    text, other models' template markers such as <|im_end|>, </s> or [INST]: warnings), the
    tool turns (a call with no result, a result with no call, a call to a function the record
    does not define: warnings; arguments that do not fit their tool: error), the samples
    (longer than --max-seq-len: error; duplicates: warning) and shows statistics.

    An output folder of convert (holding manifest.json), in any --format it writes, is
    checked against its manifest: every file of every shard present, its sha256, the row,
    sample and token counts, and every row: equal lengths, ids below the vocabulary size,
    labels agreeing with loss_mask, packed rows' seq_lens and position_ids, and in each
    sample one untrained <|begin_of_text|>, trained turns ending with a trained <|eot_id|>
    (unless truncate-tokens cut the sample there), no trained header, lengths within the
    run's --max-seq-len and --pack.

    Preference data (pairs or KTO samples, see convert --task) is checked the same way, each
    side of a pair as a sample, plus its prompt: untrained and the same on both sides.

    A mix recipe (YAML, or JSON with `sources`) is checked before anything runs: its keys and
    shares, each source's options and inputs, and which caches are built. A mix's output is
    checked as above, and its rows' `source` counts against the manifest's per-source counts.

    Exit code 0 when clean, 1 when errors are found, 2 on bad usage. Warnings change the
    exit code only with --strict.

    \b
    Example:
        sftconv validate 'data/*.jsonl' --max-seq-len 8192
        sftconv validate data/ --max-error-rate 0.01 --format json > report.json
        sftconv validate out/
        sftconv validate recipe.yaml
    """
    from pathlib import Path

    from .mix.check import check_mix, check_recipe, is_recipe
    from .pipeline import ConvertError, InputError, SourceOptions
    from .remote import is_url
    from .validate import RawChecks, is_output_folder, validate_raw, validate_shards

    if len(inputs) == 1 and is_recipe(inputs[0]):
        lines, problems = check_recipe(inputs[0])
        for line in lines:
            click.echo(line)
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"{inputs[0]}: {'not runnable' if problems else 'OK'}")
        click.get_current_context().exit(1 if problems else 0)
    folders = [i for i in inputs if is_output_folder(i)]
    settings = {"max_examples": examples, "strict": strict, "max_error_rate": max_error_rate}
    if folders and len(inputs) > 1:
        raise click.UsageError(f"{folders[0]} is an output folder; validate it on its own, not with other inputs")
    if folders and is_url(folders[0]):
        raise click.ClickException(f"{folders[0]} is a convert output folder at a URL: validate checks shards in a "
                                   f"local folder; copy it first (e.g. aws s3 sync {folders[0]} out/), then run "
                                   "sftconv validate out/")
    if folders:
        report = validate_shards(folders[0], max_seq_len=max_seq_len, progress=bar_shown(quiet, force_progress),
                                 **settings)
        check_mix(Path(folders[0]), report)
    else:
        try:
            report = validate_raw(list(inputs), SourceOptions(**source_fields(source)),
                                  RawChecks(max_seq_len=max_seq_len, **settings),
                                  progress=bar_shown(quiet, force_progress))
        except InputError as error:
            raise click.UsageError(str(error)) from error
        except ConvertError as error:
            raise click.ClickException(str(error)) from error
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
              "tokens_per_row": "tokens per row", "tokens": "tokens", "trained_tokens": "trained tokens"}
    rows = []
    if "reasoning" in stats:
        from .template.reasoning import ReasoningCounts

        return [*stats_rows({k: v for k, v in stats.items() if k != "reasoning"}),
                *reasoning_rows(ReasoningCounts(**stats["reasoning"]))]
    for key, label in labels.items():
        value = stats.get(key)
        if isinstance(value, dict):
            rows.append((label, spread(value)))
        elif key == "trained_tokens" and stats["trained_share"] is not None:
            rows.append((label, f"{value:,} ({stats['trained_share']:.1%})"))
        elif value is not None:
            rows.append((label, value if isinstance(value, str) else f"{value:,}"))
    return rows


@main.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for the mix's shards and manifest.json.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the per-source caches.  [default: $SFTCONV_CACHE_DIR/mix, else ~/.cache/sftconv/mix]")
@click.option("--overwrite", is_flag=True, help="Replace an earlier mix in the output folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@progress_option
@allow_empty_option
@click.option("-j", "--workers", type=click.IntRange(min=1), default=None,
              help="Processes that convert a source whose cache is missing.  [default: the number of CPU cores]")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Who converts the sources whose cache is missing: this machine, or Ray tasks (as for convert).")
@click.option("--ray-address", metavar="ADDRESS", default=None,
              help="The Ray cluster for --engine ray, as for convert.")
def mix(recipe, out_dir, cache_dir, overwrite, quiet, force_progress, allow_empty, workers, engine, ray_address):
    """Blend many sources, each with its own options and share, into one shuffled, traceable dataset.

    RECIPE (YAML or JSON, see schemas/recipe.json and the README's Mixes section) lists the
    sources: their inputs, any convert option (train_on, system, template, messages_field...)
    over the recipe's `defaults`, and one share: `fraction: 0.25`, `samples: 20000`, `repeat: 3`
    or `trained_tokens: 50M`. Beside them: `seed`, `pack`, `format`, `shard_rows`, `shard_size`.

    Each source is converted once into a cache folder keyed by its inputs, options, tokenizer
    and sftconv version; a later mix reuses it, so changing a share, the seed or the packing
    re-mixes without tokenizing. An interrupted conversion resumes on the next run. Every row
    holds `source` and `source_row` (its row in that source's cache, listed in manifest.json).
    `format: megatron` writes one indexed dataset per source and megatron_data_path.txt, the
    weights for Megatron's --data-path.

    \b
    Example:
        sftconv validate recipe.yaml
        sftconv mix recipe.yaml -o mix/
        sftconv mix recipe.yaml -o mix/ --overwrite --cache /data/sftconv-cache
        sftconv inspect mix/ --sample 3
    """
    from contextlib import nullcontext

    from .engine import default_workers
    from .mix import MixError, RecipeError, load_recipe, make_mix
    from .pipeline import ConvertError, InputError

    if ray_address is not None and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    try:
        parsed = load_recipe(recipe)
    except RecipeError as error:
        raise click.BadParameter(str(error), param_hint="'RECIPE'") from error
    runner = None  # the local engine
    try:
        if engine == "ray":
            from .ray_engine import RayEngine

            runner = RayEngine(ray_address, cpus=workers)
        with runner or nullcontext():
            manifest, caches = make_mix(parsed, out_dir, cache=cache_dir, overwrite=overwrite,
                                        workers=workers or default_workers(), engine=runner,
                                        progress=bar_shown(quiet, force_progress),
                                        announce=None if quiet else announce_source)
    except InputError as error:
        raise click.UsageError(str(error)) from error
    except (ConvertError, MixError) as error:
        raise click.ClickException(str(error)) from error
    for warning in manifest["mix"]["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if not quiet:
        echo_mix(manifest, caches, out_dir)
    if not manifest["counts"]["written"] and not allow_empty:
        raise click.ClickException("no samples in the mix: its sources gave none (see each cache's rejects.jsonl); "
                                   "pass --allow-empty if an empty result is what you want")


def announce_source(spec, folder) -> None:
    """Say on stderr which source the progress bar that follows converts, and where to."""
    click.echo(f"converting source {spec.name} into {folder}", err=True)


def echo_mix(manifest: dict, caches: list, out_dir: str) -> None:
    """The mix's table on stdout: per source, its cache, samples available and taken, and trained tokens."""
    header = ("source", "cache", "available", "taken", "x", "trained tokens", "share")
    lines = [header]
    for entry, cached in zip(manifest["mix"]["sources"], caches):
        lines.append((entry["name"], "built" if cached.built else "reused", f"{entry['samples_available']:,}",
                      f"{entry['samples_taken']:,}", f"{entry['repeat_factor']:.2f}", f"{entry['trained_tokens']:,}",
                      f"{entry['trained_share']:.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        click.echo("  ".join(cells).rstrip())
    counts = manifest["counts"]
    click.echo(f"\n{counts['written']:,} samples in {counts['rows']:,} rows, {counts['tokens']:,} tokens "
               f"({counts['trained_tokens']:,} trained), {len(manifest['shards']):,} shard(s) in {out_dir}")
