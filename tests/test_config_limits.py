"""[budgets.NAME] limits in money or tokens, [defaults] timezone, and [alerts]: parsed and refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokencli.errors import ConfigError
from tokencli.settings.loader import load_settings
from tokencli.settings.model import AlertChannel, AlertRules


def settings_for(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    return load_settings({"TOKENCLI_CONFIG": str(path), "TOKENCLI_DB": str(tmp_path / "l.db")})


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        settings_for(tmp_path, text)
    return raised.value.message


def test_a_budget_limits_money_or_tokens_with_its_thresholds(tmp_path):
    settings = settings_for(
        tmp_path,
        "[budgets.cash]\namount = 50\nblock = true\nwarn = [90, 50]\n"
        "[budgets.volume]\ntokens = 2_000_000\nperiod = 'day'\nprovider = 'deepseek'\n"
        "allow_unpriced = true\n",
    )
    cash, volume = settings.budgets["cash"], settings.budgets["volume"]
    assert (cash.amount, cash.tokens, cash.block, cash.warn) == (Decimal(50), None, True, (50, 90))
    assert not cash.in_tokens and volume.in_tokens
    assert (volume.amount, volume.tokens, volume.period) == (None, 2_000_000, "day")
    assert volume.scope.provider == "deepseek" and volume.allow_unpriced and not volume.block
    # Warn-only with the usual thresholds when nothing is said.
    assert settings_for(tmp_path, "[budgets.b]\namount = 1\n").budgets["b"].warn == (50, 80, 100)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[budgets.b]\namount = 5\ntokens = 10\n",
            "budgets.b needs either amount (money) or tokens, not both",
        ),
        ("[budgets.b]\nperiod = 'day'\n", "budgets.b has no limit"),
        ("[budgets.b]\ntokens = 0\n", "budgets.b.tokens must be greater than 0"),
        ("[budgets.b]\ntokens = -3\n", "budgets.b.tokens must be a whole number ≥ 0"),
        ("[budgets.b]\ntokens = 99999999999999999999\n", "budgets.b.tokens is too large"),
        ("[budgets.b]\namount = 'lots'\n", "budgets.b.amount must be a number ≥ 0"),
        ("[budgets.b]\namount = 5\nperiod = 'fortnight'\n", "must be day, week or month"),
        ("[budgets.b]\namount = 5\nprovider = 'nope'\n", "names an unknown provider 'nope'"),
        ("[budgets.b]\namount = 5\ncurrency = 'CNY'\n", "is CNY, which has no rate into USD"),
        ("[budgets.b]\namount = 5\nwarn = [0]\n", "must hold percentages between 1 and 1000"),
        (
            "[budgets.b]\namount = 5\nwarn = 'half'\n",
            "budgets.b.warn must be a list of whole numbers",
        ),
        ("[defaults]\ntimezone = 'Mars/Olympus'\n", "defaults.timezone is not a known time zone"),
    ],
)
def test_bad_limits_are_named_with_their_line(tmp_path, text, problem):
    message = refused(tmp_path, text)
    assert problem in message and "(line " in message


def test_a_token_budget_in_another_currency_needs_no_rate(tmp_path):
    budget = settings_for(tmp_path, "[budgets.t]\ntokens = 10\ncurrency = 'CNY'\n").budgets["t"]
    assert budget.tokens == 10


def test_the_budget_zone_is_an_iana_name(tmp_path):
    assert settings_for(tmp_path, "[defaults]\ntimezone = 'Asia/Shanghai'\n").defaults.timezone == (
        "Asia/Shanghai"
    )
    assert settings_for(tmp_path, "").defaults.timezone is None


def test_alert_rules_and_channels(tmp_path):
    settings = settings_for(
        tmp_path,
        "[alerts]\nmax_call_tokens = 20000\nspike_factor = 2.5\n"
        "[[alerts.channels]]\ntype = 'webhook'\nformat = 'dingtalk'\n"
        "url = 'https://oapi.dingtalk.com/robot/send?access_token=SECRET'\nsecret = 'SEC1'\n"
        "[[alerts.channels]]\ntype = 'command'\ncommand = ['/usr/bin/logger', '-t', 'tokencli']\n"
        "name = 'syslog'\n"
        "[[alerts.channels]]\ntype = 'webhook'\nurl = 'http://127.0.0.1:9000/hook'\n",
    )
    rules = settings.alerts.rules
    assert (rules.max_call_tokens, rules.spike_factor) == (20000, Decimal("2.5"))
    assert rules.max_consecutive_failures == AlertRules().max_consecutive_failures
    ding, syslog, local = settings.alerts.channels
    assert (ding.type, ding.format, ding.secret, ding.name) == (
        "webhook",
        "dingtalk",
        "SEC1",
        "webhook-1",
    )
    assert syslog == AlertChannel(
        type="command",
        name="syslog",
        command=("/usr/bin/logger", "-t", "tokencli"),
        source=syslog.source,
    )
    assert local.url == "http://127.0.0.1:9000/hook"  # plain http to this machine is fine
    assert settings_for(tmp_path, "").alerts.channels == ()


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        ("type = 'pager'", "is 'pager', not a channel type"),
        ("type = 'webhook'", "channel 1 (webhook) has no url"),
        ("type = 'webhook'\nurl = 'ftp://x.example/hook?key=SECRET'", "is not an http(s) URL"),
        (
            "type = 'webhook'\nurl = 'http://hooks.example/x?key=SECRET'",
            "is plain http to another machine",
        ),
        ("type = 'webhook'\nformat = 'teams'\nurl = 'https://x.example/'", "is 'teams'"),
        ("type = 'command'", "has no command"),
        ("type = 'stderr'\ntimeout = 0", "must be between 0 and 120 seconds"),
    ],
)
def test_bad_channels_are_refused_without_showing_the_url(tmp_path, channel, problem):
    message = refused(tmp_path, f"[[alerts.channels]]\n{channel}\n")
    assert problem in message
    assert "SECRET" not in message  # webhook URLs carry their secret


def test_plain_http_to_another_machine_can_be_allowed(tmp_path):
    settings = settings_for(
        tmp_path,
        "[[alerts.channels]]\ntype = 'webhook'\nurl = 'http://gpubox.lan/hook'\nallow_http = true\n",
    )
    assert settings.alerts.channels[0].allow_http


def test_currencies_convert_through_the_report_currency():
    from tokencli.settings.model import Currencies

    rates = Currencies(report="USD", rates={"CNY": Decimal("0.14"), "EUR": Decimal("1.08")})
    assert rates.convert(Decimal(100), "CNY", "USD") == Decimal("14")
    assert rates.convert(Decimal(14), "USD", "CNY") == Decimal(100)
    assert rates.convert(Decimal("1.08"), "EUR", "CNY") == Decimal("8.331428571429")  # to the pico
    assert rates.convert(Decimal(5), "GBP", "USD") is None  # no rate: unknown, never 0
    assert rates.convert(Decimal(5), None, "CNY") == Decimal(5)
    assert rates.convert(Decimal(0), "GBP", "USD") == Decimal(0)
