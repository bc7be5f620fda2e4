"""The yuan price list: its data, exact costs through `run`, which list a provider uses,
overrides, missing models, staleness, `models` and `config show`, and the loader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, subprocess_env, write_config
from tests.fakes import openai_chunks, openai_usage, sse, sse_reply
from tokencli.calls.usage import Usage
from tokencli.errors import ConfigError
from tokencli.pricing import cny

FIXTURE = Path(__file__).with_name("data") / "prices-cny.toml"
DOCS = Path(__file__).parent.parent / "docs" / "prices-cny.md"
KEYS = {
    "DASHSCOPE_API_KEY": "sk-dash-0123456789abcdef",
    "SILICONFLOW_API_KEY": "sk-sf-0123456789abcdef",
    "DEEPSEEK_API_KEY": "sk-ds-0123456789abcdef",
    "MOONSHOT_API_KEY": "sk-ms-0123456789abcdef",
    "ZHIPUAI_API_KEY": "zp-0123456789abcdef.0123",
}
FIVE = ("qwen", "siliconflow", "deepseek", "moonshot", "zhipu")
# deepseek and moonshot bill in yuan only on a mainland account; at a loopback URL they say so.
CNY_FIELDS: dict[str, dict[str, Any]] = {
    "deepseek": {"currency": "CNY"},
    "moonshot": {"currency": "CNY"},
}


# A Tuesday, 10:00 in Beijing: peak hours, where an entry has off-peak prices.
PEAK = "2026-12-01T02:00:00Z"


@pytest.fixture(autouse=True)
def api_keys(isolated_env, monkeypatch):
    for var, value in KEYS.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("TOKENCLI_NOW", PEAK)  # a test may set another time


@pytest.fixture
def fixture_list(monkeypatch):
    """Price with tests/data/prices-cny.toml (fixed numbers) instead of the bundled list."""
    monkeypatch.setattr(cny, "LIST_PATH", FIXTURE)
    monkeypatch.setattr(cny, "_loaded", {})
    return cny.bundled()


def five_providers(home, server, extra=""):
    """The five presets pointed at the fake server, deepseek and moonshot on yuan accounts."""
    text = "".join(
        provider_config(name, "openai", server.url + "/v1", **CNY_FIELDS.get(name, {}))
        for name in FIVE
    )
    write_config(home, text + extra)


def one_call(cli, server, ref, usage, *, usage_in_choice=False):
    server.queue(sse_reply(sse(openai_chunks(["ok"], usage, usage_in_choice=usage_in_choice))))
    result = cli("run", "-m", ref, "q")
    assert result.exit_code == 0, result.stderr
    return result


def last_row(home):
    row = ledger_rows(home)[-1]
    cost = None if row["cost_pico"] is None else Decimal(row["cost_pico"]) / 10**12
    return cost, row["currency"], row["price_source"]


# ------------------------------------------------------------------ the bundled data


def bundled_raw() -> dict[str, Any]:
    return tomllib.loads(cny.LIST_PATH.read_text("utf-8"))


def test_every_bundled_entry_has_a_source_a_date_yuan_and_sane_prices():
    raw = bundled_raw()
    assert raw["format"] == 1 and raw["currency"] == "CNY"
    assert isinstance(raw["read"], date)
    assert raw["models"], "the bundled list is empty"
    for item in raw["models"]:
        ref = f"{item['provider']}:{item['model']}"
        assert item["source"].startswith("https://") and "." in item["source"][8:], ref
        assert isinstance(item["read"], date) and item["read"] >= raw["read"], ref
        assert item["provider"] in FIVE, ref
        priced = [item.get(k) for k in cny._PRICE_KEYS]
        priced += [t.get(k) for t in item.get("tiers", []) for k in cny._TIER_KEYS - {"up_to"}]
        for value in priced:
            assert value is None or Decimal(str(value)) >= 0, ref
        bounds = [t["up_to"] for t in item.get("tiers", [])]
        assert bounds == sorted(set(bounds)), ref
        # A tier inherits the entry's cached and thinking prices: only right where its
        # own input and output prices are the entry's.
        for tier in item.get("tiers", []):
            if Decimal(str(tier["input"])) != Decimal(str(item["input"])):
                assert "cached_input" not in item or "cached_input" in tier, ref
            if Decimal(str(tier["output"])) != Decimal(str(item["output"])):
                assert "thinking_output" not in item or "thinking_output" in tier, ref
        if item.get("free"):
            assert all(v is None or Decimal(str(v)) == 0 for v in priced), ref
        else:
            assert "input" in item and "output" in item, ref
    # and tokencli itself reads it
    prices = cny.parse(cny.LIST_PATH.read_text("utf-8"), cny.LIST_PATH)
    assert len(prices.entries) == len(raw["models"]) and prices.read == raw["read"]


def reference_cost(item: dict[str, Any], inp: int, cached: int, out: int) -> Decimal:
    """The list's price of a call, worked out here from the raw TOML."""
    tiers = item.get("tiers", [])
    tier = next((t for t in tiers if inp <= t["up_to"]), tiers[-1] if tiers else {})
    price = {**{k: item.get(k) for k in ("input", "output", "cached_input")}, **tier}
    p_in = Decimal(str(price.get("input") or 0))
    p_out = Decimal(str(price.get("output") or 0))
    p_cached = p_in if price.get("cached_input") is None else Decimal(str(price["cached_input"]))
    return ((inp - cached) * p_in + cached * p_cached + out * p_out) / 1_000_000


def bundled_cases():
    """Per provider: a cached call on its first entry, and a call past the first tier."""
    models = bundled_raw()["models"]
    cases = []
    for provider in sorted({m["provider"] for m in models}):
        mine = [m for m in models if m["provider"] == provider]
        cached = next((m for m in mine if "cached_input" in m), mine[0])
        cases.append(
            pytest.param(
                cached,
                120_000 if not cached.get("tiers") else 9_000,
                3_000,
                id=f"{provider}-{cached['model']}",
            )
        )
        tiered = next((m for m in mine if m.get("tiers")), None)
        if tiered is not None:
            past = tiered["tiers"][0]["up_to"] + 1
            cases.append(
                pytest.param(tiered, past, 1_000, id=f"{provider}-{tiered['model']}-tier2")
            )
    return cases


@pytest.mark.parametrize(("item", "inp", "cached"), bundled_cases())
def test_a_call_costs_the_bundled_list_price_exactly(cli, home, server, item, inp, cached):
    five_providers(home, server)
    cached = cached if "cached_input" in item else 0
    one_call(
        cli, server, f"{item['provider']}:{item['model']}", openai_usage(inp, 777, cached=cached)
    )
    cost, currency, source = last_row(home)
    assert currency == "CNY"
    assert cost == reference_cost(item, inp, cached, 777)
    assert source == (
        f"cny list: {item['model']} ({item['source'].split('/')[2]}, read {item['read'].isoformat()})"
    )


# Providers sought for the bundled list whose official yuan prices could not be confirmed
# yet (docs/prices-cny.md, "What the bundled list covers"). When one's entries land, take it
# out of this set: the test below then requires it, and with the set empty all five.
NOT_YET_CONFIRMED: set[str] = set()


def test_the_bundled_list_covers_the_five_providers():
    listed = {m["provider"] for m in bundled_raw()["models"]}
    assert listed == set(FIVE) - NOT_YET_CONFIRMED
    coverage = DOCS.read_text("utf-8").split("## What the bundled list covers", 1)[1]
    coverage = coverage.split("\n## ", 1)[0]
    for provider in NOT_YET_CONFIRMED:  # the docs say which and why
        assert f"`{provider}`" in coverage.split("Sought but not confirmed", 1)[1]


@pytest.mark.parametrize(
    ("ref", "usage", "expected"),
    [
        # DeepSeek's own cache fields, peak price: 60k × 9 + 40k × 0.30 + 2k × 27
        (
            "deepseek:deepseek-v4-pro",
            openai_usage(
                100_000, 2_000, prompt_cache_hit_tokens=40_000, prompt_cache_miss_tokens=60_000
            ),
            "0.606",
        ),
        # a legacy id served by deepseek-flash, at its price: 1k × 2 + 1k × 8
        ("deepseek:deepseek-v4-flash-vision-exp", openai_usage(1_000, 1_000), "0.01"),
        # Zhipu with cache hits: 60k × 8 + 40k × 2 + 1k × 28
        ("zhipu:glm-5.3", openai_usage(100_000, 1_000, cached=40_000), "0.588"),
        # one price for input and output: 10k × 5 + 1k × 5
        ("zhipu:glm-4-plus", openai_usage(10_000, 1_000), "0.055"),
        # and Zhipu's free model at zero
        ("zhipu:glm-4-flash-250414", openai_usage(10_000, 1_000), "0"),
        # DashScope implicit-cache hits: 50k × 0.6 + 50k × 0.12 + 2k × 1
        ("qwen:qwen-doc-turbo", openai_usage(100_000, 2_000, cached=50_000), "0.038"),
        # tiers by the call's input: 32K exactly is the first (32768 × 3 + 1k × 14) ...
        ("qwen:glm-4.5", openai_usage(32_768, 1_000), "0.112304"),
        # ... one more token the second (32769 × 4 + 1k × 16)
        ("qwen:glm-4.5", openai_usage(32_769, 1_000), "0.147076"),
        # a dated snapshot id is its model: 1M × 4 + 1M × 12
        ("qwen:qwen-math-plus-2024-09-19", openai_usage(1_000_000, 1_000_000), "16"),
        # and Zhipu's retired free model, routed to a free one: zero
        ("zhipu:glm-4.5-flash", openai_usage(10_000, 1_000), "0"),
        # Model Studio's price page, mainland section. qwen-max with its console's hit
        # price: 50k × 2.4 + 50k × 0.48 + 1k × 9.6
        ("qwen:qwen-max-latest", openai_usage(100_000, 1_000, cached=50_000), "0.1536"),
        # qwen-plus's second tier in thinking mode: 150k × 2.4 + 50k × 0.48 (20% of
        # input) + 3k × 24
        (
            "qwen:qwen-plus-2025-12-01",
            openai_usage(200_000, 3_000, cached=50_000, reasoning=2_000),
            "0.456",
        ),
        # qwen-turbo, thinking: 10k × 0.3 + 1k × 3; not thinking: 10k × 0.3 + 1k × 0.6
        ("qwen:qwen-turbo", openai_usage(10_000, 1_000, reasoning=500), "0.006"),
        ("qwen:qwen-turbo", openai_usage(10_000, 1_000), "0.0036"),
        # qwen3-max's third tier (128K < 200k ≤ 256K): 200k × 7 + 1k × 28
        ("qwen:qwen3-max", openai_usage(200_000, 1_000), "1.428"),
        # an open model's thinking price: 10k × 2 + 1k × 20
        ("qwen:qwen3-32b", openai_usage(10_000, 1_000, reasoning=800), "0.04"),
        # Moonshot's K3: 70k × 20 + 30k × 2 + 1k × 100
        ("moonshot:kimi-k3", openai_usage(100_000, 1_000, cached=30_000), "1.56"),
        # a vision id is billed as its v1 model: 10k × 5 + 1k × 20
        ("moonshot:moonshot-v1-32k-vision-preview", openai_usage(10_000, 1_000), "0.07"),
        # SiliconFlow's Pro/ id of V3.2 at V3.2's price: 60k × 4 + 40k × 0.4 + 2k × 6
        (
            "siliconflow:Pro/deepseek-ai/DeepSeek-V3.2",
            openai_usage(100_000, 2_000, cached=40_000),
            "0.268",
        ),
    ],
)
def test_known_calls_cost_what_the_providers_pages_say(cli, home, server, ref, usage, expected):
    """Worked out by hand from the official pages, not from the list itself."""
    five_providers(home, server)
    one_call(cli, server, ref, usage)
    cost, currency, source = last_row(home)
    assert (cost, currency) == (Decimal(expected), "CNY")
    assert source.startswith("cny list: ") and source.endswith(", read 2026-12-04)")


def test_what_the_bundled_list_lacks_is_not_priced_from_it(cli, home, server):
    five_providers(home, server)
    # SiliconFlow's Pro/ variant of a model is not the model unless the page says so
    one_call(cli, server, "siliconflow:Pro/deepseek-ai/DeepSeek-V4-Pro", openai_usage(1_000, 100))
    assert not last_row(home)[2].startswith("cny list")
    # a Moonshot model newer than the list, on a yuan account: the dollar table, said so
    one_call(cli, server, "moonshot:kimi-k3.1-pro", openai_usage(1_000_000, 0))
    cost, currency, source = last_row(home)
    assert currency == "USD" and cost is not None and cost > 0
    assert source.endswith(" (not in the cny list)")


# ---------------------------------------------------------------- off-peak prices


@pytest.mark.parametrize(
    ("now", "ref", "usage", "expected", "off_peak"),
    [
        # DeepSeek: peak is Mon-Fri 09:00-12:00 and 14:00-18:00 Beijing time (UTC+8).
        # Tuesday 09:00 sharp in Beijing is peak: 60k × 9 + 40k × 0.30 + 2k × 27
        ("2026-12-01T01:00:00Z", "deepseek:deepseek-v4-pro", "pro", "0.606", False),
        # a second before, off-peak: 60k × 4.5 + 40k × 0.15 + 2k × 13.5
        ("2026-12-01T00:59:59Z", "deepseek:deepseek-v4-pro", "pro", "0.303", True),
        # the lunch break (12:00 sharp) and the evening (18:00 sharp) are off-peak
        ("2026-12-01T04:00:00Z", "deepseek:deepseek-v4-pro", "pro", "0.303", True),
        ("2026-12-01T09:59:59Z", "deepseek:deepseek-v4-pro", "pro", "0.606", False),
        ("2026-12-01T10:00:00Z", "deepseek:deepseek-v4-pro", "pro", "0.303", True),
        # Saturday 10:00 in Beijing (Saturday 02:00 UTC) is off-peak all day
        ("2026-12-05T02:00:00Z", "deepseek:deepseek-v4-flash", "flash", "0.005", True),
        # Friday 17:30 in Beijing: peak (1k × 2 + 1k × 8)
        ("2026-12-04T09:30:00Z", "deepseek:deepseek-v4-flash", "flash", "0.01", False),
        # SiliconFlow's V4-Flash: off-peak 02:00-08:00 Beijing, every day. 03:00 in
        # Beijing is 19:00 UTC the day before: 60k × 1.5 + 40k × 0.15 + 2k × 4.5
        ("2026-12-05T19:00:00Z", "siliconflow:deepseek-ai/DeepSeek-V4-Flash", "sf", "0.105", True),
        # 08:00 sharp is the standard price again: 60k × 3 + 40k × 0.3 + 2k × 9
        ("2026-12-06T00:00:00Z", "siliconflow:deepseek-ai/DeepSeek-V4-Flash", "sf", "0.21", False),
    ],
)
def test_off_peak_prices_follow_beijing_time(
    cli, home, server, monkeypatch, now, ref, usage, expected, off_peak
):
    """Worked out by hand from the providers' pages, at the call's own time."""
    usages = {
        "pro": openai_usage(
            100_000, 2_000, prompt_cache_hit_tokens=40_000, prompt_cache_miss_tokens=60_000
        ),
        "flash": openai_usage(1_000, 1_000),
        "sf": openai_usage(100_000, 2_000, cached=40_000),
    }
    monkeypatch.setenv("TOKENCLI_NOW", now)
    five_providers(home, server)
    one_call(cli, server, ref, usages[usage])
    cost, currency, source = last_row(home)
    assert (cost, currency) == (Decimal(expected), "CNY")
    assert source.startswith("cny list (off-peak): " if off_peak else "cny list: ")


def test_models_shows_when_the_off_peak_prices_apply(cli, home):
    write_config(home, '[providers.deepseek]\ncurrency = "CNY"\n')
    rows = json.loads(cli("models", "--json", "--provider", "deepseek", "deepseek-flash").stdout)
    flash = next(r for r in rows if r["model"] == "deepseek-flash")
    assert "off-peak" in flash["notes"]
    assert flash["off_peak"] == {
        "input_per_mtok": "1",
        "output_per_mtok": "4",
        "cached_input_per_mtok": "0.02",
        "thinking_output_per_mtok": None,
        "during": None,
        "outside": ["Mon-Fri 09:00-12:00", "Mon-Fri 14:00-18:00"],
        "timezone": "Asia/Shanghai",
    }


DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@st.composite
def windows(draw):
    """A valid window's text and the (weekday, minute) pairs it holds, worked out apart."""
    first, last = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    every_day = draw(st.booleans())
    days = set(range(7)) if every_day else {(first + n) % 7 for n in range((last - first) % 7 + 1)}
    span = f"{start // 60:02}:{start % 60:02}-{end // 60:02}:{end % 60:02}"
    ends = DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}-{DAY_NAMES[last]}"
    return (span if every_day else f"{ends} {span}"), days, start, end


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["during", "peak"]),
    spans=st.lists(windows(), min_size=1, max_size=3),
    prices=st.tuples(*[st.decimals(0, 100, places=3)] * 3),
    moment=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    usage=st.tuples(*[st.integers(0, 10**7)] * 3),
)
def test_off_peak_prices_apply_exactly_in_their_hours(kind, spans, prices, moment, usage):
    off_in, off_out, off_cached = prices
    entry = {
        **VALID_ENTRY,
        "cached_input": "0.5",
        "off_peak": {
            "input": str(off_in),
            "output": str(off_out),
            "cached_input": str(off_cached),
            kind: [text for text, *_ in spans],
        },
    }
    doc = {"format": 1, "currency": "CNY", "read": date(2026, 1, 1), "models": [entry]}
    (parsed,) = cny.parse(tomli_w.dumps(doc)).entries
    local = moment.astimezone(timezone(timedelta(hours=8)))  # Beijing, worked out here
    minute = local.hour * 60 + local.minute
    inside = any(local.weekday() in days and a <= minute < b for _, days, a, b in spans)
    off = inside if kind == "during" else not inside
    inp, cached, out = usage
    cached = min(cached, inp)
    p_in, p_out, p_cached = (
        (off_in, off_out, off_cached) if off else (Decimal(1), Decimal(2), Decimal("0.5"))
    )
    exact = (inp - cached) * p_in + cached * p_cached + out * p_out
    assert cny.quote(parsed, Usage(inp, cached, 0, out, 0), moment) * 1_000_000 == exact
    assert (parsed.off_peak_at(moment) is not None) == off


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=30),
        st.from_regex(
            r"((Mon|Tue|Wed|Thu|Fri|Sat|Sun|mon|Sun)(-(Mon|Fri|Sun|Sat))? )?"
            r"[0-2][0-9]:[0-6][0-9]-[0-2][0-9]:[0-6][0-9]",
            fullmatch=True,
        ),
    ),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_any_window_text_is_a_window_or_one_clear_error(text, moment):
    try:
        window = cny.window(text)
    except cny._Bad as bad:
        assert str(bad).startswith("window ")
        return
    assert window.days and 0 <= window.start < window.end <= 24 * 60
    local = moment.astimezone(cny.BEIJING)
    minute = local.hour * 60 + local.minute
    assert window.holds(moment) == (
        local.weekday() in window.days and window.start <= minute < window.end
    )
    assert cny.window(window.text) == window  # its text reads back as itself


# ------------------------------------------------------- exact costs (fixed numbers)


@pytest.mark.parametrize(
    ("ref", "usage", "expected"),
    [
        # qwen, first tier: 80k uncached × 0.8 + 20k cached × 0.16 + 1k out × 2
        ("qwen:qwen-plus", openai_usage(100_000, 1_000, cached=20_000), "0.0692"),
        # second tier in thinking mode (reasoning reported): the tier's cached and thinking prices
        (
            "qwen:qwen-plus",
            openai_usage(200_000, 3_000, cached=50_000, reasoning=2_000),
            "0.456",
        ),
        # past the last tier: the last tier (1M × 4.8 + 10 × 48); cached: the entry's own (1M × 0.16)
        ("qwen:qwen-plus", openai_usage(2_000_000, 10, cached=1_000_000), "4.96048"),
        # an alias, in another case, is the same model
        ("qwen:Qwen-Plus-Latest", openai_usage(1_000, 1_000), "0.0028"),
        ("siliconflow:Qwen/Qwen3-8B", openai_usage(50_000, 9_000), "0"),
        ("siliconflow:deepseek-ai/DeepSeek-V3.2", openai_usage(1_000, 500), "0.0035"),
        # DeepSeek's own cache fields: 70k × 2 + 30k × 0.04 + 2k × 8
        (
            "deepseek:deepseek-v4-flash",
            openai_usage(
                100_000, 2_000, prompt_cache_hit_tokens=30_000, prompt_cache_miss_tokens=70_000
            ),
            "0.1572",
        ),
        # zhipu, second tier with its own cached price: 60k × 12 + 40k × 3 + 1k × 32
        ("zhipu:glm-5.3", openai_usage(100_000, 1_000, cached=40_000), "0.872"),
        # zhipu, first tier: the entry's cached price (2)
        ("zhipu:GLM-5.3", openai_usage(10_000, 100, cached=5_000), "0.0528"),
    ],
)
def test_exact_cost_from_the_list(cli, home, server, fixture_list, ref, usage, expected):
    five_providers(home, server)
    one_call(cli, server, ref, usage)
    cost, currency, source = last_row(home)
    assert (cost, currency) == (Decimal(expected), "CNY")
    assert source.startswith("cny list: ") and source.endswith(", read 2026-08-01)")


def test_moonshot_cached_usage_inside_the_choice(cli, home, server, fixture_list):
    five_providers(home, server)
    usage = {
        "prompt_tokens": 50_000,
        "completion_tokens": 1_000,
        "total_tokens": 51_000,
        "cached_tokens": 10_000,
    }
    one_call(cli, server, "moonshot:kimi-k2.5", usage, usage_in_choice=True)
    # 40k × 4 + 10k × 0.7 + 1k × 21
    assert last_row(home) == (
        Decimal("0.188"),
        "CNY",
        "cny list: kimi-k2.5 (platform.moonshot.cn, read 2026-08-01)",
    )


def test_run_json_reports_the_yuan_cost(cli, home, server, fixture_list):
    five_providers(home, server)
    server.queue(sse_reply(sse(openai_chunks(["ok"], openai_usage(100_000, 100_000)))))
    data = json.loads(cli("run", "-m", "qwen:qwen-plus", "--json", "q").stdout)
    assert (data["cost"], data["currency"]) == ("0.28", "CNY")


def test_quote_cache_writes_and_thinking_without_tiers():
    entry = cny.Entry(
        provider="qwen",
        model="m",
        input=Decimal(2),
        output=Decimal(3),
        thinking_output=Decimal(10),
        cache_write=Decimal("2.5"),
        source="https://example.cn",
        read=date(2026, 1, 1),
    )
    usage = Usage(input_tokens=1_000, cache_write_tokens=400, output_tokens=100)
    assert cny.quote(entry, usage) == Decimal("0.0025")  # 600 × 2 + 400 × 2.5 + 100 × 3
    thinking = Usage(input_tokens=1_000, output_tokens=100, reasoning_tokens=60)
    assert cny.quote(entry, thinking) == Decimal("0.003")  # 1000 × 2 + 100 × 10
    no_write_price = cny.Entry(
        "qwen", "m", Decimal(2), Decimal(3), "https://e.cn", date(2026, 1, 1)
    )
    assert cny.quote(no_write_price, usage) == Decimal("0.0023")  # writes at the input price


# ----------------------------------------------------------------- which list applies


def price_lists(cli) -> dict[str, tuple[str, str]]:
    rows = json.loads(cli("config", "show", "--json").stdout)
    return {
        r["key"].split(".")[1]: (r["value"], r["source"])
        for r in rows
        if r["key"].endswith(".price_list")
    }


def test_which_list_each_provider_uses_by_default(cli):
    lists = price_lists(cli)
    assert lists["qwen"] == ("cny list", "preset")
    assert lists["siliconflow"] == ("cny list", "preset")
    assert lists["zhipu"] == ("cny list, then genai-prices (zhipuai)", "preset")
    # api.deepseek.com serves yuan and dollar accounts alike: dollars unless told
    assert lists["deepseek"] == ("genai-prices (deepseek)", "preset")
    assert lists["moonshot"] == ("genai-prices (moonshotai)", "preset")  # api.moonshot.ai
    assert lists["openai"] == ("genai-prices (openai)", "preset")
    assert lists["mock"] == ("self-hosted: free", "preset")


def test_the_host_and_the_currency_setting_choose_the_list(cli, home):
    write_config(
        home,
        '[providers.moonshot]\nbase_url = "https://api.moonshot.cn/v1"\n'
        '[providers.deepseek]\ncurrency = "CNY"\n'
        '[providers.qwen]\nbase_url = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"\n'
        '[providers.zhipu]\nbase_url = "https://api.z.ai/api/paas/v4"\n'
        '[providers.dash]\ntype = "openai"\nbase_url = "https://dashscope.aliyuncs.com/compatible-mode/v1"\n'
        '[providers.sf]\ntype = "openai"\nbase_url = "https://api.siliconflow.cn/v1"\ncurrency = "USD"\n',
    )
    lists = price_lists(cli)
    assert lists["moonshot"] == (
        "cny list, then genai-prices (moonshotai)",
        "the host in base_url (config.toml:2)",
    )
    assert lists["deepseek"] == ("cny list, then genai-prices (deepseek)", "config.toml:4")
    assert lists["qwen"] == ("[prices] overrides only", "the host in base_url (config.toml:6)")
    assert lists["zhipu"] == ("genai-prices (zhipuai)", "the host in base_url (config.toml:8)")
    assert lists["dash"][0] == "cny list"
    assert lists["sf"] == ("[prices] overrides only", "config.toml:15")


def test_deepseek_by_default_is_priced_in_dollars(cli, home, server, fixture_list):
    write_config(home, provider_config("deepseek", "openai", server.url + "/v1"))
    one_call(cli, server, "deepseek:deepseek-v4-flash", openai_usage(1_000, 100))
    _, currency, source = last_row(home)
    assert currency == "USD" and source.startswith("genai-prices ")


def test_a_provider_of_another_name_on_a_mainland_host_uses_that_hosts_entries(
    fixture_list, tmp_path
):
    from tokencli.pricing.cost import price_call
    from tokencli.settings.loader import load_settings

    (tmp_path / "config.toml").write_text(
        '[providers.dash]\ntype = "openai"\n'
        'base_url = "https://dashscope.aliyuncs.com/compatible-mode/v1"\n'
    )
    s = load_settings({"TOKENCLI_HOME": str(tmp_path)})
    cost = price_call(
        s, s.providers["dash"], "qwen-plus", Usage(1_000, output_tokens=1_000), when=datetime.now()
    )
    assert (cost.amount, cost.currency) == (Decimal("0.0028"), "CNY")


def test_an_override_wins_over_the_list(cli, home, server, fixture_list):
    five_providers(
        home, server, '[prices."qwen:qwen-plus"]\ninput = 1\noutput = 1\ncurrency = "CNY"\n'
    )
    one_call(cli, server, "qwen:qwen-plus", openai_usage(1_000_000, 1_000_000))
    assert last_row(home) == (Decimal(2), "CNY", "config config.toml:18")


def test_a_model_missing_from_the_list(cli, home, server, fixture_list):
    five_providers(home, server)
    # no other price anywhere: unknown, with the one-time hint
    result = one_call(cli, server, "qwen:qwen-nosuch", openai_usage(1_000, 100))
    assert last_row(home) == (None, None, "unknown")
    assert '[prices."qwen:qwen-nosuch"]' in result.stderr
    # the dollar table knows it: priced from it, and the source says the list did not
    one_call(cli, server, "zhipu:GLM-4-Air", openai_usage(1_000_000, 0))
    cost, currency, source = last_row(home)
    assert currency == "USD" and cost > 0
    assert source.startswith("genai-prices ") and source.endswith(" (not in the cny list)")


# ------------------------------------------------------------------------ staleness


def test_a_stale_list_hints_once_a_month(cli, home, server, fixture_list, monkeypatch):
    five_providers(home, server)
    hint = "The yuan price list was read on 2026-08-01"
    monkeypatch.setenv("TOKENCLI_NOW", "2026-08-20T12:00:00Z")
    assert hint not in one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1)).stderr
    later = datetime(2026, 8, 1, 12) + timedelta(days=100)
    monkeypatch.setenv("TOKENCLI_NOW", later.isoformat() + "Z")
    first = one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1))
    assert f"{hint}, 100 days ago" in first.stderr
    assert '[prices."PROVIDER:MODEL"]' in first.stderr
    assert hint not in one_call(cli, server, "zhipu:glm-5.3", openai_usage(10, 1)).stderr
    monkeypatch.setenv("TOKENCLI_NOW", "2026-12-01T08:00:00Z")
    assert (
        f"{hint}, 122 days ago"
        in one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1)).stderr
    )
    assert hint not in one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1)).stderr
    # a call priced elsewhere says nothing about the list
    monkeypatch.setenv("TOKENCLI_NOW", "2027-01-05T08:00:00Z")
    assert hint not in cli("run", "-m", "mock:echo", "x").stderr


# ----------------------------------------------------------------------- models


def test_models_shows_the_yuan_prices_with_source_and_date(cli, fixture_list, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-08-10T00:00:00Z")
    table = cli("models", "--provider", "qwen")
    assert table.exit_code == 0
    line = next(x for x in table.stdout.splitlines() if x.startswith("qwen:qwen-plus "))
    assert "¥0.8" in line and "¥2" in line and "¥0.16" in line
    assert "cny list (help.aliyun.com, read 2026-08-01)" in line
    assert "stale" not in line and "price list" not in table.stderr
    rows = json.loads(cli("models", "--json", "--provider", "qwen").stdout)
    plus = next(r for r in rows if r["model"] == "qwen-plus")
    assert plus["source_url"] == "https://help.aliyun.com/zh/model-studio/models"
    assert plus["read"] == "2026-08-01" and plus["currency"] == "CNY"
    assert plus["aliases"] == ["qwen-plus-latest", "qwen-plus-2025-09-11"]
    assert plus["thinking_output_per_mtok"] == "8"
    assert plus["tiers"][1] == {
        "up_to": 262144,
        "input_per_mtok": "2.4",
        "output_per_mtok": "20",
        "thinking_output_per_mtok": "24",
        "cached_input_per_mtok": "0.48",
    }
    assert plus["notes"] == ["thinking", "tiered"]
    free = json.loads(cli("models", "--json", "--provider", "siliconflow", "Qwen3").stdout)
    assert [(r["model"], r["input_per_mtok"], r["notes"]) for r in free] == [
        ("Qwen/Qwen3-8B", "0", ["free"])
    ]


def test_models_says_when_the_list_is_stale(cli, fixture_list, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-09T00:00:00Z")
    result = cli("models", "--provider", "zhipu", "glm-5.3")
    assert "The yuan price list was read on 2026-08-01, 100 days ago" in result.stderr
    assert 'set [prices."PROVIDER:MODEL"]' in result.stderr and "update tokencli" in result.stderr
    assert "a prices-cny.toml of your own" in result.stderr
    rows = json.loads(cli("models", "--json", "--provider", "zhipu", "glm-5.3").stdout)
    assert next(r for r in rows if r["model"] == "glm-5.3")["notes"] == ["tiered", "stale"]


def test_the_yuan_row_replaces_the_tables_row_of_the_same_model(cli, fixture_list):
    rows = json.loads(cli("models", "--json", "--provider", "zhipu", "glm-5.3").stdout)
    same = [(r["model"], r["currency"]) for r in rows if r["model"].lower() == "glm-5.3"]
    assert same == [("glm-5.3", "CNY")]  # the table's GLM-5.3 (USD) is gone


# ------------------------------------------------------------------- your own list

OWN_LIST = """
format = 1
currency = "CNY"
read = 2026-11-20

[[models]]
provider = "qwen"
model = "qwen-plus"
input = 1
output = 3
cached_input = 0.2
source = "https://help.aliyun.com/zh/model-studio/models"
read = 2026-11-20

[[models]]
provider = "moonshot"
model = "kimi-k3"
input = 5
output = 25
source = "https://platform.moonshot.cn/docs/pricing/chat"
read = 2026-11-21
"""


def test_your_own_list_is_laid_over_the_bundled_one_name_by_name(
    cli, home, server, fixture_list, monkeypatch
):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-12-01T08:00:00Z")
    five_providers(home, server)
    (home / "prices-cny.toml").write_text(OWN_LIST, "utf-8")
    # the model it lists is priced from it, untiered as it says
    one_call(cli, server, "qwen:qwen-plus", openai_usage(200_000, 1_000_000, cached=100_000))
    assert last_row(home) == (
        Decimal("3.12"),  # 100k × 1 + 100k × 0.2 + 1M × 3, per million
        "CNY",
        "your cny list: qwen-plus (help.aliyun.com, read 2026-11-20)",
    )
    # an alias it does not list keeps the bundled entry's price
    one_call(cli, server, "qwen:qwen-plus-latest", openai_usage(100_000, 0))
    assert last_row(home)[:2] == (Decimal("0.08"), "CNY")
    assert last_row(home)[2].startswith("cny list: qwen-plus-latest (")
    # a model the bundled list lacks, of a provider it has nothing for in this fixture
    one_call(cli, server, "moonshot:kimi-k3", openai_usage(1_000_000, 1_000_000))
    assert last_row(home)[:2] == (Decimal(30), "CNY")
    rows = json.loads(cli("models", "--json", "--provider", "qwen", "qwen-plus").stdout)
    by_model = {r["model"]: r for r in rows}
    assert by_model["qwen-plus"]["source"] == "your cny list (help.aliyun.com, read 2026-11-20)"
    assert by_model["qwen-plus"]["input_per_mtok"] == "1"
    assert by_model["qwen-plus-latest"]["aliases"] == ["qwen-plus-2025-09-11"]
    assert by_model["qwen-plus-latest"]["source"].startswith("cny list (")
    shown = cli("config", "show").stdout
    line = next(x for x in shown.splitlines() if x.startswith("providers.qwen.price_list"))
    assert f"your cny list {home / 'prices-cny.toml'} over the cny list" in line


def test_an_invalid_own_list_is_one_clear_error_naming_it(cli, home, server, fixture_list):
    five_providers(home, server)
    own = home / "prices-cny.toml"
    own.write_text(OWN_LIST.replace("output = 25", "output = -25"), "utf-8")
    result = one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1))
    assert last_row(home) == (None, None, "unknown")  # the call is still recorded
    assert f"Your yuan price list {own} is invalid" in result.stderr
    listing = cli("models")
    assert listing.exit_code == 6 and "Traceback" not in listing.stderr
    assert "models[2] (moonshot:kimi-k3).output must be a finite number ≥ 0" in listing.stderr
    assert "move it away" in listing.stderr
    own.unlink()
    assert cli("models").exit_code == 0


def test_an_own_list_that_is_no_list_is_refused_or_passed_over(cli, home, fixture_list):
    own = home / "prices-cny.toml"
    home.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"# " + b"x" * (5 * 2**20) + b"\n")  # far larger than any price list
    result = cli("models")
    assert result.exit_code == 6 and "Traceback" not in result.stderr
    assert f"Your yuan price list {own} is invalid: it is larger than 4 MiB" in result.stderr
    own.unlink()
    os.mkfifo(own)  # not a file: passed over, never read (a read would wait forever)
    assert cli("models", "--provider", "qwen").exit_code == 0


def test_the_parse_is_kept_and_follows_every_change_of_the_file(tmp_path, monkeypatch):
    """A process prices from the kept parse; an edited file is read again, never the copy."""
    listing, cache = tmp_path / "prices-cny.toml", tmp_path / "cache"
    listing.write_text(FIXTURE.read_text("utf-8"), "utf-8")
    monkeypatch.setattr(cny, "_loaded", {})
    first = cny.active(None, cache, listing)
    assert first.find("qwen", "qwen-plus").input == Decimal("0.8")
    assert len(list(cache.glob("prices-cny-*.json"))) == 1

    def no_toml(text):
        raise AssertionError("parsed the TOML again")

    monkeypatch.setattr(cny.tomllib, "loads", no_toml)
    monkeypatch.setattr(cny, "_loaded", {})
    assert cny.active(None, cache, listing) == first  # a new process: the kept parse
    monkeypatch.undo()

    before = listing.stat().st_mtime_ns
    listing.write_text(FIXTURE.read_text("utf-8").replace("input = 0.8\n", "input = 0.9\n", 1))
    # same size: only the time tells the edit (set past a coarse clock's tick)
    os.utime(listing, ns=(before + 10**9, before + 10**9))
    monkeypatch.setattr(cny, "_loaded", {})
    assert cny.active(None, cache, listing).find("qwen", "qwen-plus").input == Decimal("0.9")
    # a kept copy that fails the checks is passed over for the file
    kept = next(cache.glob("prices-cny-*.json"))
    kept.write_text(kept.read_text("utf-8").replace('"input": 0.9', '"input": -1', 1), "utf-8")
    monkeypatch.setattr(cny, "_loaded", {})
    assert cny.active(None, cache, listing).find("qwen", "qwen-plus").input == Decimal("0.9")


# ------------------------------------------------------------------- a damaged list


def test_a_damaged_list_is_one_clear_error(cli, home, server, tmp_path, monkeypatch):
    bad = tmp_path / "prices-cny.toml"
    bad.write_text(
        FIXTURE.read_text().replace('input = 0.8\noutput = "2"', 'input = "cheap"\noutput = "2"')
    )
    monkeypatch.setattr(cny, "LIST_PATH", bad)
    monkeypatch.setattr(cny, "_loaded", {})
    five_providers(home, server)
    # the call is made and recorded; its cost is unknown and stderr says why
    result = one_call(cli, server, "qwen:qwen-plus", openai_usage(10, 1))
    assert last_row(home) == (None, None, "unknown")
    assert "models[1] (qwen:qwen-plus).input must be a number ≥ 0, not 'cheap'" in result.stderr
    listing = cli("models")
    assert listing.exit_code == 6 and "Traceback" not in listing.stderr
    assert f"The bundled yuan price list {bad} is damaged" in listing.stderr
    assert "docs/prices-cny.md" in listing.stderr


def test_start_up_paths_do_not_read_the_list(home):
    for args in (("--help",), ("logs",), ("count", "-m", "openai:gpt-4o-mini", "hello")):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "tokencli", *args],
            env=subprocess_env(home),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "tokencli.pricing.cny" not in result.stderr, args


# ----------------------------------------------------------------------- the loader

VALID_ENTRY = {
    "provider": "qwen",
    "model": "m",
    "input": 1,
    "output": 2,
    "source": "https://help.aliyun.com/x",
    "read": date(2026, 1, 1),
}
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1.5", "0", "-1", "1e3", "NaN", "Infinity", " 2 ", "1e999999", "0x10", "１"]),
    st.dates(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["up_to", "input", "output", "x"]), st.integers(), max_size=3),
    st.fixed_dictionaries(  # something like off-peak prices, right or not
        {"input": st.integers(-1, 5), "output": st.integers(0, 5)},
        optional={
            "cached_input": st.integers(0, 3),
            "thinking_output": st.integers(0, 9),
            "during": st.lists(st.sampled_from(["02:00-08:00", "Sat 00:00-24:00", "8-9"])),
            "peak": st.lists(st.sampled_from(["Mon-Fri 09:00-12:00", "Tue 03:00-04:00", "x"])),
        },
    ),
)
entry_keys = st.sampled_from(sorted(cny._ENTRY_KEYS | {"currency", "typo"}))


def _toml(value: Any) -> Any:
    """tomli-w cannot write None: leave such keys out."""
    if isinstance(value, dict):
        return {k: _toml(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml(v) for v in value if v is not None]
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(entry_keys, junk, max_size=3),
    drop=st.sets(st.sampled_from(sorted(VALID_ENTRY)), max_size=2),
    top=st.dictionaries(st.sampled_from(["format", "currency", "read"]), junk, max_size=1),
    usage=st.tuples(*[st.integers(0, 10**9)] * 4),
)
def test_the_loader_gives_a_list_or_one_clear_error(changes, drop, top, usage):
    entry = {k: v for k, v in {**VALID_ENTRY, **changes}.items() if k not in drop}
    doc = _toml(
        {"format": 1, "currency": "CNY", "read": date(2026, 1, 1), **top, "models": [entry]}
    )
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not writable as TOML at all
    try:
        prices = cny.parse(text)
    except ConfigError as exc:
        assert exc.message.startswith("The bundled yuan price list prices-cny.toml is damaged: ")
        assert exc.exit_code == 6 and "\n" not in exc.message
        return
    (parsed,) = prices.entries
    for value in (parsed.input, parsed.output, parsed.cached_input, parsed.thinking_output):
        assert value is None or (value.is_finite() and value >= 0)
    inp, cached, out, reasoning = usage
    cached = min(cached, inp)
    # Tuesday 03:00 in Beijing: off-peak for some windows above, not for others
    when = datetime(2026, 12, 1, 3, tzinfo=cny.BEIJING)
    cost = cny.quote(parsed, Usage(inp, cached, 0, out, min(reasoning, out)), when)
    off = parsed.off_peak if parsed.off_peak and parsed.off_peak.applies(when) else None
    p_in = off.input if off else parsed.input
    p_out = off.output if off else parsed.output
    p_cached = next(
        p for p in (off.cached_input if off else None, parsed.cached_input, p_in) if p is not None
    )
    p_think = off.thinking_output if off and off.thinking_output is not None else None
    p_think = parsed.thinking_output if p_think is None else p_think
    out_price = p_think if p_think is not None and min(reasoning, out) > 0 else p_out
    exact = (
        (inp - cached) * Fraction(p_in) + cached * Fraction(p_cached) + out * Fraction(out_price)
    ) / 1_000_000
    assert cost >= 0 and Fraction(cost) == exact  # no rounding anywhere


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kept=JSON_VALUES, swap=st.sampled_from(["raw", "models", "entry"]))
def test_any_kept_parse_prices_like_the_file_or_is_passed_over(tmp_path, kept, swap):
    """Whatever the kept copy holds, the list loads: from the copy when it passes every check,
    else from the file, and never with an error the file itself would not give."""
    listing, cache = tmp_path / "prices-cny.toml", tmp_path / "cache"
    listing.write_text(FIXTURE.read_text("utf-8"), "utf-8")
    cny._loaded.clear()
    from_file = cny.active(None, cache, listing)
    copy = next(cache.glob("prices-cny-*.json"))
    document = json.loads(copy.read_text("utf-8"))
    if swap == "raw":
        document["raw"] = kept
    elif swap == "models":
        document["raw"]["models"] = kept
    else:
        document["raw"]["models"][0] = kept
    copy.write_text(json.dumps(document), "utf-8")
    cny._loaded.clear()
    loaded = cny.active(None, cache, listing)
    assert isinstance(loaded, cny.PriceList)
    if loaded != from_file:  # a copy that passed every check: a list the format allows
        assert all(e.input >= 0 and e.output >= 0 for e in loaded.entries)
    cny._loaded.clear()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_list_or_one_clear_error(text):
    try:
        cny.parse(text)
    except ConfigError as exc:
        assert "is damaged" in exc.message


def test_the_loader_refuses_what_the_format_forbids():
    def error(
        change: dict[str, Any] | None = None, top: dict[str, Any] | None = None, entries=None
    ) -> str:
        models = entries if entries is not None else [{**VALID_ENTRY, **(change or {})}]
        doc = {
            "format": 1,
            "currency": "CNY",
            "read": date(2026, 1, 1),
            **(top or {}),
            "models": models,
        }
        with pytest.raises(ConfigError) as caught:
            cny.parse(tomli_w.dumps(_toml(doc)))
        return caught.value.message.split(" is damaged: ", 1)[1]

    assert error(top={"currency": "USD"}) == "currency must be \"CNY\", not 'USD'."
    assert error(top={"format": 2}).startswith("format must be 1, not 2")
    assert error({"source": "http://x.cn"}) == (
        "models[1] (qwen:m).source must be the https:// address of the official price page."
    )
    assert error({"input": -1}) == "models[1] (qwen:m).input must be a finite number ≥ 0, not -1."
    assert error({"inptu": 1}) == "models[1] (qwen:m) has unknown keys inptu."
    assert (
        error({"free": True}) == "models[1] (qwen:m) says free = true but has a price above zero."
    )
    assert error(
        {"tiers": [{"up_to": 10, "input": 1, "output": 1}, {"up_to": 10, "input": 2, "output": 2}]}
    ) == ("models[1] (qwen:m).tiers must ascend by up_to (10 follows 10).")
    assert error(entries=[VALID_ENTRY, {**VALID_ENTRY, "model": "M"}]) == (
        "models[2] (qwen:M) repeats 'M', already listed by models[1] (qwen:m)."
    )
    assert error({"model": "m\x1b[2J"}) == ("models[1].model holds a control character: m\\x1b[2J.")
    assert error({"aliases": ["m2\u202e"]}).endswith(
        ".aliases holds a control character: m2\\u202e."
    )
    assert error({"read": "yesterday"}) == (
        "models[1] (qwen:m).read must be a date (YYYY-MM-DD), not 'yesterday'."
    )
    off = {"input": 1, "output": 1, "peak": ["Mon-Fri 09:00-12:00"]}
    assert error({"off_peak": {**off, "during": ["02:00-08:00"]}}) == (
        "models[1] (qwen:m).off_peak needs either during (its hours) or peak (the hours it is not)."
    )
    assert error({"off_peak": {"input": 1, "output": 1}}).endswith("or peak (the hours it is not).")
    assert error({"off_peak": {**off, "peak": ["Mon-Fri 12:00-09:00"]}}) == (
        "models[1] (qwen:m).off_peak.peak has 'Mon-Fri 12:00-09:00': the span must end after it"
        " starts (split one past midnight in two)."
    )
    assert error({"off_peak": {**off, "peak": ["Weekdays 09:00-12:00"]}}) == (
        "models[1] (qwen:m).off_peak.peak has 'Weekdays 09:00-12:00': days are Mon..Sun, one or"
        " a run like Mon-Fri."
    )
    assert error({"off_peak": {**off, "input": -1}}) == (
        "models[1] (qwen:m).off_peak.input must be a finite number ≥ 0, not -1."
    )
    assert error({"off_peak": {**off, "hours": 3}}) == (
        "models[1] (qwen:m).off_peak has unknown keys hours."
    )
    assert error({"off_peak": off, "tiers": [{"up_to": 10, "input": 1, "output": 1}]}) == (
        "models[1] (qwen:m).off_peak cannot go with tiers, free or cache_write."
    )


# ------------------------------------------------------------ counts and reports


def test_count_prices_the_input_from_the_list(cli, fixture_list):
    result = cli("count", "-m", "qwen:qwen-plus", "--json", "你好，世界" * 100)
    out = json.loads(result.stdout)
    assert Decimal(out["cost"]) == Decimal(out["input_tokens"]) * Decimal("0.8") / 1_000_000
    assert out["currency"] == "CNY" and out["price_source"].startswith("cny list: qwen-plus")


def test_count_and_dry_run_price_at_the_pinned_hour(cli, home, monkeypatch):
    """`count` and `run --dry-run` quote the price of the hour on tokencli's one clock."""
    write_config(home, '[providers.deepseek]\ncurrency = "CNY"\n')
    quotes = {}
    for now in ("2026-12-01T02:00:00Z", "2026-12-05T02:00:00Z"):  # Tuesday, Saturday
        monkeypatch.setenv("TOKENCLI_NOW", now)
        counted = json.loads(cli("count", "-m", "deepseek:deepseek-v4-pro", "--json", "hi").stdout)
        planned = json.loads(
            cli("run", "-m", "deepseek:deepseek-v4-pro", "--dry-run", "--json", "hi").stdout
        )
        assert counted["price_source"] == planned["price_source"]
        quotes[now] = (planned["price_source"], Decimal(counted["cost"]), Decimal(planned["cost"]))
    peak, off_peak = quotes.values()
    assert peak[0].startswith("cny list: deepseek-v4-pro")
    assert off_peak[0].startswith("cny list (off-peak): deepseek-v4-pro")
    assert (off_peak[1] * 2, off_peak[2] * 2) == peak[1:]  # half price at the weekend


def test_reports_convert_the_yuan_with_the_configured_rate(
    cli, home, server, fixture_list, monkeypatch
):
    monkeypatch.delenv("TOKENCLI_NOW")  # the report's last day is the real one
    five_providers(home, server, '[currency]\nreport = "USD"\nrates = { CNY = 0.14 }\n')
    one_call(cli, server, "qwen:qwen-plus", openai_usage(100_000, 100_000))  # ¥0.28
    report = json.loads(cli("report", "--last", "1d", "--by", "provider", "--json").stdout)
    assert report["currency"] == "USD"
    assert Decimal(report["totals"]["cost"]) == Decimal("0.28") * Decimal("0.14")
