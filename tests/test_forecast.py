"""Forecasts: the arithmetic on series with a known answer, and `tokencli forecast` end to end."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import write_config
from tokencli.ids import new_id
from tokencli.insights import forecast
from tokencli.ledger import Call, Ledger, format_ts
from tokencli.window import calendar_days

# ------------------------------------------------------------------ the arithmetic


def test_a_constant_series_projects_itself_with_no_spread():
    result = forecast.outlook(
        [10.0] * 56, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=9
    )
    assert result.method == "weekday+trend"
    assert sum(result.daily) == pytest.approx(100.0, abs=1e-6)
    assert result.low == pytest.approx(100.0, abs=1e-6)
    assert result.high == pytest.approx(100.0, abs=1e-6)


def test_a_weekly_pattern_is_kept_exactly():
    # Mondays to Fridays 10, weekends nothing; the history starts on a Monday.
    week = [10.0] * 5 + [0.0] * 2
    result = forecast.outlook(week * 8, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=13)
    # Today is a Monday again: two whole weeks ahead.
    assert [round(v, 6) for v in result.daily] == week * 2
    model = forecast.fit(week * 8, 0)
    assert model.weekday[:5] == pytest.approx((1.4,) * 5)
    assert model.weekday[5:] == pytest.approx((0.0, 0.0))


def test_two_weeks_of_pattern_count_half():
    week = [10.0] * 5 + [0.0] * 2
    factors = forecast.weekday_factors(week * 2, 0)
    assert factors[0] == pytest.approx(1.2)  # halfway from 1 to 1.4
    assert forecast.weekday_factors(week, 0) == (1.0,) * 7  # one week: no pattern yet


def test_a_one_off_spike_does_not_raise_the_days_after_it():
    rng = random.Random(5)
    days = [10 * rng.uniform(0.9, 1.1) for _ in range(56)]
    days[-6] = 400.0  # a runaway batch job last week
    result = forecast.outlook(days, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=19)
    assert sum(result.daily) == pytest.approx(200, rel=0.08)
    # The straight line from the start of the window would say far more.
    assert forecast.linear_burn(sum(days[-10:]), 10, 30) > 1300


def test_a_lasting_change_is_followed_within_days():
    days = [10.0] * 50 + [30.0] * 6  # a new project started six days ago
    result = forecast.outlook(days, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=9)
    assert sum(result.daily) == pytest.approx(300, rel=0.1)


def test_a_steady_rise_is_projected_upwards():
    days = [10 + 0.5 * t for t in range(56)]  # last day 37.5
    result = forecast.outlook(days, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=9)
    truth = sum(10 + 0.5 * t for t in range(56, 66))  # 402.5
    flat = 37.5 * 10
    assert flat < sum(result.daily) <= truth * 1.01  # damped: up, not beyond the line


def test_leading_days_without_spend_are_not_history():
    result = forecast.outlook(
        [0.0] * 50 + [8.0] * 6, 0, today_so_far=0.0, today_elapsed=0.0, days_after_today=4
    )
    assert result.method == "trend"  # six days: too few for a weekday pattern
    assert sum(result.daily) == pytest.approx(40.0, abs=1e-6)


def test_today_only_and_nothing_at_all():
    result = forecast.outlook([], 0, today_so_far=6.0, today_elapsed=0.25, days_after_today=2)
    assert result.method == "today only"
    assert list(result.daily) == pytest.approx([18.0, 24.0, 24.0])
    empty = forecast.outlook([0.0] * 56, 0, today_so_far=0, today_elapsed=0.5, days_after_today=3)
    assert empty.method == "no history" and sum(empty.daily) == 0 and empty.high == 0


def test_the_rest_of_today_is_the_part_of_the_day_still_to_come():
    result = forecast.outlook(
        [10.0] * 56, 0, today_so_far=3.0, today_elapsed=0.75, days_after_today=0
    )
    assert list(result.daily) == pytest.approx([2.5])


def test_the_interval_holds_the_projection_and_is_reproducible():
    rng = random.Random(9)
    days = [10 * rng.lognormvariate(0, 0.4) for _ in range(56)]
    one = forecast.outlook(days, 2, today_so_far=1.0, today_elapsed=0.1, days_after_today=15)
    two = forecast.outlook(days, 2, today_so_far=1.0, today_elapsed=0.1, days_after_today=15)
    assert one.low < sum(one.daily) < one.high
    assert (one.low, one.high) == (two.low, two.high)
    assert len(one.paths) == forecast.PATHS


def test_crossing_chance_and_linear_burn():
    assert forecast.crossing(90, [5, 5, 5], 100) == 1
    assert forecast.crossing(90, [1, 1], 100) is None
    assert forecast.chance_of_reaching(90, [[5, 5], [1, 1], [20]], 100) == pytest.approx(2 / 3)
    assert forecast.linear_burn(100, 10, 30) == 300
    assert forecast.linear_burn(0, 0, 30) == 0


def test_a_future_that_reaches_the_limit_exactly_counts_as_running_out():
    assert forecast.crossing(90, [4, 6, 1], 100) == 1
    assert forecast.chance_of_reaching(90, [[4, 6], [4, 5], [10]], 100) == pytest.approx(2 / 3)


def test_budget_windows():
    sunday = date(2026, 11, 22)
    assert calendar_days("day", sunday) == (sunday, sunday, "2026-11-22")
    assert calendar_days("week", sunday) == (date(2026, 11, 16), sunday, "2026-W47")
    assert calendar_days("month", sunday) == (date(2026, 11, 1), date(2026, 11, 30), "2026-11")
    assert calendar_days("month", date(2026, 12, 31))[1] == date(2026, 12, 31)


# ------------------------------------------------------------------ the command

TOKYO = ZoneInfo("Asia/Tokyo")


def _seed(home, per_day: dict[str, Decimal], days: int = 70, tz=UTC, currency="USD") -> None:
    """One call per provider each local noon for `days` days up to 2026-11-14."""
    calls = []
    for back in range(days):
        day = date(2026, 11, 14) - timedelta(days=back)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz).astimezone(UTC)
        for provider, cost in per_day.items():
            calls.append(
                Call(
                    id=new_id(int(noon.timestamp() * 1000)),
                    ts=format_ts(noon),
                    provider=provider,
                    model="m",
                    status="ok",
                    project="blog" if provider == "openai" else None,
                    tags={"client": "acme"} if provider == "openai" else {},
                    cost=cost,
                    currency=currency,
                    duration_ms=100,
                )
            )
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    ledger.import_calls(calls)
    ledger.close()


@pytest.fixture
def ten_a_day(home, monkeypatch):
    """$6 on openai and $4 on anthropic every day; now is the start of 2026-11-15 (UTC)."""
    _seed(home, {"openai": Decimal(6), "anthropic": Decimal(4)})
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T00:00:00Z")
    return home


def test_forecast_json_on_a_steady_ledger(cli, ten_a_day):
    result = cli("forecast", "--tz", "UTC", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["month"], doc["day"], doc["days_in_month"]) == ("2026-11", 15, 30)
    total = doc["total"]
    assert Decimal(total["spent"]) == 140  # 14 whole days of $10
    assert Decimal(total["projected"]) == 300  # and 16 more
    assert Decimal(total["low"]) == Decimal(total["high"]) == 300
    assert Decimal(total["linear_burn"]) == 300
    assert total["method"] == "weekday+trend"
    assert doc["budgets"] == [] and doc["unconverted"] == []


def test_forecast_by_provider_and_filters(cli, ten_a_day):
    doc = json.loads(cli("forecast", "--tz", "UTC", "--by", "provider", "--json").stdout)
    assert [(g["key"], Decimal(g["projected"])) for g in doc["groups"]] == [
        ({"provider": "openai"}, 180),
        ({"provider": "anthropic"}, 120),
    ]
    doc = json.loads(cli("forecast", "--tz", "UTC", "--tag", "client=acme", "--json").stdout)
    assert Decimal(doc["total"]["projected"]) == 180
    doc = json.loads(cli("forecast", "--tz", "UTC", "--provider", "anthropic", "--json").stdout)
    assert Decimal(doc["total"]["spent"]) == 56


def test_budgets_run_out_or_were_exceeded(cli, ten_a_day):
    write_config(
        ten_a_day,
        """
[currency]
rates = { EUR = 1.25 }

[budgets.month]
amount = 250

[budgets.small]
amount = 100

[budgets.openai-week]
amount = 50
period = "week"
provider = "openai"

[budgets.acme-eur]
amount = 100
currency = "EUR"
tag = "client=acme"

[budgets.daily]
amount = 20
period = "day"
""",
    )
    result = cli("forecast", "--tz", "UTC", "--json", "--budget", "400")
    assert result.exit_code == 0, result.stderr
    budgets = {b["name"]: b for b in json.loads(result.stdout)["budgets"]}
    month = budgets["month"]
    # $140 by the 15th, $10 a day after: $250 is reached on the 25th.
    assert (month["window"], month["runs_out_on"], month["exceeded_on"]) == (
        "2026-11",
        "2026-11-25",
        None,
    )
    assert month["chance_runs_out"] == 1.0
    small = budgets["small"]
    assert (small["exceeded_on"], small["runs_out_on"]) == ("2026-11-10", None)
    # Today is Sunday 2026-11-15: openai's $6 a day since Monday is $36, $42 by tonight.
    week = budgets["openai-week"]
    assert (week["window"], Decimal(week["spent"]), Decimal(week["projected"])) == (
        "2026-W46",
        36,
        42,
    )
    assert week["scope"] == {"provider": "openai"} and week["runs_out_on"] is None
    # 100 EUR = 125 USD of acme's $6 a day: $84 spent (14 days), reached on day 21 (126).
    acme = budgets["acme-eur"]
    assert Decimal(acme["spent"]) == Decimal("67.2")  # 84 USD in EUR
    assert acme["runs_out_on"] == "2026-11-21" and acme["currency"] == "EUR"
    assert budgets["daily"]["runs_out_on"] is None and budgets["daily"]["window"] == "2026-11-15"
    assert budgets["--budget"]["runs_out_on"] is None
    assert budgets["--budget"]["chance_runs_out"] == 0.0


def test_a_budget_reached_exactly_counts_as_exceeded(cli, ten_a_day):
    # $10 a day: the month's spend reaches exactly $140 at the end of the 14th.
    write_config(ten_a_day, "[budgets.exact]\namount = 140\n")
    result = cli("forecast", "--tz", "UTC", "--json", "--budget", "140")
    assert result.exit_code == 0, result.stderr
    budgets = json.loads(result.stdout)["budgets"]
    assert [b["name"] for b in budgets] == ["exact", "--budget"]
    for budget in budgets:
        assert Decimal(budget["spent"]) == Decimal(budget["amount"]) == 140
        assert (budget["exceeded_on"], budget["runs_out_on"]) == ("2026-11-14", None)
        assert budget["chance_runs_out"] == 1.0


def test_week_budget_counts_from_monday(cli, home, monkeypatch):
    _seed(home, {"openai": Decimal(6)})
    write_config(home, '[budgets.w]\namount = 50\nperiod = "week"\n')
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-12T00:00:00Z")  # a Thursday
    doc = json.loads(cli("forecast", "--tz", "UTC", "--json").stdout)
    week = doc["budgets"][0]
    # Monday to Wednesday: $18; Thursday to Sunday $24 more: $42 < $50.
    assert week["window"] == "2026-W46"
    assert Decimal(week["spent"]) == 18 and Decimal(week["projected"]) == 42
    assert week["runs_out_on"] is None


def test_days_are_local_days(cli, home, monkeypatch):
    # Calls at noon in Tokyo, and "now" is the start of 2026-11-15 in Tokyo.
    _seed(home, {"openai": Decimal(10)}, tz=TOKYO)
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-14T15:00:00Z")
    doc = json.loads(cli("forecast", "--tz", "Asia/Tokyo", "--json").stdout)
    assert doc["day"] == 15 and doc["tz"] == "Asia/Tokyo"
    assert Decimal(doc["total"]["spent"]) == 140
    assert Decimal(doc["total"]["projected"]) == 300


def test_the_table_in_a_pipe(cli, ten_a_day):
    write_config(ten_a_day, "[budgets.month]\namount = 250\n")
    result = cli("forecast", "--tz", "UTC", "--by", "provider")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "tokencli forecast: 2026-11 (UTC), day 15 of 30" in out
    assert "$140.00" in out and "$300.00" in out
    assert "runs out 2026-11-25" in out
    assert "PROVIDER" in out and "\x1b[" not in out


def test_an_empty_home_forecasts_nothing(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-15T10:00:00Z")
    result = cli("forecast", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert Decimal(doc["total"]["projected"]) == 0 and doc["total"]["method"] == "no history"
    assert not (home / "ledger.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--budget", "abc"), "--budget 'abc' is not an amount above 0."),
        (("--budget", "-5"), "--budget '-5' is not an amount above 0."),
        (("--by", "day"), "forecast projects the month as a whole"),
        (("--by", "colour"), "--by 'colour' is not something a report can group by."),
        (("--tag", "nokey"), "--tag 'nokey' is not KEY=VALUE."),
    ],
)
def test_bad_options_exit_2_with_one_sentence(cli, home, args, message):
    result = cli("forecast", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[budgets.b]\nperiod = 'month'\n", "budgets.b has no limit"),
        ("[budgets.b]\namount = 0\n", "budgets.b.amount must be greater than 0"),
        ("[budgets.b]\namount = 5\nperiod = 'year'\n", "must be day, week or month"),
        ("[budgets.b]\namount = 5\ntag = 'x'\n", "budgets.b.tag must be KEY=VALUE"),
        ("[budgets.b]\namount = 5\ncolour = 'red'\n", "budgets.b.colour is not a known setting"),
        ("[budgets.b]\namount = 5\ncurrency = 'dollars'\n", "three-letter currency code"),
    ],
)
def test_bad_budget_config_exits_6(cli, home, config, message):
    write_config(home, config)
    result = cli("forecast")
    assert result.exit_code == 6
    assert message in result.stderr
    assert "(line " in result.stderr


def test_a_budget_currency_without_a_rate_is_a_config_error(cli, ten_a_day):
    """A money budget it cannot convert could never be enforced: refused where it is written."""
    write_config(ten_a_day, "[budgets.b]\namount = 5\ncurrency = 'GBP'\n")
    result = cli("forecast", "--json")
    assert result.exit_code == 6
    assert "budgets.b.currency is GBP, which has no rate into USD" in result.stderr
