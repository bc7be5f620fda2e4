"""Usage normalization never records a negative count, whatever a provider sends."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import json_reply, openai_completion, openai_usage
from tokencli.calls.usage import Usage, as_count
from tokencli.providers import anthropic, gemini, ollama, openai

COUNT = st.integers(min_value=-(10**12), max_value=10**12)
# What a JSON number decodes to: an int, or a float that may or may not be whole.
NUMBER = st.one_of(COUNT, COUNT.map(float), st.floats(allow_nan=False, allow_infinity=False))
FIELD = st.one_of(st.none(), NUMBER)
# Pure functions: no deadline, so a busy machine cannot turn a slow example into a failure.
relaxed = settings(deadline=None)


def fields(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    """A usage object holding any subset of `names`, each any number or null."""
    return st.fixed_dictionaries({}, optional={name: FIELD for name in names})


def clamped(value: Any) -> Any:
    """The same usage with every negative number replaced by zero."""
    if isinstance(value, dict):
        return {k: clamped(v) for k, v in value.items()}
    if isinstance(value, int | float) and value < 0:
        return type(value)(0)
    return value


def non_negative(usage: Usage) -> bool:
    return all(n >= 0 for n in astuple(usage) if isinstance(n, int))


@relaxed
@given(COUNT)
def test_a_negative_count_is_zero(value):
    assert as_count(value) == max(value, 0)
    assert as_count(float(value)) == max(value, 0)


@relaxed
@given(st.one_of(st.booleans(), st.text(), st.floats().filter(lambda f: not f.is_integer())))
def test_junk_counts_are_zero(value):
    assert as_count(value) == 0


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
ANTHROPIC = fields(
    "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens"
)
GEMINI = fields(
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
)
OLLAMA = fields("prompt_eval_count", "eval_count")


@relaxed
@given(OPENAI)
def test_openai_usage_clamps_negative_counts(u):
    usage = openai.parse_usage(u)
    assert non_negative(usage) and usage == openai.parse_usage(clamped(u))


@relaxed
@given(ANTHROPIC, ANTHROPIC)
def test_anthropic_usage_clamps_negative_counts(start, delta):
    first = anthropic.parse_usage(start)
    usage = anthropic.parse_usage(delta, first)
    assert non_negative(first) and non_negative(usage)
    assert usage == anthropic.parse_usage(clamped(delta), anthropic.parse_usage(clamped(start)))


@relaxed
@given(GEMINI)
def test_gemini_usage_clamps_negative_counts(u):
    usage = gemini.parse_usage(u)
    assert non_negative(usage) and usage == gemini.parse_usage(clamped(u))


@relaxed
@given(OLLAMA)
def test_ollama_usage_clamps_negative_counts(u):
    usage = ollama.parse_usage(u)
    assert non_negative(usage) and usage == ollama.parse_usage(clamped(u))


def test_a_provider_reporting_negative_tokens_records_zero(cli, home, server):
    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    server.queue(json_reply(openai_completion("hi", openai_usage(-5, 3, cached=-2, reasoning=-1))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "hello")
    assert r.exit_code == 0, r.stderr
    row = ledger_rows(home)[0]
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (0, 0, 3)
    assert row["reasoning_tokens"] == 0 and row["usage_source"] == "reported"
