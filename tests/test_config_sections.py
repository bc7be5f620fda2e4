"""The section table: one parser per config section, each error naming file and line."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokencli.errors import ConfigError
from tokencli.scope import Scope
from tokencli.settings import Budget, Settings, load_settings, set_table
from tokencli.settings.sections import SECTIONS


def settings_for(tmp_path: Path, text: str):
    (tmp_path / "config.toml").write_text(text)
    return load_settings({"TOKENCLI_HOME": str(tmp_path)})


def test_every_settings_field_but_the_bookkeeping_comes_from_one_section():
    fields = {f.name for f in dataclasses.fields(Settings)}
    filled = [section.attribute for section in SECTIONS]
    assert sorted(filled) == sorted(fields - {"paths", "env", "sources", "config_exists"})


def test_an_unknown_section_lists_the_table_in_order(tmp_path):
    with pytest.raises(ConfigError) as info:
        settings_for(tmp_path, "# x\n\n[alarms]\nurl = 'x'\n")
    assert str(info.value).startswith(
        f"Invalid config {tmp_path / 'config.toml'} (line 3): alarms is not a known section. "
        "Known sections: defaults, aliases, providers, models, prices, currency, budgets, alerts"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\n\nstore_text = 'yes'\n", "(line 3): defaults.store_text must be true or false"),
        ("[aliases]\nfast = []\n", "(line 2): aliases.fast is empty."),
        ("[providers.openai]\n\nmax_tokens_field = 'x'\n", "(line 3): providers.openai.max_tokens_field must be max_tokens or"),
        ('[models."nope:m"]\nrpm = 1\n', '(line 1): models."nope:m" must be named PROVIDER:MODEL with a known provider.'),
        ('[models."openai:gpt-4o"]\n\nrpm = -1\n', '(line 3): models."openai:gpt-4o".rpm must be a whole number ≥ 0, not -1.'),
        ('[prices."a:b"]\n\ninput = 1\nfree = 2\n', '(line 4): prices."a:b".free is not a known setting.'),
        ("[currency]\n\nreport = 'euro'\n", "(line 3): currency.report must be a three-letter currency code"),
        ("[budgets.monthly]\nperiod = 'day'\n", "(line 1): budgets.monthly has no limit."),
        ("[budgets.m]\namount = 0\n", "(line 2): budgets.m.amount must be greater than 0."),
        ("[budgets.m]\namount = 5\n\nperiod = 'year'\n", "(line 4): budgets.m.period must be day, week or month, not 'year'."),
        ("[budgets.m]\namount = 5\ntag = ['client']\n", "(line 3): budgets.m.tag must be KEY=VALUE, not 'client'."),
        ("[budgets.m]\namount = 5\ncurrency = 'dollars'\n", "(line 3): budgets.m.currency must be a three-letter currency code"),
        ("budgets = []\n", "(line 1): budgets must be a table, not a list."),
    ],
)  # fmt: skip
def test_each_sections_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        settings_for(tmp_path, text)
    assert f"Invalid config {tmp_path / 'config.toml'} {message}" in str(info.value)


def test_a_section_gets_the_sections_it_needs_whatever_the_order_in_the_file(tmp_path):
    s = settings_for(
        tmp_path,
        "[budgets.acme]\namount = 20\ntag = ['client=acme']\nprovider = 'lab'\n\n"
        "[aliases]\nlocal = 'lab:llama'\n\n"
        "[models.'lab:llama']\nrpm = 5\n\n"
        "[currency]\nreport = 'eur'\n\n"
        "[providers.lab]\ntype = 'openai'\nbase_url = 'http://127.0.0.1:8000/v1'\n",
    )
    assert s.aliases == {"local": ("lab:llama",)}
    assert s.models["lab:llama"].rpm == 5
    assert s.budgets == {
        "acme": Budget(
            name="acme",
            amount=Decimal(20),
            currency="EUR",  # the report currency, parsed before budgets needed it
            period="month",
            scope=Scope(provider="lab", tags=(("client", "acme"),)),
            source="config.toml:1",
        )
    }
    assert s.budgets["acme"].scope.describe() == {"provider": "lab", "tag:client": "acme"}
    assert {k: v for k, v in s.sources.items() if k.startswith("budgets.")} == {
        "budgets.acme.amount": "config.toml:2",
        "budgets.acme.tag": "config.toml:3",
        "budgets.acme.provider": "config.toml:4",
    }
    assert (s.sources["aliases.local"], s.sources["currency.report"]) == (
        "config.toml:7",
        "config.toml:13",
    )


def test_config_show_describes_a_budget_by_its_scope(cli, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        "[budgets.acme]\namount = 20\nperiod = 'week'\nmodel = 'gpt-4o'\ntag = 'client=acme'\n"
        "[budgets.all]\namount = 100\n"
    )
    out = cli("config", "show").stdout
    assert "20 USD a week, model=gpt-4o, tag:client=acme" in out
    assert "100 USD a month, all calls" in out


_WORDS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)


@settings(max_examples=40, deadline=None, database=None)
@given(
    name=_WORDS | st.sampled_from(["team a", "openai:gpt-4o"]),
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
    period=st.sampled_from(["day", "week", "month"]),
    provider=st.none() | st.sampled_from(["openai", "deepseek", "mock"]),
    project=st.none() | _WORDS,
    tags=st.lists(st.tuples(_WORDS, _WORDS), max_size=3, unique_by=lambda t: t[0]),
)
def test_a_budget_written_by_the_editor_reads_back_as_written(
    tmp_path_factory, name, amount, period, provider, project, tags
):
    home = tmp_path_factory.mktemp("home")
    path = home / "config.toml"
    path.write_text(
        "[currency]\nreport = 'EUR'  # reports in euros\n\n[budgets.other]\namount = 1\n"
    )
    table: dict[str, object] = {"amount": amount, "period": period}
    if provider:
        table["provider"] = provider
    if project:
        table["project"] = project
    if tags:
        table["tag"] = [f"{k}={v}" for k, v in tags]
    set_table(path, ("budgets", name), table)

    budget = load_settings({"TOKENCLI_HOME": str(home)}).budgets[name]
    assert (budget.amount, budget.currency, budget.period) == (amount, "EUR", period)
    assert budget.scope == Scope(provider=provider, project=project, tags=tuple(tags))
    assert budget.source == "config.toml:7"
