"""The alerts table: history, de-duplication and the outbox of deliveries.

One row per (alert key, channel). `enqueue` inserts a key's rows only if the
key was never seen, under the write lock, so two processes raising the same
alert at once make one set of rows: each alert fires once. `claim` marks rows
`sending` in one transaction, so two processes never send the same row;
`settle` records `sent` or `failed` (retried by the next `claim`), and a
`sent` row is never claimed again. A claim left by a killed process is taken
over after `STALE_CLAIM_S`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .store import Ledger, format_ts

MAX_ATTEMPTS = 10
STALE_CLAIM_S = 300.0


class Queued(NamedTuple):
    key: str
    channel: str
    kind: str
    title: str
    id: str
    payload: str  # the alert's JSON (no channel secrets)


class AlertRow(NamedTuple):
    key: str
    kind: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    ts: str
    sent_ts: str | None


def enqueue(ledger: Ledger, rows: Sequence[Queued]) -> list[str]:
    """Insert each key's rows unless the key exists; return the keys that were new."""
    fresh: list[str] = []
    if not rows:
        return fresh
    ts = format_ts(ledger.clock.now())
    with ledger.write() as conn:
        seen: dict[str, bool] = {}
        for row in rows:
            if row.key not in seen:
                found = conn.execute("SELECT 1 FROM alerts WHERE key = ? LIMIT 1", (row.key,))
                seen[row.key] = found.fetchone() is None
                if seen[row.key]:
                    fresh.append(row.key)
            if seen[row.key]:
                conn.execute(
                    "INSERT OR IGNORE INTO alerts (key, channel, kind, title, id, payload, status, ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (row.key, row.channel, row.kind, row.title, row.id, row.payload, ts),
                )
    return fresh


def has_undelivered(ledger: Ledger) -> bool:
    """One read of a partial index: is anything left to send?"""
    row = ledger._conn.execute(
        "SELECT 1 FROM alerts WHERE status != 'sent' AND attempts < ? LIMIT 1", (MAX_ATTEMPTS,)
    ).fetchone()
    return row is not None


def claim(ledger: Ledger, channels: Sequence[str], now: float, limit: int = 50) -> list[Queued]:
    """Take the rows to send now (pending, failed, or claimed by a process long gone)."""
    if not channels:
        return []
    marks = ", ".join("?" for _ in channels)
    with ledger.write() as conn:
        rows = conn.execute(
            f"SELECT key, channel, kind, title, id, payload FROM alerts"
            f" WHERE status != 'sent' AND attempts < ? AND channel IN ({marks})"
            f" AND (status != 'sending' OR claimed_at < ?) ORDER BY ts LIMIT ?",
            (MAX_ATTEMPTS, *channels, now - STALE_CLAIM_S, limit),
        ).fetchall()
        for row in rows:
            conn.execute(
                "UPDATE alerts SET status = 'sending', attempts = attempts + 1, claimed_at = ?"
                " WHERE key = ? AND channel = ?",
                (now, row["key"], row["channel"]),
            )
    return [Queued(*row) for row in rows]


def settle(ledger: Ledger, key: str, channel: str, error: str | None) -> None:
    """Record a delivery's outcome (`error` already scrubbed of secrets)."""
    with ledger.write() as conn:
        if error is None:
            conn.execute(
                "UPDATE alerts SET status = 'sent', last_error = NULL, sent_ts = ?, claimed_at = NULL"
                " WHERE key = ? AND channel = ?",
                (format_ts(ledger.clock.now()), key, channel),
            )
        else:
            conn.execute(
                "UPDATE alerts SET status = 'failed', last_error = ?, claimed_at = NULL"
                " WHERE key = ? AND channel = ?",
                (error[:500], key, channel),
            )


def history(ledger: Ledger, limit: int = 200) -> list[AlertRow]:
    """The newest alerts first."""
    rows = ledger._conn.execute(
        "SELECT key, kind, channel, status, attempts, last_error, ts, sent_ts FROM alerts"
        " ORDER BY ts DESC, key, channel LIMIT ?",
        (limit,),
    ).fetchall()
    return [AlertRow(*row) for row in rows]


def fired(ledger: Ledger, key: str) -> bool:
    """Has this key been raised before (by any process)?"""
    row = ledger._conn.execute("SELECT 1 FROM alerts WHERE key = ? LIMIT 1", (key,)).fetchone()
    return row is not None


def release(ledger: Ledger, rows: Sequence[Queued]) -> None:
    """Give back claimed rows not tried (out of time): no attempt counted."""
    with ledger.write() as conn:
        for row in rows:
            conn.execute(
                "UPDATE alerts SET status = CASE WHEN last_error IS NULL THEN 'pending' ELSE 'failed' END,"
                " attempts = attempts - 1, claimed_at = NULL"
                " WHERE key = ? AND channel = ? AND status = 'sending'",
                (row.key, row.channel),
            )


def recent_statuses(ledger: Ledger, provider: str, count: int) -> list[tuple[str, str]]:
    """The newest `count` finished calls of a provider, newest first: (id, status)."""
    rows = ledger._conn.execute(
        "SELECT id, status FROM calls"
        " WHERE provider = ? AND status IN ('ok', 'error') ORDER BY ts DESC LIMIT ?",
        (provider, count),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]
