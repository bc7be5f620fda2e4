"""Exact costs: the table at the call's timestamp, overrides, self-hosted, exact sums."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from tokencli.calls.usage import Usage
from tokencli.ledger import Call, Ledger
from tokencli.money import from_picos, to_picos
from tokencli.pricing.cost import override_cost, price_call
from tokencli.providers.registry import PRESETS
from tokencli.settings.loader import load_settings

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
        price_call(s, PRESETS["qwen"], "qwen-imaginary-9", Usage(input_tokens=5), when=WHEN).source
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


def test_override_without_cache_prices_charges_cached_tokens_at_the_input_price(tmp_path):
    s = settings(tmp_path, '[prices."openai:gpt-4o-mini"]\ninput = 2.5\noutput = 10\n')
    usage = Usage(
        input_tokens=10_000, cached_input_tokens=4_000, cache_write_tokens=1_000, output_tokens=300
    )
    cost = price_call(s, PRESETS["openai"], "gpt-4o-mini", usage, when=WHEN)
    # 10,000 input tokens at 2.5/M, whichever part was cached or written, and 300 at 10/M.
    assert cost.amount == Decimal("0.025") + Decimal("0.003") == Decimal("0.028")
    assert (cost.currency, cost.source) == ("USD", "config config.toml:1")


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
    count, total = ledger._conn.execute("SELECT count(*), sum(cost_pico) FROM calls").fetchone()
    assert count == 1_000_000
    assert from_picos(total) == Decimal(1)
    assert sum([0.000001] * 1_000_000) != 1.0  # what floats would have done


# ------------------------------------------------------------- the flat path


def test_flat_prices_equal_genai_prices_for_every_eligible_model():
    """Every model priced without importing genai-prices gets genai-prices' exact answer."""
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price, data_snapshot

    from tokencli.money import to_picos
    from tokencli.pricing.cost import MILLION
    from tokencli.pricing.index import flat_price

    usages = [
        Usage(input_tokens=1000, output_tokens=500),
        Usage(
            input_tokens=10_000,
            cached_input_tokens=8000,
            cache_write_tokens=1000,
            output_tokens=500,
            reasoning_tokens=200,
        ),
        Usage(input_tokens=1, output_tokens=0),
        Usage(input_tokens=90_000, cached_input_tokens=30_000, output_tokens=7),
    ]
    snapshot = data_snapshot.get_snapshot()
    checked, mismatches = 0, []
    for provider in snapshot.providers:
        for model in provider.models:
            record = flat_price(provider, model, snapshot.providers)
            if record is None:
                continue
            inp, out, cache_read, cache_write, tier_at, valid_from = record
            when = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
            if valid_from:
                from datetime import date

                when = max(
                    when,
                    datetime.combine(
                        date.fromisoformat(valid_from), datetime.min.time(), tzinfo=UTC
                    ),
                )
            for usage in usages:
                if tier_at is not None and usage.input_tokens > tier_at:
                    continue
                if (usage.cached_input_tokens and cache_read is None) or (
                    usage.cache_write_tokens and cache_write is None
                ):
                    continue
                uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
                flat = (
                    uncached * Decimal(inp)
                    + usage.cached_input_tokens * Decimal(cache_read or 0)
                    + usage.cache_write_tokens * Decimal(cache_write or 0)
                    + usage.output_tokens * Decimal(out)
                ) / MILLION
                table = calc_price(
                    GPUsage(
                        input_tokens=usage.input_tokens,
                        cache_read_tokens=usage.cached_input_tokens,
                        cache_write_tokens=usage.cache_write_tokens,
                        output_tokens=usage.output_tokens,
                        output_reasoning_tokens=usage.reasoning_tokens,
                    ),
                    model.id,
                    provider_id=provider.id,
                    genai_request_timestamp=when,
                ).total_price
                checked += 1
                if to_picos(flat) != to_picos(table):
                    mismatches.append((provider.id, model.id, usage, flat, table))
    assert checked > 3000
    assert mismatches == []


def test_run_prices_from_the_index_without_importing_the_table(home, server):
    import subprocess
    import sys

    from tests.conftest import provider_config, subprocess_env, write_config
    from tests.fakes import json_reply, openai_completion, openai_usage

    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    for _ in range(2):
        server.queue(json_reply(openai_completion("x", openai_usage(1000, 500))))
    env = subprocess_env(home)
    code = (
        "import sys, json\n"
        "from tokencli.cli.app import main\n"
        "try:\n    main(['run', '-m', 'fake:gpt-4o', '--no-stream', '--json', 'q'])\n"
        "except SystemExit:\n    pass\n"
        "print('GENAI' if 'genai_prices' in sys.modules else 'FLAT', file=sys.stderr)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    # The first run imported the table anyway and left the price index for the next.
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.stderr.strip().endswith("GENAI") and second.stderr.strip().endswith("FLAT")
    import json as _json

    costs = [_json.loads(r.stdout)["cost"] for r in (first, second)]
    assert costs[0] == costs[1] == "0.0075"  # gpt-4o: $2.50/M in, $10/M out
