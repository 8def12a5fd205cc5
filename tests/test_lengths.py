"""Length policies: truncation keeps whole trained turns, every touched sample is counted, nothing is silent."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sftconv.cli import main
from sftconv.conversation import ROLES, Conversation, Location, Message
from sftconv.lengths import LengthPolicy, Overflow
from sftconv.template import Encoded, Llama3Template, MaskPolicy
from sftconv.template.llama3 import trained_flags

from .conftest import write_jsonl
from .loaders import load_rows, manifest

TEXT = st.lists(st.sampled_from(list("ab xyz\n日本🙂<|>_") + ["<|eot_id|>", " the", "ing"]), max_size=40).map("".join)
MESSAGES = st.lists(st.builds(Message, st.sampled_from(ROLES), TEXT, st.sampled_from([None, None, True, False])),
                    min_size=1, max_size=8)


def render_prefix(template: Llama3Template, messages: tuple[Message, ...], count: int) -> Encoded:
    """The first `count` messages rendered alone, each trained as it is in the whole conversation."""
    flags = trained_flags(messages, template.policy)
    prefix = tuple(replace(m, train=flag) for m, flag in zip(messages[:count], flags))
    return template.render(Conversation(prefix, Location("x")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=MESSAGES, policy=st.sampled_from(MaskPolicy), data=st.data())
def test_truncate_keeps_every_trained_turn_whole(tokenizer, messages, policy, data):
    template = Llama3Template(tokenizer, policy)
    messages = tuple(messages)
    [sample] = template.render_batch([Conversation(messages, Location("x"))])
    if not isinstance(sample, Encoded):
        return  # nothing trained: the template rejects it before any length policy sees it
    limit = data.draw(st.integers(1, len(sample.input_ids) + 5), label="limit")
    policy_ = LengthPolicy(limit, Overflow.TRUNCATE, eot_id=tokenizer.eot_id)
    kept = policy_.fit(sample)
    flags = trained_flags(messages, policy)
    # Prefixes of whole messages that end with a trained one: the only cuts truncation may make.
    fitting = [k for k in range(1, len(messages) + 1)
               if flags[k - 1] and len(render_prefix(template, messages, k).input_ids) <= limit]
    if kept is None:
        event("dropped")
        assert not fitting and policy_.stats.dropped == 1
        return
    if len(sample.input_ids) <= limit:
        event("fits")
        assert kept is sample and policy_.stats.over_limit == 0
        return
    event("truncated")
    ids, mask = kept.input_ids, kept.loss_mask
    assert len(ids) <= limit and ids[-1] == tokenizer.eot_id and mask[-1] == 1
    for i, trained in enumerate(mask):  # every trained token's turn is kept up to its trained <|eot_id|>
        if trained:
            end = ids.index(tokenizer.eot_id, i)
            assert all(mask[i:end + 1])
    assert kept == render_prefix(template, messages, max(fitting))
    assert policy_.stats.truncated == 1
    assert policy_.stats.tokens_lost == len(sample.input_ids) - len(ids)
    assert policy_.stats.trained_tokens_lost == sample.trained_tokens - kept.trained_tokens


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=MESSAGES, overflow=st.sampled_from([Overflow.DROP, Overflow.TRUNCATE_TOKENS]), data=st.data())
def test_drop_and_hard_cut(tokenizer, messages, overflow, data):
    [sample] = Llama3Template(tokenizer).render_batch([Conversation(tuple(messages), Location("x"))])
    if not isinstance(sample, Encoded):
        return
    limit = data.draw(st.integers(1, len(sample.input_ids) + 5), label="limit")
    policy = LengthPolicy(limit, overflow, eot_id=tokenizer.eot_id)
    kept = policy.fit(sample)
    if len(sample.input_ids) <= limit:
        assert kept is sample
    elif overflow is Overflow.DROP or not any(sample.loss_mask[:limit]):
        assert kept is None and policy.stats.dropped == 1 and policy.stats.tokens_lost == len(sample.input_ids)
    else:
        assert (kept.input_ids, kept.loss_mask) == (sample.input_ids[:limit], sample.loss_mask[:limit])
        assert policy.stats.truncated == 1 and policy.stats.tokens_lost == len(sample.input_ids) - limit


def test_hard_cut_can_leave_a_trained_turn_without_its_eot(tokenizer):
    """Why truncate-tokens is documented as unsafe for masks, and truncate is not."""
    chat = Conversation((Message("user", "Name three colours."), Message("assistant", "Red, green and blue.")),
                        Location("x"))
    sample = Llama3Template(tokenizer).render(chat)
    limit = len(sample.input_ids) - 2
    hard = LengthPolicy(limit, Overflow.TRUNCATE_TOKENS, eot_id=tokenizer.eot_id).fit(sample)
    assert hard.loss_mask[-1] == 1 and tokenizer.eot_id not in hard.input_ids[-3:]
    assert LengthPolicy(limit, Overflow.TRUNCATE, eot_id=tokenizer.eot_id).fit(sample) is None


def long_chat(turns: int) -> dict:
    messages = [{"role": "system", "content": "You count."}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"Say the numbers up to {i}."},
                     {"role": "assistant", "content": " ".join(str(n) for n in range(i * 10 + 1))}]
    return {"messages": messages}


@pytest.mark.parametrize("overflow", [o.value for o in Overflow])
def test_counts_add_up_and_lost_tokens_are_reported(tmp_path, overflow):
    source = write_jsonl(tmp_path / "in.jsonl", [long_chat(t) for t in range(1, 12)] + ["not json"])
    runner = CliRunner()
    full = runner.invoke(main, ["convert", str(source), "-o", str(tmp_path / "full"), "-q"])
    result = runner.invoke(main, ["convert", str(source), "-o", str(tmp_path / "cut"), "--max-seq-len", "200",
                                  "--overflow", overflow])
    assert full.exit_code == 0 and result.exit_code == 0, result.output
    counts, lengths = manifest(tmp_path / "cut")["counts"], manifest(tmp_path / "cut")["lengths"]
    assert counts["read"] == 12 == counts["written"] + counts["rejected"] + counts["dropped"]
    assert counts["dropped_by_reason"] == ({"too_long": counts["dropped"]} if counts["dropped"] else {})
    assert lengths["max_seq_len"] == 200 and lengths["overflow"] == overflow
    assert lengths["over_limit"] == lengths["truncated"] + lengths["dropped"] > 0
    assert lengths["dropped"] == counts["dropped"]
    if overflow == "drop":
        assert lengths["truncated"] == 0
    else:
        assert lengths["truncated"] > 0
    before = manifest(tmp_path / "full")["counts"]
    assert before["tokens"] - counts["tokens"] == lengths["tokens_lost"]
    assert before["trained_tokens"] - counts["trained_tokens"] == lengths["trained_tokens_lost"]
    rows = load_rows(tmp_path / "cut", "parquet", tmp_path / "cache")
    assert max(row["length"] for row in rows) <= 200
    table = summary_table(result.stdout)
    assert table["dropped"] == str(counts["dropped"]) and table["truncated"] == str(lengths["truncated"])
    assert table["tokens lost"] == f"{lengths['tokens_lost']:,} ({lengths['trained_tokens_lost']:,} trained)"


def summary_table(stdout: str) -> dict[str, str]:
    """The end-of-run table as label -> value."""
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in stdout.splitlines())


def test_length_policy_checks_its_limit():
    with pytest.raises(ValueError, match="max_seq_len must be at least 1, found 0"):
        LengthPolicy(0, eot_id=1)
