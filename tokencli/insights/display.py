"""Display text shared by the human formats (Markdown, HTML): figures as people read them.

Amounts go through `format_money` in the report's currency, counts get thousands
separators, and a missing figure is an em dash. The rows returned here are plain
text; each format escapes them its own way.
"""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from ..money import format_money
from ..safetext import visible
from .model import HourStat, Period, Report, Totals

BUSIEST_SHOWN = 5  # Markdown and HTML list the busiest few hours; JSON keeps them all
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def count(n: int) -> str:
    return f"{n:,}"


def money(report: Report, amount: Decimal | None) -> str:
    return format_money(amount, report.currency)


def percent(change: Decimal | None) -> str:
    """`+25.0%`, `-3.1%`, `0.0%`; `—` with nothing to compare against."""
    if change is None:
        return "—"
    value = (change * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{'+' if value > 0 else ''}{value:,}%"


def latency(ms: int | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:,} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def call_time(ts: str) -> str:
    """Ledger UTC text (`2026-11-03T14:22:01.123456Z`) → `2026-11-03 14:22:01 UTC`."""
    return f"{ts[:10]} {ts[11:19]} UTC" if len(ts) >= 19 else ts


def model_name(provider: str, model: str) -> str:
    return visible(f"{provider}:{model}")


def by_title(report: Report) -> str:
    return " × ".join(report.by)


def calls_breakdown(totals: Totals) -> str:
    """`75 ok, 1 error, 1 cached`: blocked and cached only when there are some."""
    errors = f"{count(totals.errors)} error{'' if totals.errors == 1 else 's'}"
    parts = [f"{count(totals.ok)} ok", errors]
    if totals.blocked:
        parts.append(f"{count(totals.blocked)} blocked")
    if totals.cached:
        parts.append(f"{count(totals.cached)} cached")
    return ", ".join(parts)


def calls_summary(totals: Totals) -> str:
    return f"{count(totals.calls)} ({calls_breakdown(totals)})"


def tokens_summary(totals: Totals) -> str:
    return (
        f"{count(totals.input_tokens)} in ({count(totals.cached_input_tokens)} cached), "
        f"{count(totals.output_tokens)} out"
    )


def busiest(report: Report, n: int = BUSIEST_SHOWN) -> list[HourStat]:
    """The `n` busiest hours: most calls, then most spend, then the earlier hour."""
    return sorted(report.busiest_hours, key=lambda h: (-h.calls, -h.cost, h.hour))[:n]


def filled_daily(report: Report) -> list[tuple[date, Decimal]]:
    """Daily spend from the first to the last day reported, quiet days as zero.

    The builder may leave out days without calls; a chart needs them to keep time
    proportional. Days past the last reported one are not invented (the period may
    end in the future).
    """
    if not report.daily:
        return []
    spend: dict[date, Decimal] = {}
    for day, cost in report.daily:
        spend[day] = spend.get(day, Decimal(0)) + cost
    first, last = min(spend), max(spend)
    return [
        (first + timedelta(days=i), spend.get(first + timedelta(days=i), Decimal(0)))
        for i in range((last - first).days + 1)
    ]


def day_label(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def breakdown_rows(report: Report) -> list[list[str]]:
    """The `--by` table's rows as display text, for Markdown and HTML alike."""
    rows = []
    for group in report.groups:
        totals = group.totals
        rows.append(
            [
                *(visible(k) for k in group.key),
                count(totals.calls),
                count(totals.errors),
                count(totals.input_tokens),
                count(totals.cached_input_tokens),
                count(totals.output_tokens),
                money(report, totals.cost),
                money(report, totals.savings),
                money(report, group.previous_cost) if group.previous_cost is not None else "—",
                percent(group.change),
            ]
        )
    return rows


BREAKDOWN_FIGURES = ("calls", "errors", "input", "cached", "output", "cost", "savings")
BREAKDOWN_TAIL = ("previous", "change")
MODEL_HEADER = ("model", "calls", "tokens", "cost", "per 1K tokens", "p50", "p95", "p99")
CALL_HEADER = ("time", "id", "model", "project", "status", "in", "out", "cost", "duration")
HOUR_HEADER = ("hour", "calls", "cost")


def breakdown_header(report: Report) -> list[str]:
    return [*report.by, *BREAKDOWN_FIGURES, *BREAKDOWN_TAIL]


def model_rows(report: Report) -> list[list[str]]:
    return [
        [
            model_name(m.provider, m.model),
            count(m.calls),
            count(m.input_tokens + m.output_tokens),
            money(report, m.cost),
            money(report, m.price_per_1k) if m.price_per_1k is not None else "—",
            latency(m.p50_ms),
            latency(m.p95_ms),
            latency(m.p99_ms),
        ]
        for m in report.models
    ]


def call_rows(report: Report) -> list[list[str]]:
    return [
        [
            call_time(c.ts),
            visible(c.id),
            model_name(c.provider, c.model),
            visible(c.project or "—"),
            c.status,
            count(c.input_tokens),
            count(c.output_tokens),
            money(report, c.cost),
            latency(c.duration_ms),
        ]
        for c in report.top_calls
    ]


def hour_rows(report: Report) -> list[list[str]]:
    return [[f"{h.hour:02d}:00", count(h.calls), money(report, h.cost)] for h in busiest(report)]


BUDGET_HEADER = ("budget", "scope", "limit", "window", "spent", "used", "reached")
ANOMALY_HEADER = ("day", "spend", "median", "factor")


def _amount(value: Decimal, unit: str) -> str:
    return f"{count(int(value))} tokens" if unit == "tokens" else format_money(value, unit)


def budget_rows(report: Report) -> list[list[str]]:
    """Each budget: its limit per period, what its window holds, the thresholds reached."""
    return [
        [
            visible(b.name) + (" (blocks)" if b.block else ""),
            visible(b.scope),
            f"{_amount(b.limit, b.unit)} / {b.period}",
            b.window,
            _amount(b.spent, b.unit),
            f"{b.percent:,}%",
            ", ".join(f"{w}%" for w in b.crossed) or "—",
        ]
        for b in report.budgets
    ]


def anomaly_rows(report: Report) -> list[list[str]]:
    """Each spike day: its spend, the trailing 14-day median, spend ÷ median."""
    return [
        [
            a.day.isoformat(),
            money(report, a.spend),
            money(report, a.median),
            f"{a.factor.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}×",
        ]
        for a in report.anomalies
    ]


def period_text(period: Period) -> str:
    """`2026-11-01 00:00 → 2026-12-01 00:00 Europe/Berlin`: the bounds where the user reads them."""
    zone = _display_zone(period.tz)
    start, end = period.start.astimezone(zone), period.end.astimezone(zone)
    return (
        f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} {period.tz if zone is not UTC else 'UTC'}"
    )


_OFFSET = re.compile(r"^UTC([+-])(\d{2}):?(\d{2})$")


def _display_zone(name: str) -> tzinfo:
    """The period's zone (IANA name or `UTC+05:30`); UTC when this machine does not know it."""
    from zoneinfo import ZoneInfo

    offset = _OFFSET.match(name)
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        minutes = int(offset.group(2)) * 60 + int(offset.group(3))
        return timezone(sign * timedelta(minutes=minutes), name)
    try:
        return ZoneInfo(name)
    except Exception:  # an unknown or malformed name: still show the instants, in UTC
        return UTC


def headline(report: Report) -> list[tuple[str, str]]:
    """The report's first lines, as (name, text) pairs; the text is safe to print as is."""
    totals = report.totals
    rows = [
        ("Spend", money(report, totals.cost)),
        ("Calls", calls_summary(totals)),
        ("Tokens", tokens_summary(totals)),
        ("Cache savings", money(report, totals.savings)),
    ]
    if report.previous is not None:
        rows.append(
            (
                "Change",
                f"{percent(report.change)} (previous: {money(report, report.previous.cost)})",
            )
        )
    return rows


def warnings(report: Report) -> list[str]:
    """What the totals leave out, in plain sentences (to be escaped by the format)."""
    notes = []
    if report.totals.unpriced_calls:
        notes.append(
            f"{count(report.totals.unpriced_calls)} calls have no known price and are not in the spend."
        )
    if report.unconverted:
        notes.append(
            f"Amounts in {', '.join(report.unconverted)} have no rate to {report.currency} "
            "and are not in the spend."
        )
    if report.pruned_until:
        notes.append(
            f"Calls before {report.pruned_until[:10]} {report.pruned_until[11:16]} UTC were "
            "pruned: the totals include them, the most expensive calls do not."
        )
    return notes
