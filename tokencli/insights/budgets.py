"""Where each budget stands now: its period, what is spent and reserved, what remains,
which thresholds are crossed, and where the period is heading.

Spend so far is exact, from the ledger's rollups (`LedgerReader.segment_sums` over the
period so far; never a scan of every call), converted into the budget's currency with
`[currency] rates`. The projection is `outlook._budget_outlook`, the same code
`forecast` shows budgets with, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import NamedTuple

from ..ledger.reads import LedgerReader
from ..ledger.report_queries import Segment
from ..money import from_picos
from ..settings.model import Budget, Currencies
from ..window import Window, calendar_window
from .outlook import _budget_outlook, _Clock

_PERCENT = Decimal("0.1")


class BudgetState(NamedTuple):
    """One budget at one moment, in its own unit (a currency code, or "tokens")."""

    budget: Budget
    unit: str  # the budget's currency, or "tokens"
    window: Window  # the period holding now, exact UTC bounds, labelled
    last_day: date  # the period's last local day
    limit: Decimal
    spent: Decimal  # exact (money converted with [currency] rates; tokens whole)
    reserved: Decimal  # held by calls in flight
    remaining: Decimal  # limit - spent - reserved, never below 0
    percent: Decimal  # spent / limit × 100, to a tenth
    crossed: tuple[int, ...]  # the `warn` thresholds spent has reached
    projected: Decimal | None  # at the period's end (None: no history to project)
    low: Decimal | None  # its 80% interval
    high: Decimal | None
    exceeded_on: date | None  # the day spend reached the limit, if it has
    crosses_on: date | None  # the day it is projected to, if it has not and will this period
    chance: float | None  # share of simulated futures that cross the limit this period
    # Calls in currencies without a rate into the budget's: currency → calls, left out.
    unconvertible: dict[str, int]

    @property
    def name(self) -> str:
        return self.budget.name

    @property
    def on_pace(self) -> bool:
        """Not over yet, but projected to cross the limit before the period ends."""
        return self.exceeded_on is None and self.crosses_on is not None

    def pace_text(self) -> str | None:
        """'on pace to cross on the 19th', or None."""
        if not self.on_pace or self.crosses_on is None:
            return None
        return f"on pace to cross on the {ordinal(self.crosses_on.day)}"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def reserved_in(ledger: LedgerReader, budget: Budget) -> Decimal:
    """What calls in flight hold against `budget`, in its unit: the worst case each
    reserved (in the budget's currency, or tokens) when the budget guard admitted it.
    Calls in flight belong to the current period, so no window is needed."""
    picos, tokens = ledger.budget_reserved().get(budget.name, (0, 0))
    return Decimal(tokens) if budget.in_tokens else from_picos(picos)


def spent_in(
    ledger: LedgerReader, budget: Budget, window: Window, now: datetime, currencies: Currencies
) -> tuple[Decimal, dict[str, int]]:
    """What `budget`'s scope spent from the window's start to `now` (exact), and the calls
    left out for want of a rate (currency → calls)."""
    # Up to and including now, on whole seconds as the ledger's queries want (a call
    # recorded at this very instant counts: with a pinned clock it is recorded at now).
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    end = max(window.start, min(end, window.end))
    rows = ledger.segment_sums([Segment("", window.start, end)], (), budget.scope)
    spent = Decimal(0)
    unconvertible: dict[str, int] = {}
    for row in rows:
        if budget.in_tokens:
            spent += row.sums["input_tokens"] + row.sums["output_tokens"]
            continue
        picos = row.sums["cost_pico"]
        if not picos:
            continue
        amount = currencies.convert(from_picos(picos), row.currency, budget.currency)
        if amount is None:
            unconvertible[row.currency] = unconvertible.get(row.currency, 0) + row.sums["calls"]
        else:
            spent += amount
    return spent, unconvertible


def budget_state(
    ledger: LedgerReader,
    budget: Budget,
    *,
    now: datetime,
    tz: tzinfo,
    currencies: Currencies,
    project: bool = True,
) -> BudgetState:
    """Where `budget` stands at `now`, its periods being days, weeks or months in `tz`.
    `project=False` skips the projection (`report` shows none, and it is the costly part)."""
    window = calendar_window(budget.period, now, tz)
    last_day = (window.end.astimezone(tz) - timedelta(hours=12)).date()
    unit = "tokens" if budget.in_tokens else budget.currency
    limit = Decimal(budget.tokens) if budget.tokens is not None else budget.amount
    assert limit is not None
    spent, unconvertible = spent_in(ledger, budget, window, now, currencies)
    reserved = reserved_in(ledger, budget)
    outlook = (
        _budget_outlook(budget, ledger, _Clock.at(now, tz), currencies, set()) if project else None
    )
    crossed = reached(budget, spent, limit)
    exceeded_on = crosses_on = None
    if spent >= limit:
        exceeded_on = (outlook and outlook.exceeded_on) or now.astimezone(tz).date()
    elif outlook is not None and outlook.runs_out is not None:
        crosses_on = outlook.runs_out
    return BudgetState(
        budget=budget,
        unit=unit,
        window=window,
        last_day=last_day,
        limit=limit,
        spent=spent,
        reserved=reserved,
        remaining=max(limit - spent - reserved, Decimal(0)),
        percent=(spent * 100 / limit).quantize(_PERCENT),
        crossed=crossed,
        projected=outlook.expected if outlook else None,
        low=outlook.low if outlook else None,
        high=outlook.high if outlook else None,
        exceeded_on=exceeded_on,
        crosses_on=crosses_on,
        chance=outlook.chance if outlook else None,
        unconvertible=unconvertible,
    )


def reached(budget: Budget, spent: Decimal, limit: Decimal) -> tuple[int, ...]:
    """The `warn` percentages `spent` has reached (a limit reached exactly counts)."""
    return tuple(w for w in budget.warn if spent * 100 >= limit * w)


class Reached(NamedTuple):
    """A budget's thresholds reached in its current period: spend only, no projection."""

    budget: Budget
    window: Window
    spent: Decimal
    limit: Decimal
    thresholds: tuple[int, ...]

    @property
    def unit(self) -> str:
        return "tokens" if self.budget.in_tokens else self.budget.currency


def thresholds_reached(
    ledger: LedgerReader,
    budgets: Sequence[Budget],
    *,
    now: datetime,
    tz: tzinfo,
    currencies: Currencies,
) -> list[Reached]:
    """Each budget with a threshold reached now: one rollup read a budget, cheap enough
    to run after every command that spent money."""
    out = []
    for budget in budgets:
        limit = Decimal(budget.tokens) if budget.tokens is not None else budget.amount
        assert limit is not None
        window = calendar_window(budget.period, now, tz)
        spent, _ = spent_in(ledger, budget, window, now, currencies)
        if thresholds := reached(budget, spent, limit):
            out.append(Reached(budget, window, spent, limit, thresholds))
    return out


def budget_states(
    ledger: LedgerReader,
    budgets: Sequence[Budget],
    *,
    now: datetime,
    tz: tzinfo,
    currencies: Currencies,
) -> list[BudgetState]:
    return [budget_state(ledger, b, now=now, tz=tz, currencies=currencies) for b in budgets]
