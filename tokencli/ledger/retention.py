"""Audit retention: deleting old calls while their totals stay.

The rollups (hour, day, month) are left alone, so reports and Prometheus
counters for pruned months do not change; the pruned calls are counted into
quarter-hour tables first, for reports whose edges fall inside an hour or a
day; the pruned ids are kept in `pruned_calls`, so importing a backup that
still holds them cannot count them a second time. Calls still in flight
(`pending`) are never deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from . import rollups
from .store import Ledger

CHUNK = 10_000  # calls per transaction: other writers wait at most a moment


class PruneCounts(NamedTuple):
    calls: int  # deleted, or that would be with a dry run
    first_ts: str | None  # the oldest and newest of them
    last_ts: str | None
    pending_kept: int  # older than the cutoff but still in flight


def prunable(ledger: Ledger, cutoff: str) -> PruneCounts:
    """What pruning calls older than `cutoff` (a ledger timestamp) would delete."""
    count, first, last = ledger._conn.execute(
        "SELECT count(*), min(ts), max(ts) FROM calls WHERE ts < ? AND status != 'pending'",
        (cutoff,),
    ).fetchone()
    pending = ledger._conn.execute(
        "SELECT count(*) FROM calls WHERE ts < ? AND status = 'pending'", (cutoff,)
    ).fetchone()[0]
    return PruneCounts(int(count), first, last, int(pending))


def prune(
    ledger: Ledger,
    cutoff: str,
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> PruneCounts:
    """Delete finished calls older than `cutoff`, with their texts and tags, in chunks."""
    plan = prunable(ledger, cutoff)
    conn = ledger._conn
    # Whole rows: the quarter-hour totals are summed from this copy, read in order,
    # rather than by looking each call up again.
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed AS SELECT * FROM main.calls WHERE 0")
    deleted = 0
    while True:
        with ledger.write():
            conn.execute("DELETE FROM temp.doomed")
            conn.execute(
                "INSERT INTO temp.doomed SELECT * FROM main.calls"
                " WHERE ts < ? AND status != 'pending' ORDER BY ts LIMIT ?",
                (cutoff, chunk),
            )
            # Recorded in the same transaction as the delete: never one without the other.
            rollups.keep_pruned(conn)
            conn.execute("INSERT OR IGNORE INTO main.pruned_calls SELECT id FROM temp.doomed")
            for table in ("call_texts", "call_tags"):
                conn.execute(f"DELETE FROM main.{table} WHERE call_id IN (SELECT id FROM doomed)")
            n = conn.execute("DELETE FROM main.calls WHERE id IN (SELECT id FROM doomed)").rowcount
        deleted += n
        if progress:
            progress(deleted)
        if n < chunk:
            break
    return plan._replace(calls=deleted)


def vacuum(ledger: Ledger) -> None:
    """Give the freed pages back to the file system (rewrites the file; needs a moment alone)."""
    ledger._conn.execute("VACUUM")
    ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
