"""`tokencli report`: totals equal sums computed independently from the rows.

A ledger of random calls spanning a year boundary is built through the
ledger's import path; every report figure is then checked against plain Python
over the same Call objects, in several time zones (whole-hour, DST and
half-hour offsets) and periods whose edges fall inside rollup blocks.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import write_config
from tokencli.calls.usage import Usage
from tokencli.ids import new_id
from tokencli.insights.display import warnings as display_warnings
from tokencli.insights.report import build_report, parse_by
from tokencli.ledger import Call, Ledger, format_ts, parse_ts
from tokencli.scope import Scope
from tokencli.settings.loader import Currencies
from tokencli.window import resolve_period

MODELS = [
    ("openai", "gpt-4o-mini", "USD"),
    ("anthropic", "claude-haiku", "USD"),
    ("deepseek", "chat", "CNY"),
]
STATUSES = ["ok"] * 12 + ["error", "interrupted", "cached", "blocked", "pending"]
RATES = Currencies("USD", {"CNY": Decimal("0.14")})
START = datetime(2025, 11, 20, tzinfo=UTC)


def random_calls(n: int, seed: int = 3) -> list[Call]:
    rng = random.Random(seed)
    calls = []
    for _ in range(n):
        when = START + timedelta(
            seconds=rng.randrange(0, 80 * 86400), microseconds=rng.randrange(10**6)
        )
        provider, model, currency = rng.choice(MODELS)
        status = rng.choice(STATUSES)
        cost = None if rng.random() < 0.05 else Decimal(rng.randrange(1, 10**7)) / 10**9
        tags = {"step": rng.choice(["a", "b"])} if rng.random() < 0.5 else {}
        calls.append(
            Call(
                id=new_id(int(when.timestamp() * 1000)),
                ts=format_ts(when),
                provider=provider,
                model=model,
                status=status,
                host="elsewhere",  # not this host: pending rows stay pending
                project=rng.choice(["blog", None]),
                tags=tags,
                usage=Usage(
                    input_tokens=rng.randrange(1000),
                    output_tokens=rng.randrange(500),
                    cached_input_tokens=rng.randrange(50),
                ),
                cost=cost,
                currency=currency if cost is not None else None,
                duration_ms=rng.randrange(50, 20_000),
            )
        )
    return calls


@pytest.fixture(scope="module")
def ledger_and_calls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ledger, list[Call]]:
    calls = random_calls(6000)
    ledger = Ledger.open(tmp_path_factory.mktemp("report") / "ledger.db")
    assert ledger is not None
    ledger.import_calls(calls)
    return ledger, calls


@functools.cache
def _when(ts: str) -> datetime:
    return parse_ts(ts)


def _usd(call: Call) -> Decimal:
    if call.cost is None:
        return Decimal(0)
    return call.cost * (Decimal("0.14") if call.currency == "CNY" else 1)


def expected(
    calls: list[Call], start: datetime, end: datetime, keep: Callable[[Call], bool] = lambda c: True
) -> dict[str, object]:
    rows = [c for c in calls if start <= _when(c.ts) < end and c.status != "pending" and keep(c)]
    spent = [c for c in rows if c.status != "cached"]
    return {
        "calls": len(rows),
        "ok": sum(c.status == "ok" for c in rows),
        "errors": sum(c.status in ("error", "interrupted") for c in rows),
        "cached": sum(c.status == "cached" for c in rows),
        "input": sum(c.usage.input_tokens for c in spent),
        "output": sum(c.usage.output_tokens for c in spent),
        "cost": sum((_usd(c) for c in spent), Decimal(0)),
        "savings": sum((_usd(c) for c in rows if c.status == "cached"), Decimal(0)),
        "unpriced": sum(c.status in ("ok", "interrupted") and c.cost is None for c in rows),
    }


def actual(totals) -> dict[str, object]:
    return {
        "calls": totals.calls,
        "ok": totals.ok,
        "errors": totals.errors,
        "cached": totals.cached,
        "input": totals.input_tokens,
        "output": totals.output_tokens,
        "cost": totals.cost,
        "savings": totals.savings,
        "unpriced": totals.unpriced_calls,
    }


ZONES = ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"]
NOW = datetime(2026, 1, 25, 13, 7, 41, 250_000, tzinfo=UTC)


@pytest.mark.parametrize("zone_name", ZONES)
@pytest.mark.parametrize(
    "period_args",
    [
        {"month": "2025-12"},
        {"month": "2026-01"},  # this month, across the year boundary from December
        {"since": "2025-12-30T17:45:12", "until": "2026-01-02T03:30"},
        {"last": "9d"},
        {"last": "30h"},
    ],
)
def test_totals_and_daily_groups_equal_sums_over_the_rows(ledger_and_calls, zone_name, period_args):
    ledger, calls = ledger_and_calls
    tz = ZoneInfo(zone_name)
    period = resolve_period(now=NOW, tz=tz, **period_args)
    report = build_report(ledger, period, tz, by=("day",), currencies=RATES, now=NOW)
    assert actual(report.totals) == expected(calls, period.start, period.end)
    # Each local day's group holds exactly the calls of that local day.
    for group in report.groups:
        day = datetime.fromisoformat(group.key[0]).date()
        day_start = max(
            period.start, datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        )
        next_day = day + timedelta(days=1)
        day_end = min(
            period.end,
            datetime(next_day.year, next_day.month, next_day.day, tzinfo=tz).astimezone(UTC),
        )
        assert actual(group.totals) == expected(calls, day_start, day_end), group.key
    assert sum(g.totals.calls for g in report.groups) == report.totals.calls
    assert dict(report.daily) == {
        datetime.fromisoformat(g.key[0]).date(): g.totals.cost for g in report.groups
    }


def test_the_month_boundary_is_local_midnight(ledger_and_calls):
    """A call at 23:30 UTC on Dec 31 is January's in Berlin and December's in UTC."""
    ledger, calls = ledger_and_calls
    for zone_name, first in (
        ("Europe/Berlin", datetime(2025, 12, 31, 23, tzinfo=UTC)),
        ("UTC", datetime(2026, 1, 1, tzinfo=UTC)),
    ):
        tz = ZoneInfo(zone_name)
        period = resolve_period(now=NOW, tz=tz, month="2026-01")
        assert period.start == first
        report = build_report(ledger, period, tz, currencies=RATES, compare=False)
        assert actual(report.totals) == expected(
            calls, first, datetime(2026, 2, 1, tzinfo=tz).astimezone(UTC)
        )


@pytest.mark.parametrize(
    "by",
    [
        ("provider",),
        ("model", "week"),
        ("tag:step",),
        ("project", "day"),
        ("prompt",),
        ("month", "provider"),
    ],
)
def test_groups_partition_the_calls(ledger_and_calls, by):
    ledger, calls = ledger_and_calls
    tz = ZoneInfo("Europe/Berlin")
    period = resolve_period(now=NOW, tz=tz, since="2025-12-10", until="2026-01-20T12:00")
    report = build_report(ledger, period, tz, by=parse_by(by), currencies=RATES, now=NOW)
    assert actual(report.totals) == expected(calls, period.start, period.end)
    assert sum(g.totals.calls for g in report.groups) == report.totals.calls
    assert sum((g.totals.cost for g in report.groups), Decimal(0)) == report.totals.cost
    if by == ("provider",):
        for group in report.groups:
            assert actual(group.totals) == expected(
                calls, period.start, period.end, lambda c, p=group.key[0]: c.provider == p
            )
        # The previous period's cost of each key, for the change column.
        previous = resolve_period(now=NOW, tz=tz, since="2025-10-31T12:00", until="2025-12-10")
        for group in report.groups:
            assert (
                group.previous_cost
                == expected(
                    calls, previous.start, previous.end, lambda c, p=group.key[0]: c.provider == p
                )["cost"]
            )
    if by == ("tag:step",):
        assert {g.key for g in report.groups} == {("a",), ("b",), ("",)}
        for group in report.groups:
            assert (
                group.totals.calls
                == expected(
                    calls,
                    period.start,
                    period.end,
                    lambda c, v=group.key[0]: c.tags.get("step", "") == v,
                )["calls"]
            )


def test_filters_select_the_same_calls_as_python(ledger_and_calls):
    ledger, calls = ledger_and_calls
    tz = ZoneInfo("Asia/Kolkata")
    period = resolve_period(now=NOW, tz=tz, month="2025-12")
    for flt, keep in (
        (Scope(provider="deepseek"), lambda c: c.provider == "deepseek"),
        (Scope(project="blog"), lambda c: c.project == "blog"),
        (Scope(tags=(("step", "b"),)), lambda c: c.tags.get("step") == "b"),
        (
            Scope(model="gpt-4o-mini", project="blog"),
            lambda c: c.model == "gpt-4o-mini" and c.project == "blog",
        ),
    ):
        report = build_report(ledger, period, tz, by=("day",), flt=flt, currencies=RATES)
        assert actual(report.totals) == expected(calls, period.start, period.end, keep), flt


def test_currency_without_a_rate_is_left_out_and_named(ledger_and_calls):
    ledger, calls = ledger_and_calls
    tz = ZoneInfo("UTC")
    period = resolve_period(now=NOW, tz=tz, month="2025-12")
    report = build_report(ledger, period, tz, currencies=Currencies("USD", {}))
    assert report.unconverted == ["CNY"]
    usd_only = expected(calls, period.start, period.end, lambda c: c.currency != "CNY")
    assert report.totals.cost == usd_only["cost"]
    eur = build_report(
        ledger,
        period,
        tz,
        currencies=Currencies("EUR", {"USD": Decimal("0.9"), "CNY": Decimal("0.13")}),
    )
    rows = [
        c
        for c in calls
        if period.start <= parse_ts(c.ts) < period.end
        and c.status not in ("pending", "cached")
        and c.cost is not None
    ]
    assert eur.totals.cost == sum(
        (c.cost * (Decimal("0.13") if c.currency == "CNY" else Decimal("0.9")) for c in rows),
        Decimal(0),
    )


def test_models_top_calls_and_busiest_hours(ledger_and_calls):
    ledger, calls = ledger_and_calls
    tz = ZoneInfo("UTC")
    period = resolve_period(now=NOW, tz=tz, month="2025-12")
    report = build_report(ledger, period, tz, currencies=RATES, top=5)
    in_period = [c for c in calls if period.start <= parse_ts(c.ts) < period.end]
    spent = [c for c in in_period if c.status not in ("pending", "cached") and c.cost is not None]
    assert [t.id for t in report.top_calls] == [
        c.id for c in sorted(spent, key=lambda c: (-_usd(c), c.ts))[:5]
    ]
    for stats in report.models:
        durations = sorted(
            c.duration_ms
            for c in in_period
            if c.status == "ok" and (c.provider, c.model) == (stats.provider, stats.model)
        )
        for q, value in ((0.5, stats.p50_ms), (0.95, stats.p95_ms), (0.99, stats.p99_ms)):
            exact = durations[max(0, -(-int(q * len(durations) * 1000) // 1000) - 1)]
            assert value is not None and abs(value - exact) <= exact * 0.05 + 1
        mine = expected(
            calls,
            period.start,
            period.end,
            lambda c, s=stats: (c.provider, c.model) == (s.provider, s.model),
        )
        assert stats.cost == mine["cost"]
        assert stats.price_per_1k == (mine["cost"] * 1000 / (mine["input"] + mine["output"]))
    hours: dict[int, int] = defaultdict(int)
    for c in in_period:
        if c.status != "pending":
            hours[parse_ts(c.ts).hour] += 1
    assert {h.hour: h.calls for h in report.busiest_hours} == dict(hours)
    assert report.busiest_hours[0].calls == max(hours.values())


# ------------------------------------------------------------------ the command


def _seed(home: Path) -> list[Call]:
    calls = random_calls(400, seed=11)
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    ledger.import_calls(calls)
    ledger.close()
    write_config(home, '[currency]\nreport = "USD"\nrates = { CNY = 0.14 }\n')
    return calls


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"])
@pytest.mark.parametrize("by", [("provider",), ("project", "tag:step")])
def test_pruned_months_keep_their_totals(tmp_path: Path, zone_name: str, by: tuple[str, ...]):
    """After `ledger prune`, a pruned month reports the same totals and groups in any zone."""
    from tokencli.ledger.retention import prune

    calls = random_calls(3000, seed=11)
    ledger = Ledger.open(tmp_path / "ledger.db")
    assert ledger is not None
    ledger.import_calls(calls)
    tz = ZoneInfo(zone_name)
    december = resolve_period(now=NOW, tz=tz, month="2025-12")
    january = resolve_period(now=NOW, tz=tz, month="2026-01")
    before = build_report(ledger, december, tz, by=by, currencies=RATES, top=3)
    assert before.top_calls and before.pruned_until is None

    done = prune(ledger, "2026-01-01T00:00:00.000000Z", chunk=500)
    old = [c for c in calls if c.ts < "2026-01-01" and c.status != "pending"]
    assert done.calls == len(old) > 1000
    after = build_report(ledger, december, tz, by=by, currencies=RATES, top=3)
    assert (
        actual(after.totals)
        == actual(before.totals)
        == expected(calls, december.start, december.end)
    )
    assert [(g.key, g.totals) for g in after.groups] == [(g.key, g.totals) for g in before.groups]
    assert after.models == before.models  # latency percentiles included
    # The calls themselves are gone: only those after the cutoff can be listed.
    assert all(t.ts >= "2026-01-01" for t in after.top_calls)
    assert after.top_calls != before.top_calls
    last = parse_ts(max(c.ts for c in old))  # the end of its quarter hour
    assert after.pruned_until == format_ts(
        last.replace(minute=last.minute // 15 * 15, second=0, microsecond=0) + timedelta(minutes=15)
    )
    assert "were pruned" in " ".join(display_warnings(after))
    # January east of UTC starts on December 31st (UTC): pruned time, exact totals.
    edge = build_report(ledger, january, tz, currencies=RATES, top=3)
    assert (edge.pruned_until is not None) == (january.start < datetime(2026, 1, 1, tzinfo=UTC))
    assert actual(edge.totals) == expected(calls, january.start, january.end)
    february = resolve_period(now=NOW, tz=tz, month="2026-02")
    later = build_report(ledger, february, tz, currencies=RATES, top=3)
    assert later.pruned_until is None and later.top_calls


def test_report_json_csv_markdown_html(cli, home, monkeypatch):
    calls = _seed(home)
    monkeypatch.setenv("TOKENCLI_NOW", "2026-01-25T13:07:41Z")
    result = cli("report", "--month", "2025-12", "--tz", "UTC", "--by", "provider", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    start, end = datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    assert Decimal(doc["totals"]["cost"]) == expected(calls, start, end)["cost"]
    assert doc["totals"]["calls"] == expected(calls, start, end)["calls"]

    result = cli(
        "report", "--month", "2025-12", "--tz", "UTC", "--by", "provider,day", "--format", "csv"
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sum(Decimal(r["cost"]) for r in rows) == expected(calls, start, end)["cost"]
    assert sum(int(r["calls"]) for r in rows) == expected(calls, start, end)["calls"]

    md = cli("report", "--month", "2025-12", "--format", "markdown")
    assert md.exit_code == 0 and md.stdout.startswith("# tokencli report: 2025-12")

    out = home / "december.html"
    html = cli("report", "--month", "2025-12", "--format", "html", "--output", str(out))
    assert html.exit_code == 0 and html.stdout == ""
    text = out.read_text("utf-8")
    assert (
        text.lstrip().lower().startswith("<!doctype html>")
        and "<svg" in text
        and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


def test_report_table_in_a_pipe_and_chart(cli, home, monkeypatch):
    _seed(home)
    monkeypatch.setenv("TOKENCLI_NOW", "2026-01-25T13:07:41Z")
    result = cli("report", "--last", "60d", "--chart", "--by", "model")
    assert result.exit_code == 0, result.stderr
    assert (
        "Spend" in result.stdout and "By model" in result.stdout and "Daily spend" in result.stdout
    )
    assert "MODEL" in result.stdout and "\x1b[" not in result.stdout  # plain in a pipe


def test_report_on_an_empty_home_is_empty_not_an_error(cli, home):
    result = cli("report", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["calls"] == 0
    assert not (home / "ledger.db").exists()  # a read command creates nothing


@pytest.mark.parametrize(
    "args, words",
    [
        (["--month", "2026-13"], "--month"),
        (["--month", "2026-01", "--last", "7d"], "only one"),
        (["--by", "color"], "--by 'color'"),
        (["--by", "day,week"], "one of hour"),
        (["--tz", "Mars/Olympus"], "time zone"),
        (["--last", "soon"], "--last"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "later than"),
        (["--format", "pdf"], "pdf"),
        (["--tag", "novalue"], "KEY=VALUE"),
    ],
)
def test_bad_options_are_one_sentence_and_exit_2(cli, home, args, words):
    result = cli("report", *args)
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
