"""Anomaly rules under `[alerts]`, and the observer that checks them after each call.

Per call (cheap): `max_call_tokens` on the call itself; `max_consecutive_failures`
from the provider's newest rows (an index read, only when the call failed).
Per day (`anomalies`, for `budget check`, and after a command whose calls spent money): the
day's spend against `spike_factor` × the trailing 14-day median and against
`max_zscore` deviations above the trailing mean (after `min_history_days`),
read from the daily rollups, never every row. Each rule's alert has a key that
makes it fire once: per call, per failure run, per day.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING

from . import Alert

if TYPE_CHECKING:
    from ..ledger import Call, Ledger
    from ..ledger.reads import LedgerReader
    from ..settings.model import Settings

TRAILING_DAYS = 14
# Refusals that mean the account has no money left (calls.circuit's BILLING_KINDS).
EXHAUSTED_KINDS = frozenset({"billing", "quota"})


def call_alerts(ledger: Ledger, settings: Settings, call: Call) -> list[Alert]:
    """The per-call rules for one finished call."""
    rules = settings.alerts.rules
    out: list[Alert] = []
    tokens = call.usage.total_tokens
    if rules.max_call_tokens and tokens > rules.max_call_tokens:
        out.append(
            Alert(
                kind="anomaly",
                key=f"anomaly:call_tokens:{call.id}",
                title=f"One call used {tokens:,} tokens",
                message=(
                    f"Call {call.id} on {call.provider}:{call.model} used {tokens:,} tokens,"
                    f" above max_call_tokens = {rules.max_call_tokens:,}."
                ),
                fields={
                    "rule": "max_call_tokens",
                    "call_id": call.id,
                    "provider": call.provider,
                    "model": call.model,
                    "value": tokens,
                    "threshold": rules.max_call_tokens,
                },
            )
        )
    if call.status == "error" and call.error_kind in EXHAUSTED_KINDS:
        out.append(exhausted(call))
    limit = rules.max_consecutive_failures
    if call.status == "error" and limit > 0:
        from ..ledger.alerts import recent_statuses

        recent = recent_statuses(ledger, call.provider, limit + 1)
        run = recent[:limit]
        # Exactly `limit` failures in a row: the run's first alert, keyed by its first call.
        started = len(recent) <= limit or recent[limit][1] != "error"
        if len(run) == limit and all(s == "error" for _, s in run) and started:
            first = run[-1][0]
            out.append(
                Alert(
                    kind="failures",
                    key=f"failures:{call.provider}:{first}",
                    title=f"{call.provider} failed {limit} times in a row",
                    message=(
                        f"The last {limit} calls to {call.provider} failed"
                        f" (latest {call.id}: {call.error_kind or 'error'})."
                    ),
                    level="critical",
                    fields={
                        "rule": "max_consecutive_failures",
                        "provider": call.provider,
                        "call_id": call.id,
                        "value": limit,
                        "threshold": limit,
                    },
                )
            )
    return out


def exhausted(call: Call) -> Alert:
    """A call refused for exhausted credit or quota (exit 4): once per provider and day."""
    return Alert(
        kind="refill",
        key=f"refill-exhausted:{call.provider}:{call.ts[:10]}",
        title=f"{call.provider}: out of credit",
        message=(
            f"A call to {call.provider}:{call.model} was refused for exhausted credit or quota"
            f" ({call.id}). Top it up, then record it with"
            f" 'tokencli refill add {call.provider} AMOUNT'."
        ),
        level="critical",
        fields={"provider": call.provider, "model": call.model, "call_id": call.id},
    )


def daily_spend(
    reader: LedgerReader, settings: Settings, now: datetime, days: int = TRAILING_DAYS
) -> tuple[list[Decimal], Decimal, str]:
    """(the `days` whole local days before today, today so far, the report currency)."""
    from ..insights.model import Period
    from ..insights.report import _Money, time_sums
    from ..window import local_midnight, zone

    tz = zone(settings.defaults.timezone)
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days)
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    period = Period(local_midnight(first, tz), end, "", "")
    money = _Money(settings.currencies)
    series = [Decimal(0)] * (days + 1)
    for row in time_sums(reader, period, tz, "day"):
        index = (datetime.fromisoformat(row.label).date() - first).days
        if 0 <= index <= days:
            series[index] += money.convert(row.sums["cost_pico"], row.currency)
    return series[:-1], series[-1], settings.currencies.report


def _history_days(history: Sequence[Decimal]) -> list[Decimal]:
    """The trailing days since the first day with any spend (days before it are no history)."""
    for index, value in enumerate(history):
        if value:
            return list(history[index:])
    return []


def spike_median(history: Sequence[Decimal], spend: Decimal, factor: Decimal) -> Decimal | None:
    """The trailing median a day's `spend` spiked above (more than `factor` × it), or None.

    `history` is the days before it, oldest first (days before the first with any spend
    are no history). `anomalies` and the report's Anomalies section both judge days here.
    """
    known = _history_days(history)
    if not spend or not known or factor <= 0:
        return None
    median = Decimal(str(statistics.median(known)))
    return median if median > 0 and spend > factor * median else None


def anomalies(ledger: LedgerReader, settings: Settings, now: datetime) -> list[Alert]:
    """The day-level rules for today: spike against the median, z-score against the mean."""
    rules = settings.alerts.rules
    history, today, currency = daily_spend(ledger, settings, now)
    if not today:
        return []
    day = now.astimezone(_tz(settings)).date().isoformat()
    known = _history_days(history)
    out: list[Alert] = []
    median = spike_median(history, today, rules.spike_factor)
    if median is not None:
        out.append(
            Alert(
                kind="anomaly",
                key=f"anomaly:spike:{day}",
                title=f"Spend spike: {_money(today)} {currency} today",
                message=(
                    f"Today's spend ({_money(today)} {currency}) is above {rules.spike_factor} ×"
                    f" the {len(known)}-day median ({_money(median)} {currency})."
                ),
                fields={
                    "rule": "spike_factor",
                    "day": day,
                    "value": str(today),
                    "median": str(median),
                    "threshold": str(rules.spike_factor),
                    "unit": currency,
                },
            )
        )
    if len(known) >= max(rules.min_history_days, 2) and rules.max_zscore > 0:
        mean = statistics.fmean(float(v) for v in known)
        deviation = statistics.pstdev(float(v) for v in known)
        if deviation > 0:
            score = (float(today) - mean) / deviation
            if score > float(rules.max_zscore):
                out.append(
                    Alert(
                        kind="anomaly",
                        key=f"anomaly:zscore:{day}",
                        title=f"Unusual spend: {_money(today)} {currency} today",
                        message=(
                            f"Today's spend is {score:.1f} standard deviations above the"
                            f" {len(known)}-day mean ({mean:.2f} {currency}); max_zscore = {rules.max_zscore}."
                        ),
                        fields={
                            "rule": "max_zscore",
                            "day": day,
                            "value": str(today),
                            "zscore": round(score, 2),
                            "threshold": str(rules.max_zscore),
                            "unit": currency,
                        },
                    )
                )
    return out


def _tz(settings: Settings) -> tzinfo:
    from ..window import zone

    return zone(settings.defaults.timezone)


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}"


def budget_alerts(ledger: LedgerReader, settings: Settings, now: datetime) -> list[Alert]:
    """An alert for each `warn` threshold a budget has reached in its current period
    (its key makes it fire once per budget, threshold and period)."""
    if not settings.budgets:
        return []
    from ..insights.budgets import thresholds_reached
    from ..money import decimal_str
    from ..window import zone
    from . import budget_threshold

    found = thresholds_reached(
        ledger,
        sorted(settings.budgets.values(), key=lambda b: b.name),
        now=now,
        tz=zone(settings.defaults.timezone),
        currencies=settings.currencies,
    )

    def amount(value: Decimal, tokens: bool) -> str:
        return str(int(value)) if tokens else decimal_str(value) or "0"

    return [
        budget_threshold(
            r.budget.name,
            threshold,
            r.window.label,
            spent=amount(r.spent, r.budget.in_tokens),
            limit=amount(r.limit, r.budget.in_tokens),
            unit=r.unit,
            period=r.budget.period,
        )
        for r in found
        for threshold in r.thresholds
    ]


class AlertObserver:
    """After each finished call: check the per-call rules and record their alerts.

    Nothing is sent here, and the day-level rules wait too: `after_command` checks
    them once, after the command's answer is printed, if a priced call was made.
    """

    def __init__(self, settings: Settings, ledger: Callable[[], Ledger]) -> None:
        self.settings = settings
        self.ledger = ledger
        self.spent = False  # a priced call finished: the day rules have something to say

    def finished(self, call: Call) -> None:
        from .dispatch import enqueue

        if call.status == "ok" and (call.cost or call.usage.total_tokens):
            self.spent = True
        found = call_alerts(self.ledger(), self.settings, call)
        if found:
            enqueue(self.ledger(), self.settings, found)

    def after_command(self, ledger: Ledger) -> None:
        """The day-level rules, once per command that spent money."""
        if not self.spent:
            return
        self.spent = False
        from .dispatch import enqueue

        # Budget thresholds: one rollup read a budget, after the answer is out.
        reached = budget_alerts(ledger, self.settings, ledger.clock.now())
        if reached:
            enqueue(ledger, self.settings, reached)
        # A day's spike can only be reported once, so the rules need not read the
        # ledger's daily sums after every call of a busy script: once in ten
        # minutes across all processes is enough (and `budget check` runs them too).
        now = ledger.clock.now()
        if not ledger.notice_once(f"anomaly-rules:{now:%Y-%m-%dT%H}:{now.minute // 10}"):
            return
        found = anomalies(ledger, self.settings, now)
        if found:
            enqueue(ledger, self.settings, found)
