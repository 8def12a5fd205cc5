"""Validate's own reason codes and the one rule that sorts every code into an error or a warning.

Errors are what convert would not write as the data means it: every reason code a reader, shape or
the template rejects a record with (whatever they add later is an error without a change here), text
convert would silently alter, samples over `--max-seq-len`, and shards that do not hold what their
manifest says. Warnings are what convert writes exactly as the data says, but what a person probably
did not mean to train on. `--strict` treats warnings as errors.
"""

from __future__ import annotations

from ..shapes.meaning import WARNING_CODES as MEANING_WARNINGS  # kto_label, media_placeholder, preference_side_only

# Raw input: the text of a record.
LONE_SURROGATE = "lone_surrogate"  # error: tiktoken writes U+FFFD in its place, silently
CONTROL_CHARACTER = "control_character"  # warning: C0/C1 controls other than tab, LF and CR
SPECIAL_TOKEN_TEXT = "special_token_text"  # warning: a Llama 3 control name typed as text (kept as text)
FOREIGN_TEMPLATE_MARKER = "foreign_template_marker"  # warning: another model's template markers

# Raw input: tool turns, which convert writes as the data has them.
TOOL_CALL_WITHOUT_RESULT = "tool_call_without_result"  # warning: a call, then a turn that is not its result
TOOL_RESULT_WITHOUT_CALL = "tool_result_without_call"  # warning: a result no call is waiting for
UNDEFINED_TOOL = "undefined_tool"  # warning: a call to a function the record's tools do not define

# Raw input: reasoning traces, beyond convert's malformed_reasoning and misplaced_reasoning rejects.
REASONING_DROPPED = "reasoning_dropped"  # warning: a trace --keep-reasoning leaves out (counted in the manifest)
THINK_TAG_OUTSIDE_ANSWER = "think_tag_outside_answer"  # warning: a think tag in a prompt or tool result, kept as text

# Raw input: the rendered sample and the run.
DUPLICATE = "duplicate"  # warning: renders to the same token ids as an earlier record
TOO_LONG = "too_long"  # error: more tokens than --max-seq-len
EMPTY_FILE = "empty_file"  # warning: an input file without a single record
LAYOUT_CHOSEN = "layout_chosen"  # warning: no shape fit by field names; the one layout every sampled record fits is used
NO_RECORDS = "no_records"  # error: nothing to train on at all
UNREADABLE_FILE = "unreadable_file"  # error: an input that cannot be read (corrupt, truncated); the rest is checked

# Finished shards: the folder and its manifest.
MANIFEST_MISSING = "manifest_missing"
MANIFEST_INVALID = "manifest_invalid"
UNKNOWN_FORMAT = "unknown_format"
SHARD_MISSING = "shard_missing"
SHARD_UNREADABLE = "shard_unreadable"
SHA256_MISMATCH = "sha256_mismatch"
ROW_COUNT_MISMATCH = "row_count_mismatch"
TOKEN_COUNT_MISMATCH = "token_count_mismatch"
COUNTS_MISMATCH = "counts_mismatch"
REJECTS_MISMATCH = "rejects_mismatch"
UNLISTED_SHARD = "unlisted_shard"  # warning: a loader globbing the folder would read it too
SIDE_FILE_MISMATCH = "side_file_mismatch"  # a file loaders read beside the shards (hf's state.json) disagrees
NO_ROWS = "no_rows"  # the run wrote no samples: nothing to train on

# Finished shards: one row.
LENGTH_MISMATCH = "length_mismatch"
ID_OUT_OF_RANGE = "id_out_of_range"
LABEL_MISMATCH = "label_mismatch"
BAD_LOSS_MASK = "bad_loss_mask"  # a loss_mask value other than 0 and 1
BAD_SEQ_LENS = "bad_seq_lens"  # a packed row's seq_lens do not split it into samples
BAD_POSITION_IDS = "bad_position_ids"  # a packed row's position_ids do not restart at 0 with each sample
BAD_BOS = "bad_bos"
UNTRAINED_EOT = "untrained_eot"
TRAINED_HEADER = "trained_header"
# Finished preference rows (validate/pairs.py).
TRAINED_PROMPT = "trained_prompt"  # a token inside prompt_length is trained
PROMPT_MISMATCH = "prompt_mismatch"  # the chosen and rejected sides differ inside prompt_length
SAME_ANSWERS = "same_answers"  # the two sides are the same tokens

ERROR, WARNING = "error", "warning"
WARNINGS = frozenset({*MEANING_WARNINGS, LAYOUT_CHOSEN,
                      CONTROL_CHARACTER, SPECIAL_TOKEN_TEXT, FOREIGN_TEMPLATE_MARKER, DUPLICATE, EMPTY_FILE,
                      UNLISTED_SHARD, TOOL_CALL_WITHOUT_RESULT, TOOL_RESULT_WITHOUT_CALL, UNDEFINED_TOOL,
                      REASONING_DROPPED, THINK_TAG_OUTSIDE_ANSWER})


def severity(code: str) -> str:
    """A code's severity: the warnings above, and everything else (including every reject reason) an error."""
    return WARNING if code in WARNINGS else ERROR
