"""Budgets: their periods across day, week and month boundaries in several zones, spend in
their own currency or in tokens, thresholds, the pace warning, and the `budget` commands
(the config edited in place, every other byte kept; bad input refused, the file untouched)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ledger_rows, write_config
from tokencli.calls.usage import Usage
from tokencli.cli.budget_cmd import _parse_limit, _parse_warn
from tokencli.errors import UsageError
from tokencli.insights.budgets import budget_state, ordinal
from tokencli.ledger import Call, Ledger
from tokencli.scope import Scope
from tokencli.settings.model import Budget, Currencies

USD = Currencies("USD", {"CNY": Decimal("0.14")})
_serial = iter(range(10**6))


def _call(
    ts: str,
    cost: str = "1",
    currency: str = "USD",
    *,
    status: str = "ok",
    tokens: tuple[int, int] = (100, 10),
    provider: str = "openai",
    project: str | None = None,
) -> Call:
    return Call(
        id=f"01JZZZZZZZZZZZZZZZZZZ{next(_serial):05d}",
        ts=datetime.fromisoformat(ts).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        provider=provider,
        model="gpt-4o-mini",
        status=status,
        pid=1,
        project=project,
        usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1]),
        cost=Decimal(cost),
        currency=currency,
    )


def _ledger(*calls: Call, path: Path | None = None) -> Ledger:
    ledger = Ledger.open(path) if path else Ledger.open_memory()
    assert ledger is not None
    for call in calls:
        ledger.insert_call(call)
    return ledger


def _state(ledger: Ledger, budget: Budget, now: str, tz: str = "UTC", currencies=USD):
    return budget_state(
        ledger,
        budget,
        now=datetime.fromisoformat(now),
        tz=ZoneInfo(tz),
        currencies=currencies,
    )


def _money(name="b", amount="10", period="month", **kw) -> Budget:
    return Budget(name, Decimal(amount), kw.pop("currency", "USD"), period, **kw)


# ------------------------------------------------------------------ periods and zones


@pytest.mark.parametrize(
    ("tz", "period", "before", "after", "label_before", "label_after"),
    [
        # 23:59 local on one day, 00:01 local on the next.
        ("Asia/Shanghai", "day", "2026-11-15T23:59:00+08:00", "2026-11-16T00:01:00+08:00",
         "2026-11-15", "2026-11-16"),
        ("America/New_York", "day", "2026-11-15T23:59:00-05:00", "2026-11-16T00:01:00-05:00",
         "2026-11-15", "2026-11-16"),
        ("UTC", "day", "2026-11-15T23:59:00+00:00", "2026-11-16T00:01:00+00:00",
         "2026-11-15", "2026-11-16"),
        # 2026-11-16 is a Monday: a week starts.
        ("Asia/Shanghai", "week", "2026-11-15T23:59:00+08:00", "2026-11-16T00:01:00+08:00",
         "2026-W46", "2026-W47"),
        ("America/New_York", "week", "2026-11-15T23:59:00-05:00", "2026-11-16T00:01:00-05:00",
         "2026-W46", "2026-W47"),
        # The last minute of November and the first of December.
        ("Asia/Shanghai", "month", "2026-11-30T23:59:00+08:00", "2026-12-01T00:01:00+08:00",
         "2026-11", "2026-12"),
        ("America/New_York", "month", "2026-11-30T23:59:00-05:00", "2026-12-01T00:01:00-05:00",
         "2026-11", "2026-12"),
        ("UTC", "month", "2026-11-30T23:59:00+00:00", "2026-12-01T00:01:00+00:00",
         "2026-11", "2026-12"),
    ],
)  # fmt: skip
def test_a_call_at_2359_and_one_at_0001_fall_in_their_own_periods(
    tz, period, before, after, label_before, label_after
):
    ledger = _ledger(_call(before, "2"), _call(after, "3"))
    budget = _money(period=period)
    at_first = datetime.fromisoformat(before) + timedelta(seconds=30)
    state = _state(ledger, budget, at_first.isoformat(), tz)
    assert (state.window.label, state.spent) == (label_before, Decimal(2))
    assert state.window.end == datetime.fromisoformat(before) + timedelta(minutes=1)
    at_second = datetime.fromisoformat(after) + timedelta(seconds=30)
    state = _state(ledger, budget, at_second.isoformat(), tz)
    assert (state.window.label, state.spent) == (label_after, Decimal(3))
    assert state.window.start == datetime.fromisoformat(after) - timedelta(minutes=1)
    assert state.window.tz == tz


def test_a_week_runs_monday_to_sunday_in_the_budgets_zone():
    # Monday 00:30 in Shanghai is still Sunday in UTC and in New York.
    ledger = _ledger(_call("2026-11-16T00:30:00+08:00", "4"))
    budget = _money(period="week")
    now = "2026-11-16T12:00:00+08:00"
    shanghai = _state(ledger, budget, now, "Asia/Shanghai")
    assert shanghai.spent == 4 and shanghai.last_day == date(2026, 11, 22)
    new_york = _state(ledger, budget, now, "America/New_York")
    assert new_york.window.label == "2026-W46" and new_york.spent == 4
    assert new_york.last_day == date(2026, 11, 15)
    utc = _state(ledger, budget, "2026-11-16T12:00:00+00:00", "UTC")
    assert utc.window.label == "2026-W47" and utc.spent == 0


def test_calls_after_now_are_not_spent_yet():
    ledger = _ledger(_call("2026-11-10T10:00:00+00:00", "1"), _call("2026-11-20T10:00:00Z", "5"))
    assert _state(ledger, _money(), "2026-11-15T00:00:00+00:00").spent == 1


# ------------------------------------------------------------------ units


def test_money_is_converted_into_the_budgets_currency_with_the_rates():
    ledger = _ledger(
        _call("2026-11-10T10:00:00Z", "1.40", "USD"),  # 1.40 / 0.14 = 10 CNY
        _call("2026-11-11T10:00:00Z", "5", "CNY"),  # already CNY
        _call("2026-11-12T10:00:00Z", "2", "EUR"),  # no rate: left out, reported
        _call("2026-11-12T11:00:00Z", "3", "EUR"),
    )
    budget = _money(amount="30", currency="CNY", warn=(50, 80, 100))
    state = _state(ledger, budget, "2026-11-15T12:00:00+00:00", "Asia/Shanghai")
    assert state.unit == "CNY"
    assert state.spent == Decimal(15)
    assert state.remaining == Decimal(15)
    assert state.percent == Decimal("50.0")
    assert state.crossed == (50,)
    assert state.unconvertible == {"EUR": 2}


def test_a_usd_budget_counts_cny_calls_at_the_rate():
    ledger = _ledger(_call("2026-11-10T10:00:00Z", "100", "CNY"))
    state = _state(ledger, _money(amount="20"), "2026-11-15T12:00:00+00:00")
    assert state.spent == Decimal(14)


def test_a_token_budget_counts_input_and_output_tokens_and_not_cached_answers():
    ledger = _ledger(
        _call("2026-11-10T10:00:00Z", tokens=(1000, 200)),
        _call("2026-11-11T10:00:00Z", tokens=(300, 500), currency="EUR"),
        _call("2026-11-11T11:00:00Z", tokens=(9000, 9000), status="cached"),
    )
    budget = Budget("t", None, "USD", "month", tokens=4000, warn=(50,))
    state = _state(ledger, budget, "2026-11-15T12:00:00+00:00")
    assert (state.unit, state.limit, state.spent) == ("tokens", 4000, 2000)
    assert state.crossed == (50,) and state.percent == Decimal("50.0")
    assert state.unconvertible == {}  # tokens need no rate
    assert state.projected is not None and state.projected >= 2000  # projected in tokens


def test_a_scope_takes_only_its_calls():
    ledger = _ledger(
        _call("2026-11-10T10:00:00Z", "1", project="blog"),
        _call("2026-11-10T11:00:00Z", "2", project="other"),
        _call("2026-11-10T12:00:00Z", "4", provider="anthropic", project="blog"),
    )
    budget = _money(scope=Scope(provider="openai", project="blog"))
    assert _state(ledger, budget, "2026-11-15T12:00:00+00:00").spent == 1


@pytest.mark.parametrize(
    ("spent", "crossed"),
    [
        ("4.99", ()),
        ("5", (50,)),
        ("7.999999", (50,)),
        ("8", (50, 80)),
        ("10", (50, 80, 100)),
        ("12", (50, 80, 100)),
    ],
)
def test_thresholds_are_crossed_exactly_at_their_percent(spent, crossed):
    ledger = _ledger(_call("2026-11-10T10:00:00Z", spent))
    state = _state(ledger, _money(), "2026-11-15T12:00:00+00:00")
    assert state.crossed == crossed
    assert (state.exceeded_on is not None) == (100 in crossed)
    assert state.remaining == max(Decimal(10) - Decimal(spent), Decimal(0))


def test_the_day_the_limit_was_reached_is_named():
    ledger = _ledger(_call("2026-11-03T10:00:00Z", "6"), _call("2026-11-09T10:00:00Z", "6"))
    state = _state(ledger, _money(), "2026-11-15T12:00:00+00:00")
    assert state.exceeded_on == date(2026, 11, 9)
    assert not state.on_pace and state.pace_text() is None


def _steady(days: int, per_day: str, end: str = "2026-11-15") -> list[Call]:
    last = date.fromisoformat(end)
    return [
        _call(f"{last - timedelta(days=i)}T03:00:00+00:00", per_day) for i in range(1, days + 1)
    ]


def test_a_steady_spend_is_on_pace_to_cross_before_the_month_ends():
    # $1 a day since Oct 16: $14 spent by the 15th, ~$30 by the end of November.
    ledger = _ledger(*_steady(30, "1"))
    budget = _money(amount="25", warn=(100,))
    state = _state(ledger, budget, "2026-11-15T00:00:00+00:00")
    assert state.crossed == () and state.spent == 14
    assert state.on_pace
    assert state.crosses_on is not None and date(2026, 11, 24) <= state.crosses_on <= date(
        2026, 11, 27
    )
    assert state.pace_text() == f"on pace to cross on the {ordinal(state.crosses_on.day)}"
    assert state.low is not None and state.high is not None and state.projected is not None
    assert state.low <= state.projected <= state.high
    # A budget that holds is not on pace.
    assert not _state(ledger, _money(amount="100"), "2026-11-15T00:00:00+00:00").on_pace


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 19, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "19th", "21st", "22nd", "23rd", "31st",
    ]  # fmt: skip


# ------------------------------------------------------------------ the commands

CONFIG = """\
# My tokencli config — hand written.
[defaults]
model   =   "mock:echo"     # odd spacing, kept
timezone = "Asia/Shanghai"

[currency]
rates = { CNY = 0.14 }   # 1 CNY in USD

[budgets.daily]
# a daily cap
amount = 2
period = "day"
warn = [100]

[budgets.monthly]
amount = 50  # fifty
currency = "CNY"
project = "blog"
warn = [50, 80]

# trailing comment, kept
[aliases]
fast = "mock:echo"
"""


def _seed(home: Path, *calls: Call) -> None:
    _ledger(*calls, path=home / "ledger.db").close()


def test_budget_set_appends_a_new_budget_and_keeps_every_other_byte(cli, home):
    path = write_config(home, CONFIG)
    result = cli("budget", "set", "weekly", "--limit", "1000", "--tokens", "--period", "week")
    assert result.exit_code == 0, result.stderr
    text = path.read_text("utf-8")
    at = text.index("[budgets.weekly]")
    # Placed after the last budget; every byte before and after is the old file's.
    old_at = CONFIG.index("# trailing comment")
    assert text[:at] == CONFIG[:old_at] and text.endswith(CONFIG[old_at:])
    listed = json.loads(cli("budget", "list", "--json").stdout)
    weekly = next(b for b in listed if b["name"] == "weekly")
    assert weekly == {
        "name": "weekly",
        "unit": "tokens",
        "limit": "1000",
        "period": "week",
        "scope": {},
        "warn": [50, 80, 100],
        "block": False,
        "allow_unpriced": False,
    }


def test_budget_set_on_an_existing_budget_keeps_its_other_keys_and_the_rest_of_the_file(cli, home):
    path = write_config(home, CONFIG)
    result = cli("budget", "set", "monthly", "--limit", "80.5", "--block")
    assert result.exit_code == 0, result.stderr
    text = path.read_text("utf-8")
    start = CONFIG.index("[budgets.monthly]")
    end = CONFIG.index("# trailing comment")
    assert text.startswith(CONFIG[:start]) and text.endswith(CONFIG[end:])
    monthly = next(b for b in json.loads(cli("budget", "list", "--json").stdout)
                   if b["name"] == "monthly")  # fmt: skip
    assert monthly["limit"] == "80.5" and monthly["unit"] == "CNY"
    assert monthly["scope"] == {"project": "blog"} and monthly["warn"] == [50, 80]
    assert monthly["block"] is True
    assert cli("config", "validate").exit_code == 0


def test_budget_rm_takes_out_the_table_alone(cli, home):
    path = write_config(home, CONFIG)
    result = cli("budget", "rm", "daily")
    assert result.exit_code == 0, result.stderr
    start, end = CONFIG.index("[budgets.daily]"), CONFIG.index("[budgets.monthly]")
    assert path.read_bytes() == (CONFIG[:start] + CONFIG[end:]).encode()


def test_budget_rm_of_an_unknown_name_names_the_known_ones(cli, home):
    path = write_config(home, CONFIG)
    result = cli("budget", "rm", "weekly")
    assert result.exit_code == 2
    assert "No budget named 'weekly'" in result.stderr and "daily, monthly" in result.stderr
    assert path.read_text("utf-8") == CONFIG


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--limit", "-5"], "not a number above 0"),
        (["--limit", "0"], "not a number above 0"),
        (["--limit", "fifty"], "not a number above 0"),
        (["--limit", "nan"], "not a number above 0"),
        (["--limit", "1.5", "--tokens"], "whole number of tokens"),
        (["--limit", "5", "--currency", "XYZ"], "no rate into USD"),
        (["--limit", "5", "--period", "year"], "not day, week or month"),
        (["--limit", "5", "--provider", "nosuch"], "not a known provider"),
        (["--limit", "5", "--warn", "50,abc"], "percentages"),
        (["--limit", "5", "--warn", "0"], "percentages"),
        (["--limit", "5", "--tag", "novalue"], "KEY=VALUE"),
        (["--limit", "5", "--tokens", "--currency", "CNY"], "exclude each other"),
        ([], "give it a limit"),
    ],
)
def test_bad_input_is_refused_and_the_file_left_untouched(cli, home, args, says):
    path = write_config(home, CONFIG)
    before = path.read_bytes()
    result = cli("budget", "set", "newone", *args)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_a_model_as_provider_colon_model_is_kept_as_both_keys(cli, home, monkeypatch):
    write_config(home, CONFIG)
    assert cli("budget", "set", "mini", "--limit", "5", "-m", "openai:gpt-4o-mini").exit_code == 0
    mini = next(b for b in json.loads(cli("budget", "list", "--json").stdout)
                if b["name"] == "mini")  # fmt: skip
    assert mini["scope"] == {"provider": "openai", "model": "gpt-4o-mini"}
    # It counts the calls recorded with that provider and model.
    _seed(home, _call("2026-11-10T10:00:00Z", "3"), _call("2026-11-10T11:00:00Z", "4",
                                                          provider="deepseek"))  # fmt: skip
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T00:00:00Z")
    status = json.loads(cli("budget", "status", "mini", "--json").stdout)
    assert status["budgets"][0]["spent"] == "3"
    clash = cli("budget", "set", "x", "--limit", "5", "-m", "openai:gpt-4o", "--provider", "qwen")
    assert clash.exit_code == 2


@pytest.mark.parametrize("name", ["", " monthly", "tab\there", "x" * 65])
def test_a_budget_name_must_be_a_name(cli, home, name):
    path = write_config(home, CONFIG)
    result = cli("budget", "set", name, "--limit", "5")
    assert result.exit_code == 2 and "is not a name" in result.stderr
    assert path.read_text("utf-8") == CONFIG


def test_a_name_that_toml_quotes_is_written_and_removed(cli, home):
    path = write_config(home, CONFIG)
    assert cli("budget", "set", "团队 a.b", "--limit", "5").exit_code == 0
    assert '[budgets."团队 a.b"]' in path.read_text("utf-8")
    assert [b["name"] for b in json.loads(cli("budget", "list", "--json").stdout)] == [
        "daily", "monthly", "团队 a.b",
    ]  # fmt: skip
    assert cli("budget", "rm", "团队 a.b").exit_code == 0
    assert path.read_text("utf-8") == CONFIG


def test_a_config_that_does_not_parse_is_never_rewritten(cli, home):
    broken = CONFIG.replace('period = "day"', 'period = "day')
    path = write_config(home, broken)
    for args in (["set", "daily", "--limit", "3"], ["rm", "daily"], ["set", "x", "--limit", "1"]):
        result = cli("budget", *args)
        assert result.exit_code == 6, result.stderr
        assert "line 12" in result.stderr
        assert path.read_text("utf-8") == broken


def test_an_edit_the_config_would_refuse_is_not_written(cli, home, monkeypatch):
    # Whatever the flags' own checks miss, the config parser catches before the write.
    monkeypatch.setattr("tokencli.settings.sections.BUDGET_PERIODS", ("day", "month"))
    path = write_config(home, CONFIG)
    result = cli("budget", "set", "monthly", "--period", "week")
    assert result.exit_code == 6, result.stderr
    assert "Not saved" in result.stderr and "must be day, week or month" in result.stderr
    assert path.read_text("utf-8") == CONFIG


def test_budget_status_and_check(cli, home, monkeypatch):
    write_config(home, CONFIG)
    # Shanghai: 2026-11-15 00:30 local is 2026-11-14T16:30Z.
    _seed(
        home,
        _call("2026-11-14T16:30:00Z", "1.40", project="blog"),  # ¥10 of monthly (blog)
        _call("2026-11-14T17:00:00Z", "1"),  # $1 more today
        _call("2026-11-14T15:59:00Z", "5"),  # 23:59 the day before: not today's
    )
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T04:00:00Z")  # noon in Shanghai
    status = cli("budget", "status", "--json")
    assert status.exit_code == 0, status.stderr
    doc = json.loads(status.stdout)
    by_name = {b["name"]: b for b in doc["budgets"]}
    assert by_name["daily"]["spent"] == "2.4" and by_name["daily"]["window"] == "2026-11-15"
    assert by_name["daily"]["percent"] == "120" and by_name["daily"]["crossed"] == [100]
    assert by_name["daily"]["exceeded_on"] == "2026-11-15"
    assert by_name["daily"]["end"] == "2026-11-15T16:00:00+00:00"
    assert by_name["monthly"]["spent"] == "10" and by_name["monthly"]["remaining"] == "40"
    assert by_name["monthly"]["crossed"] == [] and by_name["monthly"]["tz"] == "Asia/Shanghai"

    text = cli("budget", "status", "monthly")
    assert text.exit_code == 0
    line = next(x for x in text.stdout.splitlines() if x.startswith("monthly"))
    assert "¥50.00/month" in line and "¥10.00" in line and "¥40.00" in line
    assert "20.0%" in line and "2026-11-30" in line

    check = cli("budget", "check")
    assert check.exit_code == 3
    assert check.stderr.splitlines() == [
        "tokencli: budget 'daily': $2.40 of $2.00 for 2026-11-15 (120.0%), 100% reached."
    ]
    notified = cli("budget", "check", "--notify")
    assert notified.exit_code == 3
    # Through the alert channels (stderr by default), and once per threshold and period.
    assert "tokencli alert: Budget daily: 100% used" in notified.stderr
    assert "day (2026-11-15)" in notified.stderr
    again = cli("budget", "check", "--notify")
    assert again.exit_code == 3 and "tokencli alert:" not in again.stderr

    # The next local day: nothing spent yet, nothing crossed.
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T16:00:01Z")
    quiet = cli("budget", "check")
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    assert cli("budget", "status", "nosuch").exit_code == 2


def test_budget_check_with_pace(cli, home, monkeypatch):
    _seed(home, *_steady(30, "1"))
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T00:00:00Z")
    write_config(
        home, '[defaults]\ntimezone = "UTC"\n[budgets.monthly]\namount = 25\nwarn = [100]\n'
    )
    assert cli("budget", "check").exit_code == 0
    paced = cli("budget", "check", "--pace", "--json")
    assert paced.exit_code == 3
    doc = json.loads(paced.stdout)
    assert doc["crossed"] is True and doc["flagged"] == ["monthly"]
    crosses = date.fromisoformat(doc["budgets"][0]["crosses_on"])
    assert f"on pace to cross on the {ordinal(crosses.day)}" in paced.stderr


def test_budget_status_and_forecast_project_the_same(cli, home, monkeypatch):
    write_config(home, '[defaults]\ntimezone = "UTC"\n[budgets.monthly]\namount = 25\n')
    _seed(home, *_steady(30, "1"))
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T00:00:00Z")
    status = json.loads(cli("budget", "status", "--json").stdout)["budgets"][0]
    forecast = json.loads(cli("forecast", "--json").stdout)["budgets"][0]
    assert status["projected"] == forecast["projected"]
    assert status["crosses_on"] == forecast["runs_out_on"]
    assert (status["low"], status["high"]) == (forecast["low"], forecast["high"])


def test_budget_list_without_budgets(cli, home):
    result = cli("budget", "list")
    assert result.exit_code == 0 and "no budgets yet" in result.stderr
    assert json.loads(cli("budget", "list", "--json").stdout) == []


# ------------------------------------------------------------------ the parsers


@given(st.lists(st.integers(1, 1000), min_size=1, max_size=6))
def test_warn_lists_parse_to_their_sorted_percentages(values):
    assert _parse_warn(",".join(map(str, values))) == sorted(set(values))


@given(st.text(max_size=12))
def test_warn_rejects_anything_but_percentages(text):
    parts = [p.strip().removesuffix("%") for p in text.split(",")]
    if all(p.isascii() and p.isdigit() and 0 < int(p) <= 1000 for p in parts):
        return
    with pytest.raises(UsageError):
        _parse_warn(text)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**9), places=2))
def test_a_money_limit_reads_back_as_typed(value):
    parsed = _parse_limit(str(value), tokens=False)
    assert Decimal(repr(parsed)) == value


@given(st.text(max_size=10))
def test_a_limit_is_a_positive_number_or_refused(text):
    try:
        parsed = _parse_limit(text, tokens=False)
    except UsageError:
        return
    assert Decimal(repr(parsed)) > 0


def test_forecast_counts_budget_days_in_the_configured_zone(cli, home, monkeypatch):
    write_config(
        home,
        '[defaults]\ntimezone = "Asia/Shanghai"\n[budgets.daily]\namount = 5\nperiod = "day"\n',
    )
    _seed(home, _call("2026-11-14T15:59:00Z", "2"), _call("2026-11-14T16:01:00Z", "3"))
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-14T18:00:00Z")  # 02:00 on the 15th in Shanghai
    forecast = json.loads(cli("forecast", "--tz", "UTC", "--json").stdout)["budgets"][0]
    status = json.loads(cli("budget", "status", "--json").stdout)["budgets"][0]
    assert forecast["window"] == status["window"] == "2026-11-15"
    assert forecast["spent"] == status["spent"] == "3"


def test_budget_set_creates_the_config_and_flips_flags(cli, home):
    path = home / "config.toml"
    assert not path.exists()
    assert cli("budget", "set", "m", "--limit", "5", "--block", "--allow-unpriced").exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o600
    (budget,) = json.loads(cli("budget", "list", "--json").stdout)
    assert (budget["block"], budget["allow_unpriced"]) == (True, True)
    assert cli("budget", "set", "m", "--warn-only", "--refuse-unpriced").exit_code == 0
    (budget,) = json.loads(cli("budget", "list", "--json").stdout)
    assert (budget["block"], budget["allow_unpriced"], budget["limit"]) == (False, False, "5")
    # From money to tokens and back: the other limit goes.
    assert cli("budget", "set", "m", "--limit", "1000", "--tokens").exit_code == 0
    assert "amount" not in path.read_text() and "tokens = 1000" in path.read_text()
    assert cli("budget", "set", "m", "--limit", "7").exit_code == 0
    assert "tokens" not in path.read_text() and "amount = 7" in path.read_text()
    check = cli("budget", "check", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["crossed"] is False


def test_budget_check_fails_on_a_spending_spike_and_notifies_once(cli, home, monkeypatch):
    """No budget crossed, but today spent far more than the last two weeks: exit 3."""
    write_config(home, '[prices."mock:echo"]\ninput = 1000\noutput = 1000\n')
    for day in range(1, 15):
        monkeypatch.setenv("TOKENCLI_NOW", f"2026-11-{day:02d}T12:00:00Z")
        assert cli("run", "-m", "mock:echo", "one two three").exit_code == 0
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T12:00:00Z")
    assert cli("budget", "check").exit_code == 0  # today is still quiet
    for _ in range(6):
        assert cli("run", "-m", "mock:echo", "one two three").exit_code == 0
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T13:00:00Z")  # an hour after those calls
    spiked = cli("budget", "check", "--json")
    assert spiked.exit_code == 3
    doc = json.loads(spiked.stdout)
    assert doc["crossed"] and doc["flagged"] == []
    assert [a["key"] for a in doc["anomalies"]][:1] == ["anomaly:spike:2026-11-15"]
    assert "tokencli: anomaly:" in spiked.stderr
    first = cli("budget", "check", "--notify")
    assert first.exit_code == 3 and "tokencli alert:" in first.stderr
    assert "tokencli alert:" not in cli("budget", "check", "--notify").stderr


def test_a_run_that_reaches_a_threshold_alerts_once_after_its_answer(cli, home, monkeypatch):
    """No cron needed: the run that crosses 50% says so, once per threshold and period."""
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T09:00:00Z")
    write_config(
        home,
        '[prices."mock:echo"]\ninput = 1000\noutput = 1000\n'
        "[budgets.daily]\namount = 0.02\nperiod = 'day'\nwarn = [50, 100]\n",
    )
    first = cli("run", "-m", "mock:echo", "one two three")  # 6 tokens: $0.006, 30%
    assert first.exit_code == 0 and "tokencli alert" not in first.stderr
    second = cli("run", "-m", "mock:echo", "one two three")  # $0.012: 60%
    assert second.stdout == "one two three\n"
    assert "tokencli alert: Budget daily: 50% used" in second.stderr
    third = cli("run", "-m", "mock:echo", "one two three")  # 90%: nothing new
    assert "tokencli alert" not in third.stderr
    rows = ledger_rows(home, "SELECT key, status FROM alerts ORDER BY key")
    assert [(r["key"], r["status"]) for r in rows] == [("budget:daily:50:2026-11-15", "sent")]
