"""Shared rate-limit state: one "theoretical arrival time" per bucket (GCRA).

A bucket paces requests (or tokens) at `rate` per second. Reserving `cost`
moves the bucket's arrival time forward by cost/rate and tells the caller how
long to wait before sending; every tokencli process on the machine reserves
in the same SQLite table under `BEGIN IMMEDIATE`, so together they never
exceed the configured rate, and they queue in the order they asked.
"""

from __future__ import annotations

from .store import Ledger


def reserve(ledger: Ledger, key: str, cost: float, rate: float | None, now: float) -> float:
    """Book `cost` units in bucket `key`; return seconds to wait before sending.

    With `rate=None` the bucket only holds a "blocked until" time learnt from
    the provider (a 429's Retry-After, remaining=0 headers): wait for it, book nothing.
    """
    if not rate:
        # Nothing to book: a plain read, no write lock for the many calls without limits.
        row = ledger._conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
        return max(float(row[0]) - now, 0.0) if row else 0.0
    with ledger.write() as conn:
        row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
        tat = max(float(row[0]) if row else now, now)
        wait = tat - now
        if rate:
            conn.execute(
                "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET tat = excluded.tat",
                (key, tat + cost / rate),
            )
    return max(wait, 0.0)


def adjust(ledger: Ledger, key: str, cost_delta: float, rate: float, now: float) -> None:
    """Settle a reservation with the real cost (refunds never reach into the past)."""
    if not cost_delta:
        return
    with ledger.write() as conn:
        row = conn.execute("SELECT tat FROM rate_limits WHERE key = ?", (key,)).fetchone()
        if row is None:
            return
        conn.execute(
            "UPDATE rate_limits SET tat = ? WHERE key = ?",
            (max(float(row[0]) + cost_delta / rate, now), key),
        )


def block_until(ledger: Ledger, key: str, until: float) -> None:
    """The provider said to wait: nobody sends on this bucket before `until`."""
    with ledger.write() as conn:
        conn.execute(
            "INSERT INTO rate_limits (key, tat) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET tat = max(tat, excluded.tat)",
            (key, until),
        )
