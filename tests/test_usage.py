"""Usage normalization never records a count that cannot be, whatever a provider sends: a
value no count can be (negative, fractional, junk) makes the call's usage estimated, with a note."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import json_reply, openai_completion, openai_usage
from tokencli.calls.usage import MAX_COUNT, NOT_A_COUNT, Usage, as_count, check_usage
from tokencli.providers import anthropic, gemini, ollama, openai

COUNT = st.integers(min_value=-(10**12), max_value=10**12)
# What a JSON number decodes to: an int, or a float that may or may not be whole.
NUMBER = st.one_of(COUNT, COUNT.map(float), st.floats(allow_nan=False, allow_infinity=False))
# ... or junk no count can be.
FIELD = st.one_of(st.none(), NUMBER, st.booleans(), st.text(max_size=3))
# Pure functions: no deadline, so a busy machine cannot turn a slow example into a failure.
relaxed = settings(deadline=None)


def fields(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    """A usage object holding any subset of `names`, each any number or null."""
    return st.fixed_dictionaries({}, optional={name: FIELD for name in names})


def is_count(value: Any) -> bool:
    """What a provider may send for a count: a whole number from 0 to a billion."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= MAX_COUNT
        and float(value).is_integer()
    )


def settled(usage: Usage) -> Usage | None:
    return check_usage(usage)[0]


def in_range(usage: Usage) -> bool:
    return all(0 <= n <= MAX_COUNT for n in astuple(usage) if isinstance(n, int))


@relaxed
@given(st.integers(min_value=0, max_value=MAX_COUNT))
def test_a_count_is_itself(value):
    assert as_count(value) == as_count(float(value)) == value


def test_an_absent_count_is_zero_not_impossible():
    assert as_count(None) == 0


@relaxed
@given(
    st.one_of(
        st.integers(max_value=-1),
        st.integers(max_value=-1).map(float),
        st.booleans(),
        st.text(),
        st.lists(st.integers(), max_size=2),
        st.floats().filter(lambda f: not f.is_integer()),
    )
)
def test_a_value_no_count_can_be_is_not_a_count(value):
    # Negative, fractional or junk ("abc"): refused with a note, never taken as 0.
    assert as_count(value) == NOT_A_COUNT
    usage, note = check_usage(Usage(input_tokens=5 + as_count(value), output_tokens=3))
    assert usage is None
    assert note == (
        "reported an impossible token count (input_tokens below 0 or not a whole number);"
        " its usage is estimated instead."
    )


OPENAI = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": FIELD,
        "completion_tokens": FIELD,
        "prompt_cache_hit_tokens": FIELD,  # DeepSeek
        "prompt_cache_miss_tokens": FIELD,
        "cached_tokens": FIELD,  # Moonshot
        "reasoning_tokens": FIELD,
        "prompt_tokens_details": fields("cached_tokens", "cache_write_tokens"),
        "completion_tokens_details": fields("reasoning_tokens"),
    },
)
ANTHROPIC_KEYS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)
ANTHROPIC = fields(*ANTHROPIC_KEYS)
GEMINI = fields(
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
)
OLLAMA = fields("prompt_eval_count", "eval_count")


def judged(usage: Usage, read: list[Any]) -> None:
    """Refused when any value the parser read is no count; else within range (or refused
    only as above a billion, when the parts add up past it)."""
    checked, note = check_usage(usage)
    if not all(v is None or is_count(v) for v in read):
        assert checked is None and note and "impossible token count" in note
    else:
        assert (checked is not None and in_range(checked)) or "above a billion" in str(note)


@relaxed
@given(OPENAI)
def test_openai_usage_with_a_value_no_count_can_be_is_refused(u):
    details = u.get("prompt_tokens_details", {})
    read = [u.get("prompt_tokens"), u.get("completion_tokens"), details.get("cache_write_tokens")]
    if u.get("prompt_cache_hit_tokens") is not None:
        read.append(u["prompt_cache_hit_tokens"])
        if not as_count(u.get("prompt_tokens")):
            read.append(u.get("prompt_cache_miss_tokens"))
    else:
        read.append(details.get("cached_tokens"))
        if not as_count(details.get("cached_tokens")):
            read.append(u.get("cached_tokens"))
    reasoning = u.get("completion_tokens_details", {}).get("reasoning_tokens")
    read += [reasoning] if as_count(reasoning) else [reasoning, u.get("reasoning_tokens")]
    judged(openai.parse_usage(u), read)


@relaxed
@given(ANTHROPIC, ANTHROPIC)
def test_anthropic_usage_with_a_value_no_count_can_be_is_refused(start, delta):
    # A field the delta carries replaces the start's; one it leaves out keeps it.
    judged(anthropic.parse_usage(start), list(start.values()))
    usage = anthropic.parse_usage(delta, anthropic.parse_usage(start))
    judged(usage, [delta[k] if delta.get(k) is not None else start.get(k) for k in ANTHROPIC_KEYS])


@relaxed
@given(GEMINI)
def test_gemini_usage_with_a_value_no_count_can_be_is_refused(u):
    judged(gemini.parse_usage(u), list(u.values()))


@relaxed
@given(OLLAMA)
def test_ollama_usage_with_a_value_no_count_can_be_is_refused(u):
    judged(ollama.parse_usage(u), list(u.values()))


@relaxed
@given(st.fixed_dictionaries({}, optional={k: st.none() for k in ANTHROPIC_KEYS}))
def test_absent_or_null_counts_are_zero_not_impossible(u):
    for usage in (
        openai.parse_usage(u),
        anthropic.parse_usage(u),
        gemini.parse_usage(u),
        ollama.parse_usage(u),
    ):
        assert settled(usage) == Usage()


def test_a_provider_reporting_negative_tokens_is_not_trusted(cli, home, server):
    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    server.queue(json_reply(openai_completion("hi", openai_usage(-5, 3, cached=-2, reasoning=-1))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "hello")
    assert r.exit_code == 0, r.stderr
    assert (
        r.stderr.count(
            "fake reported an impossible token count (input_tokens below 0 or not a whole number);"
            " its usage is estimated instead."
        )
        == 1
    )
    row = ledger_rows(home)[0]
    assert row["usage_source"] == "estimated"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["cached_input_tokens"] == row["reasoning_tokens"] == 0
