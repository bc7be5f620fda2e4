"""What is left of what was paid in: the ledger's balance per provider, and its runway.

`consume` is the arithmetic, pure and exact: refills (credits and grants) are
added when they were recorded, metered spend after that is taken from them as
providers do (grants first, the one expiring soonest first, then credits, oldest
first), and a grant that expires takes its unused part with it. Spend with
nothing left to take from is an overdraft, repaid by the next top-up.

`ledger_balances` reads the refills and the metered spend between them from the
ledger; `runway` asks the forecast (`insights.forecast`) when the balance runs
out at the provider's own pace, with an 80% interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from ..ledger.refills import TOKENS, Refill

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..settings.model import Currencies

RUNWAY_DAYS = 120  # how far ahead a runway is looked for
TOPUP_DAYS = 30  # a suggested top-up covers this many days at the forecast's pace
_SPEND, _EXPIRE, _ADD = 0, 1, 2  # at one instant: spend up to it, then expiries, then additions


class PoolBalance(NamedTuple):
    """One provider's refills in one unit (a currency, or tokens), as of `as_of`."""

    provider: str
    unit: str
    credited: Decimal  # top-ups added
    granted: Decimal  # grants added
    spent: Decimal  # metered spend taken from them (overdraft included)
    expired: Decimal  # what grants took with them when they expired
    grants_left: Decimal  # unexpired grants' remainder
    credits_left: Decimal
    overdraft: Decimal  # spend with nothing left to take it from
    next_expiry: datetime | None  # the soonest unexpired grant with something left
    expiring: Decimal  # what that grant holds
    unconverted: tuple[str, ...] = ()  # currencies of spend with no rate into `unit`

    @property
    def balance(self) -> Decimal:
        return self.grants_left + self.credits_left - self.overdraft


@dataclass
class _Pot:
    refill: Refill
    left: Decimal

    def order(self) -> tuple[int, datetime, datetime]:
        """Grants first, soonest expiry first; then credits, oldest first."""
        never = datetime.max.replace(tzinfo=self.refill.ts.tzinfo)
        if self.refill.grant:
            return (0, self.refill.expires or never, self.refill.ts)
        return (1, never, self.refill.ts)


def consume(
    refills: Sequence[Refill],
    spends: Sequence[tuple[datetime, Decimal]],
    now: datetime,
    *,
    provider: str = "",
    unit: str = "",
) -> PoolBalance:
    """The balance of `refills` (one provider, one unit) after `spends`, as of `now`.

    `spends` are (when, amount) in the refills' unit, each spent just before `when`
    (the end of the stretch it was metered in); spend before the first refill is
    not taken from anything.
    """
    events: list[tuple[datetime, int, int, Refill | Decimal]] = []
    for index, refill in enumerate(refills):
        if refill.ts <= now:
            events.append((refill.ts, _ADD, index, refill))
            if refill.grant and refill.expires is not None and refill.expires <= now:
                events.append((refill.expires, _EXPIRE, index, refill))
    for index, (when, amount) in enumerate(spends):
        if when <= now and amount:
            events.append((when, _SPEND, index, amount))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    pots: dict[str, _Pot] = {}
    credited = granted = spent = expired = overdraft = Decimal(0)
    for _, kind, _, payload in events:
        if kind == _ADD:
            assert isinstance(payload, Refill)
            pot = _Pot(payload, payload.amount)
            if payload.grant:
                granted += payload.amount
                if payload.expires is not None and payload.expires <= payload.ts:
                    expired += payload.amount  # recorded after its last day: adds nothing
                    continue
            else:
                credited += payload.amount
                repaid = min(overdraft, pot.left)  # a top-up pays the debt first
                pot.left -= repaid
                overdraft -= repaid
            pots[payload.id] = pot
        elif kind == _EXPIRE:
            assert isinstance(payload, Refill)
            if payload.id not in pots:
                continue  # it expired before it was recorded
            pot = pots[payload.id]
            expired += pot.left
            pot.left = Decimal(0)
        else:
            assert isinstance(payload, Decimal)
            started = any(True for _ in pots)
            if not started:
                continue
            need = payload
            spent += need
            for pot in sorted(pots.values(), key=_Pot.order):
                if need <= 0:
                    break
                take = min(pot.left, need)
                pot.left -= take
                need -= take
            overdraft += need
    live = [p for p in pots.values() if p.left > 0]
    grants_left = sum((p.left for p in live if p.refill.grant), Decimal(0))
    credits_left = sum((p.left for p in live if not p.refill.grant), Decimal(0))
    expiring = sorted(
        (p for p in live if p.refill.grant and p.refill.expires is not None), key=_Pot.order
    )
    return PoolBalance(
        provider,
        unit,
        credited,
        granted,
        spent,
        expired,
        grants_left,
        credits_left,
        overdraft,
        expiring[0].refill.expires if expiring else None,
        expiring[0].left if expiring else Decimal(0),
    )


# ------------------------------------------------------------------ from the ledger


def ledger_balances(
    ledger: Ledger, currencies: Currencies, now: datetime, provider: str | None = None
) -> list[PoolBalance]:
    """Per provider and unit with refills: the balance the ledger says is left."""
    from ..ledger.refills import metered, refills

    pools: dict[tuple[str, str], list[Refill]] = {}
    for refill in refills(ledger, provider):
        pools.setdefault((refill.provider, refill.unit), []).append(refill)
    out = []
    for (name, unit), pool in sorted(pools.items()):
        # Stretches between the instants anything changes: a refill, an expiry, now.
        points = {r.ts for r in pool if r.ts <= now} | {now}
        points |= {r.expires for r in pool if r.grant and r.expires and r.expires <= now}
        ordered = sorted(points)
        segments = list(pairwise(ordered))
        spends: list[tuple[datetime, Decimal]] = []
        missing: set[str] = set()
        for (_, end), got in zip(segments, metered(ledger, name, segments), strict=True):
            if unit == TOKENS:
                spends.append((end, Decimal(got.tokens)))
                continue
            total = Decimal(0)
            for currency, amount in got.money().items():
                if not currency:
                    continue  # unpriced calls cost nothing known
                converted = currencies.convert(amount, currency, unit)
                if converted is None:
                    missing.add(currency)
                else:
                    total += converted
            spends.append((end, total))
        balance = consume(pool, spends, now, provider=name, unit=unit)
        out.append(balance._replace(unconverted=tuple(sorted(missing))))
    return out


class Runway(NamedTuple):
    """When a balance runs out at the provider's pace; None: not within RUNWAY_DAYS."""

    runs_out: date | None
    early: date | None  # 80% interval: the 10th and 90th percentile of the day
    late: date | None
    per_day: Decimal  # expected spend per day over the next TOPUP_DAYS, in the unit
    next_30_days: Decimal  # expected spend over the next TOPUP_DAYS
    method: str  # the forecast's: "weekday+trend", "trend", "today only", "no history"

    def topup(self, balance: Decimal) -> Decimal:
        """What to add so the next TOPUP_DAYS are covered (0 when they are)."""
        return max(Decimal(0), self.next_30_days - balance)


def runway(
    ledger: Ledger,
    currencies: Currencies,
    balance: Decimal,
    unit: str,
    provider: str,
    now: datetime,
    tz: tzinfo,
) -> Runway | None:
    """The day `balance` (in `unit`) runs out at the pace the provider's calls keep.

    None when the provider's spend cannot be put in `unit` (no rate).
    """
    from ..scope import Scope
    from . import forecast
    from .outlook import _Clock, _series
    from .report import _Money

    clock = _Clock.at(now, tz)
    money = _Money(currencies)
    tokens = unit == TOKENS
    series = _series(ledger, clock, (), Scope(provider=provider), money, tokens=tokens).get(
        (), [Decimal(0)] * (forecast.HISTORY_DAYS + 1)
    )
    rate = Decimal(1)  # the series is in the report currency (or tokens)
    if not tokens and unit != currencies.report:
        if unit not in currencies.rates:
            return None
        rate = currencies.rates[unit]
    if money.unconverted:
        return None
    result = forecast.outlook(
        [float(v) for v in series[:-1]],
        clock.history_start.weekday(),
        today_so_far=float(series[-1]),
        today_elapsed=clock.elapsed,
        days_after_today=RUNWAY_DAYS,
        seed=7,
    )
    limit = float(balance * rate)

    def day(index: int | None) -> date | None:
        return None if index is None else clock.today + timedelta(days=index)

    crossings = sorted(
        RUNWAY_DAYS + 1 if c is None else c
        for c in (forecast.crossing(0.0, path, limit) for path in result.paths)
    )

    def quantile(q: float) -> date | None:
        value = crossings[min(len(crossings) - 1, int(q * (len(crossings) - 1)))]
        return None if value > RUNWAY_DAYS else day(value)

    ahead = Decimal(repr(sum(result.daily[:TOPUP_DAYS]))) / rate
    ahead = ahead.to_integral_value() if tokens else ahead.quantize(Decimal("0.01"))
    runs_out = day(forecast.crossing(0.0, result.daily, limit)) if balance > 0 else clock.today
    return Runway(
        runs_out,
        quantile(forecast.LOW_Q) if balance > 0 else clock.today,
        quantile(forecast.HIGH_Q) if balance > 0 else clock.today,
        (ahead / TOPUP_DAYS).quantize(Decimal(1) if tokens else Decimal("0.01")),
        ahead,
        result.method,
    )
