"""The month's forecast and each budget's outlook, from the ledger's daily sums.

Daily spend per local day comes from the same rollups as reports
(`build.time_sums`), converted to the report currency; `tokencli.insights.forecast`
does the arithmetic. Spend so far is exact; what is projected is rounded to
a hundredth of a cent, as an estimate should be.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import NamedTuple

from ..ledger.reads import LedgerReader
from ..scope import Scope
from ..settings.loader import Budget, Currencies
from ..window import calendar_days, local_midnight, zone_name
from . import forecast
from .model import Period
from .report import _Money, time_sums

_ESTIMATE = Decimal("0.0001")


class Projection(NamedTuple):
    """Spend of one series this month: so far (exact), projected, and the straight line."""

    key: tuple[str, ...]  # one value per --by dimension; () for everything
    spent: Decimal
    expected: Decimal
    low: Decimal  # 80% interval of the month's total
    high: Decimal
    linear: Decimal  # spend so far / days so far × days in the month
    method: str


class BudgetOutlook(NamedTuple):
    name: str
    amount: Decimal
    currency: str
    period: str  # day | week | month
    scope: dict[str, str]
    window: str  # the current period: "2026-11", "2026-W47", "2026-11-22"
    spent: Decimal  # in the budget's currency, this window so far
    expected: Decimal  # projected for the whole window
    exceeded_on: date | None  # the day spend reached the amount, if it has
    runs_out: date | None  # the day it is expected to, if it has not and will this window
    chance: float  # share of simulated futures in which it runs out this window
    # 80% interval of the window's total, in the budget's currency (or tokens).
    low: Decimal = Decimal(0)
    high: Decimal = Decimal(0)


@dataclass
class Forecast:
    month: str
    tz: str
    as_of: datetime
    currency: str
    day: int  # today's day of the month
    days_in_month: int
    total: Projection
    by: tuple[str, ...] = ()
    groups: list[Projection] = field(default_factory=list)
    budgets: list[BudgetOutlook] = field(default_factory=list)
    unconverted: list[str] = field(default_factory=list)


class _Clock(NamedTuple):
    """Today in the user's zone, and how far into it `now` is."""

    now: datetime
    tz: tzinfo
    today: date
    elapsed: float  # fraction of today gone
    history_start: date  # first day of the history window

    @classmethod
    def at(cls, now: datetime, tz: tzinfo) -> _Clock:
        today = now.astimezone(tz).date()
        start, end = local_midnight(today, tz), local_midnight(today + timedelta(days=1), tz)
        elapsed = (now - start).total_seconds() / (end - start).total_seconds()
        return cls(now, tz, today, elapsed, today - timedelta(days=forecast.HISTORY_DAYS))


def _series(
    ledger: LedgerReader,
    clock: _Clock,
    dims: Sequence[str],
    flt: Scope,
    money: _Money,
    *,
    tokens: bool = False,
) -> dict[tuple[str, ...], list[Decimal]]:
    """Spend (or, with `tokens`, total tokens) per local day from the history's first day
    to today, per group."""
    # Up to now, rounded up to a whole second as the ledger's queries want.
    end = clock.now.replace(microsecond=0) + timedelta(seconds=bool(clock.now.microsecond))
    period = Period(local_midnight(clock.history_start, clock.tz), end, "", "")
    days = (clock.today - clock.history_start).days + 1
    out: dict[tuple[str, ...], list[Decimal]] = {}
    for row in time_sums(ledger, period, clock.tz, "day", dims, flt):
        index = (date.fromisoformat(row.label) - clock.history_start).days
        if not 0 <= index < days:
            continue
        series = out.setdefault(row.key, [Decimal(0)] * days)
        if tokens:
            series[index] += row.sums["input_tokens"] + row.sums["output_tokens"]
        else:
            series[index] += money.convert(row.sums["cost_pico"], row.currency)
    return out


def _project(
    series: Sequence[Decimal], clock: _Clock, first: date, last: date, seed: int
) -> tuple[Decimal, forecast.Outlook]:
    """Spend from `first` to now (exact), and the outlook from now to the end of `last`."""
    offset = (first - clock.history_start).days
    spent = sum(series[offset:], Decimal(0))
    history = [float(v) for v in series[:-1]]
    result = forecast.outlook(
        history,
        clock.history_start.weekday(),
        today_so_far=float(series[-1]),
        today_elapsed=clock.elapsed,
        days_after_today=(last - clock.today).days,
        seed=seed,
    )
    return spent, result


def _estimate(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(_ESTIMATE)


def _month_projection(
    key: tuple[str, ...], series: Sequence[Decimal], clock: _Clock, days_in_month: int
) -> Projection:
    first = clock.today.replace(day=1)
    last = first.replace(day=days_in_month)
    spent, result = _project(series, clock, first, last, seed=0)
    elapsed_days = (clock.today - first).days + clock.elapsed
    return Projection(
        key=key,
        spent=spent,
        expected=spent + _estimate(sum(result.daily)),
        low=spent + _estimate(result.low),
        high=spent + _estimate(result.high),
        linear=_estimate(forecast.linear_burn(float(spent), elapsed_days, days_in_month)),
        method=result.method,
    )


def _in_budget_currency(amount: Decimal, rate: Decimal) -> Decimal:
    return amount if rate == 1 else (amount / rate).quantize(_ESTIMATE)


def _crossing(
    series: Sequence[Decimal],
    clock: _Clock,
    first: date,
    spent: Decimal,
    result: forecast.Outlook,
    limit: Decimal,
) -> tuple[date | None, date | None, float]:
    """The day the window's spend reached `limit`, else the day it is expected to (if it
    will this window), and the chance that it does."""
    if spent >= limit:
        running = Decimal(0)
        for offset, value in enumerate(series[(first - clock.history_start).days :]):
            running += value
            if running >= limit:
                return first + timedelta(days=offset), None, 1.0
        return None, None, 1.0
    index = forecast.crossing(float(spent), result.daily, float(limit))
    runs_out = clock.today + timedelta(days=index) if index is not None else None
    return None, runs_out, forecast.chance_of_reaching(float(spent), result.paths, float(limit))


def _budget_outlook(
    budget: Budget,
    ledger: LedgerReader,
    clock: _Clock,
    currencies: Currencies,
    unconverted: set[str],
) -> BudgetOutlook | None:
    """The budget's window so far and projected; `budget status` and `forecast` both
    read it. A token budget is projected in tokens per day."""
    if budget.tokens is not None:
        return _token_outlook(budget, ledger, clock)
    if budget.amount is None:
        return None
    # Budget amounts in another currency are compared in the report currency.
    rate = Decimal(1)
    if budget.currency != currencies.report:
        if budget.currency not in currencies.rates:
            unconverted.add(budget.currency)
            return None
        rate = currencies.rates[budget.currency]
    money = _Money(currencies)
    flt = budget.scope
    series = _series(ledger, clock, (), flt, money).get(
        (), [Decimal(0)] * (forecast.HISTORY_DAYS + 1)
    )
    unconverted |= money.unconverted
    first, last, label = calendar_days(budget.period, clock.today)
    spent, result = _project(series, clock, first, last, seed=1)
    limit = budget.amount * rate
    exceeded_on, runs_out, chance = _crossing(series, clock, first, spent, result, limit)
    return BudgetOutlook(
        name=budget.name,
        amount=budget.amount,
        currency=budget.currency,
        period=budget.period,
        scope=budget.scope.describe(),
        window=label,
        spent=_in_budget_currency(spent, rate),
        expected=_in_budget_currency(spent + _estimate(sum(result.daily)), rate),
        exceeded_on=exceeded_on,
        runs_out=runs_out,
        chance=chance,
        low=_in_budget_currency(spent + _estimate(result.low), rate),
        high=_in_budget_currency(spent + _estimate(result.high), rate),
    )


def _token_outlook(budget: Budget, ledger: LedgerReader, clock: _Clock) -> BudgetOutlook:
    """A token budget's window: total tokens per local day, projected like money."""
    assert budget.tokens is not None
    series = _series(ledger, clock, (), budget.scope, _Money(Currencies()), tokens=True).get(
        (), [Decimal(0)] * (forecast.HISTORY_DAYS + 1)
    )
    first, last, label = calendar_days(budget.period, clock.today)
    spent, result = _project(series, clock, first, last, seed=1)
    limit = Decimal(budget.tokens)
    exceeded_on, runs_out, chance = _crossing(series, clock, first, spent, result, limit)

    def whole(value: float) -> Decimal:
        return spent + Decimal(round(value))

    return BudgetOutlook(
        name=budget.name,
        amount=limit,
        currency="tokens",
        period=budget.period,
        scope=budget.scope.describe(),
        window=label,
        spent=spent,
        expected=whole(sum(result.daily)),
        exceeded_on=exceeded_on,
        runs_out=runs_out,
        chance=chance,
        low=whole(result.low),
        high=whole(result.high),
    )


def build_forecast(
    ledger: LedgerReader,
    *,
    now: datetime,
    tz: tzinfo,
    currencies: Currencies,
    by: Sequence[str] = (),
    flt: Scope = Scope(),
    budgets: Sequence[Budget] = (),
    budget_tz: tzinfo | None = None,
) -> Forecast:
    """The month in `tz`; budgets' days, weeks and months in `budget_tz` (default `tz`)."""
    clock = _Clock.at(now, tz)
    days_in_month = calendar.monthrange(clock.today.year, clock.today.month)[1]
    money = _Money(currencies)
    empty = [Decimal(0)] * (forecast.HISTORY_DAYS + 1)
    total_series = _series(ledger, clock, (), flt, money).get((), empty)
    result = Forecast(
        month=f"{clock.today:%Y-%m}",
        tz=zone_name(tz),
        as_of=now,
        currency=currencies.report,
        day=clock.today.day,
        days_in_month=days_in_month,
        total=_month_projection((), total_series, clock, days_in_month),
        by=tuple(by),
    )
    if by:
        grouped = _series(ledger, clock, by, flt, money)
        result.groups = sorted(
            (_month_projection(k, s, clock, days_in_month) for k, s in grouped.items() if any(s)),
            key=lambda p: (-p.expected, p.key),
        )
    unconverted = set(money.unconverted)
    budget_clock = clock if budget_tz is None else _Clock.at(now, budget_tz)
    for budget in budgets:
        if budget.in_tokens:
            continue  # the forecast is of money; `budget status` projects token budgets
        outlook = _budget_outlook(budget, ledger, budget_clock, currencies, unconverted)
        if outlook is not None:
            result.budgets.append(outlook)
    result.unconverted = sorted(unconverted)
    return result
