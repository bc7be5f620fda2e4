"""One time grammar (tokencli.window) and one Scope, for every command that takes them."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokencli.calls.usage import Usage
from tokencli.errors import UsageError
from tokencli.ids import new_id
from tokencli.insights.report import build_report
from tokencli.ledger import Call, Ledger, format_ts
from tokencli.scope import Scope
from tokencli.window import (
    DAY_UNITS,
    EARLIEST,
    LATEST,
    UNITS,
    Span,
    calendar_window,
    parse_point,
    parse_span,
    previous_period,
    resolve_period,
    retention_cutoff,
    zone,
)

NOW = datetime(2026, 3, 31, 12, 30, 15, 500_000, tzinfo=UTC)
ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns")]
FIXED = {"min": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
FIXED["w"] = timedelta(days=7)
# Largest amounts that stay after 1900 from 1990 on (85 years back).
REACH = {"min": 44_000_000, "h": 740_000, "d": 31_000, "w": 4_400, "mo": 1_020, "y": 85}

zones = st.sampled_from(ZONES)
nows = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


def spans(units: tuple[str, ...] = UNITS, minimum: int = 1) -> st.SearchStrategy[Span]:
    return st.sampled_from(units).flatmap(
        lambda unit: st.builds(Span, st.integers(minimum, REACH[unit]), st.just(unit))
    )


def months_between(earlier: date, later: date) -> int:
    return later.year * 12 + later.month - earlier.year * 12 - earlier.month


# ------------------------------------------------------------------ spans


@given(spans(), st.sampled_from(["", " ", "  "]), st.booleans())
def test_every_span_parses_back_to_itself(span, pad, upper):
    text = f"{pad}{span.amount}{pad}{span.unit.upper() if upper else span.unit}{pad}"
    assert parse_span(text, "--last") == span
    assert str(parse_span(str(span), "--last")) == str(span)


@given(spans(("min", "h", "d", "w"), minimum=0), zones)
def test_a_fixed_span_is_exactly_that_long_before_now(span, tz):
    assert parse_point(str(span), NOW, tz) == NOW - FIXED[span.unit] * span.amount


@given(spans(("mo", "y")), zones, nows, st.integers(1, 31))
def test_a_month_span_moves_by_the_calendar_and_keeps_the_local_time(span, tz, now, day):
    # Noon local: no DST change happens at noon, so the wall-clock time must survive.
    local = now.astimezone(tz).replace(hour=12, minute=0, second=0, microsecond=0)
    last = calendar.monthrange(local.year, local.month)[1]
    local = local.replace(day=min(day, last))
    got = parse_point(str(span), local.astimezone(UTC), tz).astimezone(tz)
    months = span.amount * (12 if span.unit == "y" else 1)
    assert months_between(got.date(), local.date()) == months
    assert got.day == min(local.day, calendar.monthrange(got.year, got.month)[1])
    assert (got.hour, got.minute) == (12, 0)


@given(st.integers(0, 10**15), zones)
def test_a_bare_m_is_refused_with_both_spellings(n, tz):
    for option, call in (
        ("--since", lambda t: parse_point(t, NOW, tz)),
        ("--last", lambda t: resolve_period(now=NOW, tz=tz, last=t)),
        ("--older-than", lambda t: retention_cutoff(t, NOW)),
    ):
        with pytest.raises(UsageError) as raised:
            call(f"{n}m")
        assert raised.value.message == (
            f"{option} '{n}m' is ambiguous: write {n}min for minutes or {n}mo for months."
        )


@given(st.integers(10**9, 10**60), st.sampled_from(UNITS), zones)
def test_huge_spans_are_a_usage_error_everywhere(n, unit, tz):
    text = f"{n}{unit}"
    with pytest.raises(UsageError, match="out of range"):
        parse_point(text, NOW, tz, option="--since")
    with pytest.raises(UsageError, match="out of range"):
        resolve_period(now=NOW, tz=tz, last=text)
    if unit in DAY_UNITS:
        with pytest.raises(UsageError, match="out of range"):
            retention_cutoff(text, NOW)


GRAMMARISH = st.from_regex(
    r"[ 0-9]{0,25}(min|m|mo|h|d|w|y|months|MO|x|-|:|T|Z|\+|\.)?[0-9 :TZ+\-]{0,20}",
    fullmatch=True,
)
ISOISH = st.from_regex(
    r"[0-9]{4}-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?)?)?",
    fullmatch=True,
)
ANY_TEXT = st.one_of(st.text(), GRAMMARISH, ISOISH)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT, zones)
def test_any_text_is_parsed_or_refused_with_a_usage_error(text, tz):
    for parse in (
        lambda: parse_point(text, NOW, tz),
        lambda: parse_span(text, "--last"),
        lambda: retention_cutoff(text, NOW),
        lambda: resolve_period(now=NOW, tz=tz, last=text),
        lambda: resolve_period(now=NOW, tz=tz, month=text),
        lambda: resolve_period(now=NOW, tz=tz, since=text),
        lambda: resolve_period(now=NOW, tz=tz, until=text),
        lambda: zone(text),
    ):
        try:
            result = parse()
        except UsageError as exc:
            assert exc.message and "\n" not in str(exc)
            continue
        if isinstance(result, tuple) and len(result) == 4:  # a Window
            assert EARLIEST - timedelta(days=1) <= result.start < result.end
            assert result.end <= LATEST + timedelta(days=2)
            previous_period(result, tz)  # and the window before it exists


# ------------------------------------------------------------------ windows


@given(st.integers(1, 1000), zones, nows)
def test_last_days_are_whole_local_days_ending_now(n, tz, now):
    window = resolve_period(now=now, tz=tz, last=f"{n}d")
    start = window.start.astimezone(tz)
    assert (start.hour, start.minute, start.second) == (0, 0, 0)
    assert start.date() == now.astimezone(tz).date() - timedelta(days=n - 1)
    assert window.end >= now and window.end - now < timedelta(seconds=1)
    assert window.label == f"last {n}d"


@given(st.integers(1, 600), zones, nows)
def test_last_months_start_on_the_first_n_minus_one_months_back(n, tz, now):
    window = resolve_period(now=now, tz=tz, last=f"{n}mo")
    start = window.start.astimezone(tz)
    # The first instant of the 1st: midnight, or later where clocks skipped it
    # (Asia/Kolkata went from +05:30 to +06:30 at midnight on 1941-10-01).
    assert start.day == 1 and (window.start - timedelta(seconds=1)).astimezone(tz).day != 1
    assert months_between(start.date(), now.astimezone(tz).date()) == n - 1
    assert resolve_period(now=now, tz=tz, last=f"{(n + 11) // 12}y").start <= window.start


@given(spans(DAY_UNITS), nows)
def test_older_than_is_a_utc_midnight_that_far_back(span, now):
    cutoff = retention_cutoff(str(span), now)
    assert cutoff.utcoffset() == timedelta(0) and cutoff.time() == datetime.min.time()
    today = now.date()
    if span.unit in ("d", "w"):
        assert today - cutoff.date() == FIXED[span.unit] * span.amount
    else:
        months = span.amount * (12 if span.unit == "y" else 1)
        assert months_between(cutoff.date(), today) == months


@given(st.sampled_from(["day", "week", "month"]), zones, nows)
def test_a_calendar_window_holds_its_moment_and_starts_at_local_midnight(unit, tz, now):
    window = calendar_window(unit, now, tz)
    assert window.start <= now < window.end
    start = window.start.astimezone(tz)
    assert start.time() == datetime.min.time()
    if unit == "week":
        assert start.weekday() == 0 and window.label.count("-W") == 1
        assert (window.end.astimezone(tz).date() - start.date()).days == 7
    elif unit == "month":
        assert start.day == 1 and window.label == f"{start:%Y-%m}"
    else:
        assert window.label == start.date().isoformat()


def test_a_berlin_week_across_the_dst_change_is_167_hours():
    window = calendar_window(
        "week", datetime(2026, 3, 25, 12, tzinfo=UTC), ZoneInfo("Europe/Berlin")
    )
    assert window.label == "2026-W13"
    assert window.start == datetime(2026, 3, 22, 23, tzinfo=UTC)
    assert window.end - window.start == timedelta(hours=167)


def test_dates_are_midnight_in_the_zone_and_iso_times_keep_their_own():
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_point("2026-11-01", NOW, berlin) == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert parse_point("2026-11-01T09:00", NOW, berlin) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_point("2026-11-01T09:00Z", NOW, berlin) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    # 14:30 local (summer time) three months back is 14:30 local in winter: 13:30 UTC.
    assert parse_point("3mo", NOW, berlin) == datetime(2025, 12, 31, 13, 30, 15, 500_000, UTC)


# ------------------------------------------------------------------ the CLI


def one_sentence(result) -> str:
    assert "Traceback" not in result.stderr and "Internal error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, says",
    [
        (["ledger", "prune", "--older-than", "99999999999d"], "out of range"),
        (["ledger", "prune", "--older-than", "1000000y"], "out of range"),
        (["ledger", "prune", "--older-than", "6m"], "write 6min for minutes or 6mo for months"),
        (["ledger", "export", "--since", "99999999d"], "out of range"),
        (["ledger", "export", "--month", "0000-01"], "out of range"),
        (["report", "--month", "0000-01"], "out of range"),
        (["report", "--month", "10000-01"], "is not a month"),
        (["report", "--since", "0001-01-01"], "out of range"),
        (["report", "--until", "9999-12-31T23:00-12:00"], "out of range"),
        (["report", "--last", "99999999d"], "out of range"),
        (["report", "--last", "3m"], "write 3min for minutes or 3mo for months"),
        (["logs", "--since", "30m"], "write 30min for minutes or 30mo for months"),
        (["logs", "--until", "99999999999w"], "out of range"),
        (["report", "--tz", "America"], "not a known time zone"),
        (["forecast", "--tz", "Europe/"], "not a known time zone"),
        (["logs", "--prompt", "summary@latest"], "NAME or NAME@VERSION"),
        (["report", "--prompt", "@3"], "NAME or NAME@VERSION"),
    ],
)
def test_bad_windows_exit_2_with_one_sentence(cli, home, args, says):
    result = cli(*args)
    assert result.exit_code == 2, result.stderr
    assert says in one_sentence(result)


@pytest.fixture
def two_calls(cli, home, monkeypatch):
    """One call 40 minutes before the pinned now, one 10 minutes before."""
    for at in ("2026-03-01T08:00:00Z", "2026-03-01T08:30:00Z"):
        monkeypatch.setenv("TOKENCLI_NOW", at)
        assert cli("run", "-m", "mock:echo", "hello").exit_code == 0
    monkeypatch.setenv("TOKENCLI_NOW", "2026-03-01T08:40:00Z")


def test_report_and_export_take_minutes_as_logs_does(cli, two_calls):
    for command in (["logs", "--json"], ["ledger", "export"]):
        result = cli(*command, "--since", "30min")
        assert result.exit_code == 0, result.stderr
        assert (
            len(result.stdout.splitlines() if command[0] == "ledger" else json.loads(result.stdout))
            == 1
        )
    # A time without a zone is read in --tz: 17:15 in Tokyo is 08:15 UTC.
    tokyo = cli("logs", "--json", "--since", "2026-03-01T17:15", "--tz", "Asia/Tokyo")
    assert [c["ts"] for c in json.loads(tokyo.stdout)] == ["2026-03-01T08:30:00.000000Z"]
    report = cli("report", "--since", "30min", "--json")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["totals"]["calls"] == 1
    last = cli("report", "--last", "60min", "--json")
    assert json.loads(last.stdout)["totals"]["calls"] == 2
    assert json.loads(last.stdout)["period"]["label"] == "last 60min"


def test_status_filters_an_export_and_is_refused_by_reports(cli, home, two_calls):
    assert cli("ledger", "export", "--status", "error").stdout == ""
    assert len(cli("ledger", "export", "--status", "ok").stdout.splitlines()) == 2
    ledger = Ledger.open(home / "ledger.db", create=False)
    assert ledger is not None
    with pytest.raises(UsageError, match="count every status"):
        build_report(ledger, resolve_period(now=NOW, tz=UTC), UTC, flt=Scope(status="ok"))
    with pytest.raises(UsageError, match="no calls carry a client"):
        ledger.list_calls(Scope(client="acme"))


def _prompt_call(i: int, name: str | None, version: int | None) -> Call:
    when = datetime(2026, 3, 10, 12, tzinfo=UTC) + timedelta(hours=i)
    return Call(
        id=new_id(int(when.timestamp() * 1000)),
        ts=format_ts(when),
        provider="openai",
        model="gpt-4o-mini",
        status="ok",
        prompt_name=name,
        prompt_version=version,
        usage=Usage(input_tokens=10, output_tokens=5),
        cost=Decimal("0.01"),
        currency="USD",
        duration_ms=100,
    )


def test_a_prompt_scope_picks_a_name_or_one_version(tmp_path):
    ledger = Ledger.open(tmp_path / "ledger.db")
    assert ledger is not None
    ledger.import_calls(
        [
            _prompt_call(0, "summary", 1),
            _prompt_call(1, "summary", 2),
            _prompt_call(2, "summary", 2),
            _prompt_call(3, "other", 2),
            _prompt_call(4, None, None),
        ]
    )
    march = resolve_period(now=NOW, tz=UTC, month="2026-03")
    for prompt, n in (("summary", 3), ("summary@2", 2), ("summary@1", 1), ("nothing", 0)):
        assert len(ledger.list_calls(Scope(prompt=prompt))) == n
        report = build_report(ledger, march, UTC, flt=Scope(prompt=prompt), compare=False)
        assert report.totals.calls == n
        assert report.totals.cost == Decimal("0.01") * n
    # Not on whole hours: the edges are read from the calls themselves.
    edge = resolve_period(now=NOW, tz=UTC, since="2026-03-10T12:30", until="2026-03-10T16:30")
    for prompt, n in (("summary", 2), ("summary@2", 2), ("summary@1", 0), ("other", 1)):
        within = build_report(ledger, edge, UTC, flt=Scope(prompt=prompt), compare=False)
        assert within.totals.calls == n
