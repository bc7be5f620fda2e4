"""Hypothesis: the refill parsers take anything a user or a balance endpoint can send.

A balance answer of any JSON shape is a list of figures or a `BalanceError` (shown as
"unavailable: reason", never zero); a threshold of any text is a `Threshold` or a
`UsageError` (one sentence, exit 2). Nothing else may escape either.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tokencli.errors import UsageError
from tokencli.insights.balances import parse_threshold
from tokencli.providers.balances import (
    BalanceError,
    parse_deepseek,
    parse_moonshot,
    parse_novita,
    parse_openrouter_credits,
    parse_openrouter_key,
    parse_siliconflow,
)

PARSERS = [
    parse_deepseek,
    parse_moonshot,
    parse_siliconflow,
    parse_openrouter_key,
    parse_openrouter_credits,
    parse_novita,
]
KEYS = st.sampled_from(
    ["data", "balance_infos", "currency", "total_balance", "granted_balance", "topped_up_balance",
     "available_balance", "voucher_balance", "cash_balance", "balance", "totalBalance",
     "chargeBalance", "limit", "limit_remaining", "usage", "total_credits", "total_usage",
     "availableBalance", "credit_balance", "is_available"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["12.5", "-3", "1e400", "NaN", "inf", "CNY", "USD", ""])
)
ANSWERS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@settings(max_examples=150, deadline=None)
@given(data=ANSWERS)
@example(data={"data": {"balance": "NaN", "totalBalance": "-inf", "chargeBalance": "1e400"}})
@example(data={"balance_infos": [{"currency": "CNY", "total_balance": "NaN"}]})
@example(
    data={"data": {"available_balance": float("nan"), "voucher_balance": 1, "cash_balance": 1}}
)
@example(data={"data": {"limit_remaining": float("inf"), "usage": -1}})
@example(data={"data": {"total_credits": "inf", "total_usage": "0"}})
@example(data={"availableBalance": "1e999999", "credit_balance": []})
def test_any_answer_is_figures_or_a_balance_error(parse, data) -> None:
    try:
        figures = parse(data, "USD")
    except BalanceError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for figure in figures:
        for value in figure:
            if isinstance(value, Decimal):
                assert value.is_finite()  # never NaN or infinity as a balance


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=30)
    | st.sampled_from(
        ["50CNY", "20 usd", "1M", "500k", "7d", "0d", "-5CNY", "1e400USD", "nanCNY", "inf"]
    )
)
def test_any_threshold_text_is_a_threshold_or_one_sentence(text: str) -> None:
    try:
        parse_threshold(text)
    except UsageError as exc:
        assert "\n" not in str(exc)


BUCKET_KEYS = st.sampled_from(
    ["start_time", "starting_at", "results", "amount", "value", "currency", "line_item", "model",
     "input_tokens", "output_tokens", "uncached_input_tokens", "cache_read_input_tokens",
     "cache_creation", "ephemeral_5m_input_tokens"]
)  # fmt: skip
BILLING_SCALARS = (
    SCALARS
    | st.sampled_from(["2026-11-03T00:00:00Z", "not a time", "usd", "USD", "eur", "gpt-4o, input"])
    | st.integers(min_value=-(10**20), max_value=10**20).map(Decimal)
    | st.just(Decimal("NaN"))
)
BUCKETS = st.recursive(
    BILLING_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(BUCKET_KEYS | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=25,
)


@pytest.mark.parametrize("which", ["openai", "anthropic"])
@settings(max_examples=200, deadline=None)
@given(buckets=st.lists(st.dictionaries(BUCKET_KEYS, BUCKETS, max_size=4), max_size=3))
@example(buckets=[{"results": [{"amount": Decimal("NaN")}]}])  # found by CI's run
@example(buckets=[{"results": [{"amount": {"value": Decimal("NaN")}}]}])
def test_any_billing_answer_is_rows_or_a_billing_error(which, buckets) -> None:
    """The accounting APIs' buckets, of any shape: what reconcile reads, or BillingError."""
    from datetime import UTC, datetime
    from unittest import mock

    from tokencli.providers import billing

    read = billing.openai_billed if which == "openai" else billing.anthropic_billed
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    try:
        with mock.patch.object(billing, "_pages", lambda *args: iter(buckets)):
            rows = read(None, "https://api.example.com/v1", "key", start, end)
    except billing.BillingError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for row in rows:
        assert row.cost.is_finite()
        assert row.tokens is None or row.tokens >= 0
