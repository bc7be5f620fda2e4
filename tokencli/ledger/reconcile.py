"""What `reconcile` reads from the ledger: a provider's cost and tokens per UTC day and model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

from ..money import from_picos
from ..scope import Scope
from .store import Ledger


def daily_model_sums(
    ledger: Ledger, provider: str, start: datetime, end: datetime
) -> Iterator[tuple[date, str, dict[str, Decimal], int]]:
    """(UTC day, model, cost per currency, input + output tokens) in [start, end), from the
    rollups in one query. `start` is a UTC midnight; `end` a whole second."""
    from .report_queries import Segment, sums

    segments = []
    day = start
    while day < end:
        following = min(day + timedelta(days=1), end)
        segments.append(Segment(day.date().isoformat(), day, following))
        day = following
    if not segments:
        return
    for row in sums(ledger._conn, segments, ("model",), Scope(provider=provider)):
        tokens = row.sums["input_tokens"] + row.sums["output_tokens"]
        spent = {row.currency: from_picos(row.sums["cost_pico"])}
        yield date.fromisoformat(row.label), row.key[0], spent, tokens


def providers_in(ledger: Ledger, start: datetime, end: datetime) -> list[str]:
    """Providers with calls, or with balance snapshots, in [start, end)."""
    from .report_queries import Segment, sums
    from .store import format_ts

    found = {row.key[0] for row in sums(ledger._conn, [Segment("", start, end)], ("provider",))}
    found |= {
        str(name)
        for (name,) in ledger._conn.execute(
            "SELECT DISTINCT provider FROM balance_snapshots WHERE ts >= ? AND ts < ?"
            " AND balance_pico IS NOT NULL",
            (format_ts(start), format_ts(end)),
        )
    }
    return sorted(found)
