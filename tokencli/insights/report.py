"""Building a report from the ledger: sums, conversion to one currency, sections.

All reading goes through a `LedgerReader` (the ledger's report queries:
rollups plus raw edges); this module turns its integer sums into `Decimal`
money in the report's currency and assembles the sections. Currencies
without a configured rate are left out of money totals and named in
`Report.unconverted`, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from ..errors import UsageError
from ..ledger import format_ts
from ..ledger.reads import LedgerReader
from ..ledger.report_queries import Segment, SumRow, percentile
from ..money import from_picos
from ..scope import Scope
from ..settings.loader import Currencies
from ..settings.model import Budget
from ..window import local_midnight, next_month, previous_period
from .model import (
    DIMENSIONS,
    TIME_DIMENSIONS,
    Anomaly,
    BudgetLine,
    Group,
    HourStat,
    ModelStats,
    Period,
    Report,
    TopCall,
    Totals,
)

_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_by(values: Iterable[str]) -> tuple[str, ...]:
    """`--by provider --by day`, `--by provider,day`: validated dimensions, in order."""
    dims: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name = part.lower() if not part.lower().startswith("tag:") else "tag:" + part[4:]
            if name.startswith("tag:"):
                if not _TAG_KEY.match(name[4:]):
                    raise UsageError(
                        f"--by {part!r} needs a tag key after 'tag:'.",
                        "Write it like --by tag:client (letters, digits, _ . -).",
                    )
            elif name not in DIMENSIONS:
                raise UsageError(
                    f"--by {part!r} is not something a report can group by.",
                    f"Use {', '.join(DIMENSIONS)} or tag:KEY.",
                )
            if name not in dims:
                dims.append(name)
    if sum(d in TIME_DIMENSIONS for d in dims) > 1:
        raise UsageError("--by takes one of hour, day, week and month at a time.")
    return tuple(dims)


@dataclass
class _Money:
    """Integer picos per currency → Decimal in the report currency."""

    currencies: Currencies
    unconverted: set[str] = field(default_factory=set)

    def convert(self, picos: int, currency: str) -> Decimal:
        if not picos:
            return Decimal(0)
        if currency in ("", self.currencies.report):
            return from_picos(picos)
        rate = self.currencies.rates.get(currency)
        if rate is None:
            self.unconverted.add(currency)
            return Decimal(0)
        return from_picos(picos) * rate

    def totals(self, rows: Iterable[SumRow]) -> Totals:
        counts: dict[str, int] = {}
        cost = savings = Decimal(0)
        for row in rows:
            for name, value in row.sums.items():
                counts[name] = counts.get(name, 0) + value
            cost += self.convert(row.sums["cost_pico"], row.currency)
            savings += self.convert(row.sums["savings_pico"], row.currency)
        return Totals(
            calls=counts.get("calls", 0),
            ok=counts.get("ok", 0),
            errors=counts.get("errors", 0),
            blocked=counts.get("blocked", 0),
            cached=counts.get("cached", 0),
            input_tokens=counts.get("input_tokens", 0),
            cached_input_tokens=counts.get("cached_input_tokens", 0),
            cache_write_tokens=counts.get("cache_write_tokens", 0),
            output_tokens=counts.get("output_tokens", 0),
            reasoning_tokens=counts.get("reasoning_tokens", 0),
            cost=cost,
            savings=savings,
            unpriced_calls=counts.get("unpriced", 0),
            duration_ms=counts.get("duration_ms", 0),
        )


# ------------------------------------------------------------------ segments


def time_segments(period: Period, dim: str, tz: tzinfo) -> list[Segment]:
    """The period cut at local hour/day/week/month boundaries, labelled as people read them."""
    cuts: list[tuple[datetime, str]] = []
    local_start = period.start.astimezone(tz)
    if dim == "hour":
        at = period.start.replace(minute=0, second=0, microsecond=0)
        while at < period.end:
            cuts.append((at, f"{at.astimezone(tz):%Y-%m-%d %H:00}"))
            at += timedelta(hours=1)
    else:
        day = local_start.date()
        if dim == "week":
            day -= timedelta(days=day.weekday())
        elif dim == "month":
            day = day.replace(day=1)
        while (at := local_midnight(day, tz)) < period.end:
            if dim == "day":
                cuts.append((at, day.isoformat()))
                day += timedelta(days=1)
            elif dim == "week":
                year, week, _ = day.isocalendar()
                cuts.append((at, f"{year}-W{week:02d}"))
                day += timedelta(days=7)
            else:
                cuts.append((at, f"{day:%Y-%m}"))
                day = next_month(day)
    segments = []
    for i, (at, label) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else period.end
        start = max(at, period.start)
        if start < end:
            segments.append(Segment(label, start, end))
    return segments


def _label(local_epoch: int, dim: str) -> str:
    """The label of a local hour (its wall-clock start as epoch seconds) under a time dimension."""
    wall = datetime.fromtimestamp(local_epoch, UTC)
    if dim == "hour":
        return f"{wall:%Y-%m-%d %H:00}"
    if dim == "day":
        return wall.date().isoformat()
    if dim == "week":
        year, week, _ = wall.date().isocalendar()
        return f"{year}-W{week:02d}"
    return f"{wall:%Y-%m}"


def time_sums(
    ledger: LedgerReader,
    period: Period,
    tz: tzinfo,
    dim: str,
    other: Sequence[str] = (),
    flt: Scope = Scope(),
) -> list[SumRow]:
    """Sums per local hour/day/week/month: the hourly fast path when it applies, else segments."""
    unit = 3600 if dim == "hour" else 86400
    hourly = ledger.local_sums(period.start, period.end, tz, unit, other, flt)
    if hourly is None:
        return ledger.segment_sums(time_segments(period, dim, tz), other, flt)
    merged: dict[tuple[str, tuple[str, ...], str], dict[str, int]] = {}
    for row in hourly:
        key = (_label(int(row.label), dim), row.key, row.currency)
        into = merged.get(key)
        if into is None:
            merged[key] = dict(row.sums)
        else:
            for name, value in row.sums.items():
                into[name] += value
    return [
        SumRow(label, key, currency, values) for (label, key, currency), values in merged.items()
    ]


def _whole(period: Period) -> list[Segment]:
    return [Segment("", period.start, period.end)]


# ------------------------------------------------------------------ the report


def build_report(
    ledger: LedgerReader,
    period: Period,
    tz: tzinfo,
    *,
    by: Sequence[str] = (),
    flt: Scope = Scope(),
    currencies: Currencies = Currencies(),
    top: int = 10,
    compare: bool = True,
    now: datetime | None = None,
    budgets: Sequence[Budget] = (),
    budget_tz: tzinfo | None = None,
    spike_factor: Decimal = Decimal(0),
) -> Report:
    """The report of `period`. With `budgets`, their state as the period leaves them;
    (their calendar periods in `budget_tz`, `[defaults] timezone`, else `tz`); with a
    `spike_factor`, the days whose spend spiked (`alerts.rules.spike_median`)."""
    money = _Money(currencies)
    time_dim = next((d for d in by if d in TIME_DIMENSIONS), None)
    other = tuple(d for d in by if d not in TIME_DIMENSIONS)
    if time_dim:
        rows = time_sums(ledger, period, tz, time_dim, other, flt)
    else:
        rows = ledger.segment_sums(_whole(period), other, flt)
    totals = money.totals(rows)

    previous_period_ = previous_totals = None
    previous_by_key: dict[tuple[str, ...], Decimal] = {}
    if compare:
        previous_period_ = previous_period(period, tz)
        previous_rows = ledger.segment_sums(
            _whole(previous_period_), other if not time_dim else (), flt
        )
        previous_totals = money.totals(previous_rows)
        if not time_dim:
            for row in previous_rows:
                previous_by_key[row.key] = previous_by_key.get(row.key, Decimal(0)) + money.convert(
                    row.sums["cost_pico"], row.currency
                )

    groups: list[Group] = []
    if by:
        grouped: dict[tuple[str, ...], list[SumRow]] = {}
        for row in rows:
            values = iter(row.key)
            key = tuple(row.label if d == time_dim else next(values) for d in by)
            grouped.setdefault(key, []).append(row)
        for key, members in grouped.items():
            plain = tuple(v for d, v in zip(by, key, strict=True) if d != time_dim)
            previous = previous_by_key.get(plain) if compare and not time_dim else None
            if compare and not time_dim and previous is None:
                previous = Decimal(0)
            groups.append(Group(key, money.totals(members), previous))
        groups.sort(key=lambda g: g.key if time_dim and by[0] == time_dim else ())
        if not (time_dim and by[0] == time_dim):
            groups.sort(key=lambda g: (-g.totals.cost, -g.totals.calls, g.key))

    daily_rows = (
        rows if time_dim == "day" and not other else time_sums(ledger, period, tz, "day", (), flt)
    )
    daily: dict[date, Decimal] = {}
    for row in daily_rows:
        day = date.fromisoformat(row.label)
        daily[day] = daily.get(day, Decimal(0)) + money.convert(row.sums["cost_pico"], row.currency)

    return Report(
        period=period,
        currency=currencies.report,
        by=tuple(by),
        totals=totals,
        groups=groups,
        previous_period=previous_period_,
        previous=previous_totals,
        daily=sorted(daily.items()),
        top_calls=_top_calls(ledger, period, flt, money, top, totals.calls),
        models=_models(ledger, period, flt, money),
        busiest_hours=_busiest_hours(ledger, period, flt, money, tz),
        unconverted=sorted(money.unconverted),
        generated_at=now or datetime.now(UTC),
        pruned_until=_pruned_within(ledger, period),
        budgets=_budget_lines(ledger, period, budget_tz or tz, budgets, currencies, now),
        anomalies=_anomalies(ledger, period, tz, flt, money, daily, spike_factor),
    )


def _budget_lines(
    ledger: LedgerReader,
    period: Period,
    tz: tzinfo,
    budgets: Sequence[Budget],
    currencies: Currencies,
    now: datetime | None,
) -> list[BudgetLine]:
    """Each budget whose window (at the report's end, or now if earlier) overlaps the period."""
    if not budgets:
        return []
    from .budgets import budget_state

    at = period.end - timedelta(microseconds=1)
    if now is not None:
        at = min(at, now)
    lines = []
    for budget in budgets:
        state = budget_state(ledger, budget, now=at, tz=tz, currencies=currencies, project=False)
        if state.window.end <= period.start or state.window.start >= period.end:
            continue
        lines.append(
            BudgetLine(
                name=budget.name,
                scope=", ".join(f"{k}={v}" for k, v in budget.scope.describe().items()) or "all",
                period=budget.period,
                window=state.window.label,
                unit=state.unit,
                limit=state.limit,
                spent=state.spent,
                percent=state.percent,
                crossed=state.crossed,
                block=budget.block,
            )
        )
    return lines


def _anomalies(
    ledger: LedgerReader,
    period: Period,
    tz: tzinfo,
    flt: Scope,
    money: _Money,
    daily: dict[date, Decimal],
    factor: Decimal,
) -> list[Anomaly]:
    """The period's spike days, each judged against the 14 days before it (the days
    before the period read from the rollups too: one more query, of 14 days)."""
    if factor <= 0 or not daily:
        return []
    from ..alerts.rules import TRAILING_DAYS, spike_median

    first = period.start.astimezone(tz).date()
    lead_start = local_midnight(first - timedelta(days=TRAILING_DAYS), tz)
    spend = dict(daily)
    if lead_start < period.start:
        lead = Period(lead_start, period.start, "", period.tz)
        for row in time_sums(ledger, lead, tz, "day", (), flt):
            day = date.fromisoformat(row.label)
            if day not in daily:
                spend[day] = spend.get(day, Decimal(0)) + money.convert(
                    row.sums["cost_pico"], row.currency
                )
    found = []
    for day in sorted(daily):
        history = [
            spend.get(day - timedelta(days=back), Decimal(0))
            for back in range(TRAILING_DAYS, 0, -1)
        ]
        median = spike_median(history, daily[day], factor)
        if median is not None:
            found.append(Anomaly(day, daily[day], median, factor))
    return found


def _pruned_within(ledger: LedgerReader, period: Period) -> str | None:
    until = ledger.pruned_until()
    return until if until is not None and until > format_ts(period.start) else None


def _top_calls(
    ledger: LedgerReader, period: Period, flt: Scope, money: _Money, n: int, calls: int
) -> list[TopCall]:
    if n <= 0 or not calls:
        return []
    found = [
        TopCall(
            id=r.id,
            ts=r.ts,
            provider=r.provider,
            model=r.model,
            project=r.project,
            status=r.status,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cost=money.convert(r.cost_pico, r.currency or ""),
            duration_ms=r.duration_ms,
        )
        # Costs are ranked in their own currencies by SQL: read a few extra
        # so a CNY call worth more dollars than a USD one is not missed.
        for r in ledger.costliest_calls(period.start, period.end, flt, n * 3, calls)
    ]
    found.sort(key=lambda c: (-c.cost, c.ts))
    return found[:n]


def _models(ledger: LedgerReader, period: Period, flt: Scope, money: _Money) -> list[ModelStats]:
    rows = ledger.segment_sums(_whole(period), ("provider", "model"), flt)
    per_model: dict[tuple[str, str], list[SumRow]] = {}
    for row in rows:
        per_model.setdefault((row.key[0], row.key[1]), []).append(row)
    hist = ledger.latency_histograms(period.start, period.end, flt)
    stats = []
    for (provider, model), members in per_model.items():
        t = money.totals(members)
        h = hist.get((provider, model), {})
        stats.append(
            ModelStats(
                provider=provider,
                model=model,
                calls=t.calls,
                input_tokens=t.input_tokens,
                output_tokens=t.output_tokens,
                cost=t.cost,
                price_per_1k=t.price_per_1k,
                p50_ms=percentile(h, 0.50),
                p95_ms=percentile(h, 0.95),
                p99_ms=percentile(h, 0.99),
            )
        )
    stats.sort(key=lambda s: (-s.cost, -s.calls, s.provider, s.model))
    return stats


def _busiest_hours(
    ledger: LedgerReader, period: Period, flt: Scope, money: _Money, tz: tzinfo
) -> list[HourStat]:
    """Calls and spend per local hour of the day, busiest first.

    Read from the hourly rollup (UTC hours, each labelled with the local hour
    it starts in: in a zone at a half-hour offset, 09 means 09:30-10:30).
    """
    calls: dict[int, int] = {}
    cost: dict[int, Decimal] = {}
    if flt == Scope():
        for local, currency, n, picos in ledger.hour_of_day_totals(period.start, period.end, tz):
            calls[local] = calls.get(local, 0) + n
            cost[local] = cost.get(local, Decimal(0)) + money.convert(picos, currency)
    else:
        segments = [
            Segment(
                str(datetime.fromtimestamp(int(s.start.timestamp()), UTC).astimezone(tz).hour),
                s.start,
                s.end,
            )
            for s in time_segments(period, "hour", tz)
        ]
        for row in ledger.segment_sums(segments, (), flt):
            local = int(row.label)
            calls[local] = calls.get(local, 0) + row.sums["calls"]
            cost[local] = cost.get(local, Decimal(0)) + money.convert(
                row.sums["cost_pico"], row.currency
            )
    hours = [HourStat(h, calls[h], cost.get(h, Decimal(0))) for h in calls if calls[h]]
    hours.sort(key=lambda s: (-s.calls, -s.cost, s.hour))
    return hours
