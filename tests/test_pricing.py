"""Exact costs: the table at the call's timestamp, overrides, self-hosted, exact sums."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from tokencli.config import load_settings
from tokencli.ledger import Call, Ledger
from tokencli.money import from_picos, to_picos
from tokencli.pricing import override_cost, price_call
from tokencli.providers.registry import PRESETS
from tokencli.usage import Usage

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def settings(tmp_path, text=""):
    (tmp_path / "config.toml").write_text(text)
    return load_settings({"TOKENCLI_HOME": str(tmp_path)})


def test_table_prices(tmp_path):
    s = settings(tmp_path)
    cost = price_call(
        s, PRESETS["openai"], "gpt-4o-mini", Usage(input_tokens=1000, output_tokens=500), when=WHEN
    )
    assert (cost.amount, cost.currency) == (Decimal("0.00045"), "USD")
    assert cost.source.startswith("genai-prices ")
    usage = Usage(
        input_tokens=10_000, cached_input_tokens=8000, cache_write_tokens=1000, output_tokens=500
    )
    cost = price_call(s, PRESETS["anthropic"], "claude-sonnet-4-5", usage, when=WHEN)
    assert cost.amount == Decimal("0.01665")


def test_dated_model_name_resolves(tmp_path):
    cost = price_call(
        settings(tmp_path),
        PRESETS["openai"],
        "gpt-4o-mini-2024-07-18",
        Usage(input_tokens=1000, output_tokens=500),
        when=WHEN,
    )
    assert cost.amount == Decimal("0.00045")


def test_price_in_force_at_the_call_time(tmp_path):
    s = settings(tmp_path)
    usage = Usage(input_tokens=1000, output_tokens=500, reasoning_tokens=300)
    before = price_call(s, PRESETS["openai"], "o3", usage, when=datetime(2025, 6, 1, tzinfo=UTC))
    after = price_call(s, PRESETS["openai"], "o3", usage, when=datetime(2025, 7, 1, tzinfo=UTC))
    assert before.amount == Decimal("0.03") and after.amount == Decimal("0.006")


def test_off_peak_prices(tmp_path):
    s = settings(tmp_path)
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    peak = price_call(
        s,
        PRESETS["deepseek"],
        "deepseek-chat",
        usage,
        when=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    )
    off = price_call(
        s,
        PRESETS["deepseek"],
        "deepseek-chat",
        usage,
        when=datetime(2026, 11, 2, 18, 0, tzinfo=UTC),
    )
    assert off.amount * 2 == peak.amount


def test_unknown_model_and_provider_without_table(tmp_path):
    s = settings(tmp_path)
    assert (
        price_call(s, PRESETS["openai"], "gpt-imaginary-9", Usage(input_tokens=5), when=WHEN).amount
        is None
    )
    assert (
        price_call(s, PRESETS["qwen"], "qwen-max", Usage(input_tokens=5), when=WHEN).source
        == "unknown"
    )


def test_override_wins_and_uses_cache_prices(tmp_path):
    s = settings(
        tmp_path,
        '[prices."openai:gpt-4o-mini"]\ninput = 1\noutput = 2\ncached_input = 0.5\ncache_write = 1.25\ncurrency = "EUR"\n',
    )
    usage = Usage(
        input_tokens=1_000_000,
        cached_input_tokens=200_000,
        cache_write_tokens=100_000,
        output_tokens=1_000_000,
    )
    cost = price_call(s, PRESETS["openai"], "gpt-4o-mini", usage, when=WHEN)
    assert cost.amount == Decimal("0.7") + Decimal("0.1") + Decimal("0.125") + Decimal("2")
    assert cost.currency == "EUR" and cost.source == "config config.toml:1"
    assert override_cost(s.prices["openai:gpt-4o-mini"], Usage()) == 0


def test_self_hosted_free_or_hourly(tmp_path):
    s = settings(tmp_path)
    assert price_call(s, PRESETS["vllm"], "any", Usage(input_tokens=9), when=WHEN).amount == 0
    hourly = replace(PRESETS["vllm"], hourly_cost=Decimal("2.52"))
    cost = price_call(s, hourly, "any", Usage(), when=WHEN, duration_ms=1500)
    assert cost.amount == Decimal("0.00105") and cost.source == "hourly_cost 2.52 USD/h"


def test_reported_cost_beats_the_table(tmp_path):
    cost = price_call(
        settings(tmp_path),
        PRESETS["openrouter"],
        "openai/gpt-4o-mini",
        Usage(input_tokens=1),
        when=WHEN,
        provider_cost=Decimal("0.5"),
        provider_cost_currency="USD",
    )
    assert (cost.amount, cost.source) == (Decimal("0.5"), "openrouter (reported)")


def test_picos_round_trip():
    for text in ("0", "0.000001", "0.00000015", "123.456789012345", "0.0000000000005"):
        amount = Decimal(text)
        assert (
            from_picos(to_picos(amount)) == amount.quantize(Decimal("1e-12")).normalize()
            or amount == 0
        )


def test_a_million_micro_dollar_calls_sum_to_exactly_one_dollar(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    # The stored form of a $0.000001 call, exactly as the write path makes it.
    row = Call(
        id="x",
        ts="2026-11-01T00:00:00.000000Z",
        provider="p",
        model="m",
        status="ok",
        cost=Decimal("0.000001"),
        currency="USD",
    ).columns()
    with ledger.write() as conn:
        conn.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999999)
            INSERT INTO calls (id, ts, host, provider, model, status, cost_pico, currency)
            SELECT printf('%026d', i), ?, ?, ?, ?, ?, ?, ? FROM n
            """,
            (
                row["ts"],
                row["host"],
                row["provider"],
                row["model"],
                row["status"],
                row["cost_pico"],
                row["currency"],
            ),
        )
    count, total = ledger.conn.execute("SELECT count(*), sum(cost_pico) FROM calls").fetchone()
    assert count == 1_000_000
    assert from_picos(total) == Decimal(1)
    assert sum([0.000001] * 1_000_000) != 1.0  # what floats would have done
