"""Budgets in the ledger: what a scope spent in a period, and what calls in flight hold.

Spend is read from the rollups (`report_queries.sums` over one segment), never
from every row. A call in flight holds its worst case against each budget that
covers it in `budget_reservations`, written in the transaction that writes its
pending row and deleted when the row is finished or recovered.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from ..scope import Scope

# The tokens a budget counts: what was sent and what came back.
BUDGET_TOKENS = ("input_tokens", "output_tokens")


class Spent(NamedTuple):
    picos: dict[str, int]  # per currency ('' for unpriced calls)
    tokens: int


class Hold(NamedTuple):
    """One call's reservation against one budget (picos in the budget's currency)."""

    budget: str
    pico: int
    tokens: int


def spent(
    conn: sqlite3.Connection,
    scope: Scope,
    windows: Mapping[str, tuple[datetime, datetime]],
    now: datetime,
) -> dict[str, Spent]:
    """Per window label: what the finished calls in `scope` recorded in [start, end).

    Inside a write transaction (the budget guard's admission) a window read for
    the first time is remembered, and finishing calls keep its total from then
    on; outside one the rollups are read. Windows that ended before `now` are
    dropped when a new one is remembered.
    """
    out = {}
    key = _scope_key(scope)
    for label, (start, end) in windows.items():
        lo, hi = _bound(start), _bound(end)
        rows = conn.execute(
            "SELECT t.currency, t.pico, t.tokens FROM budget_windows w "
            "LEFT JOIN budget_totals t USING (scope, lo, hi) "
            "WHERE w.scope = ? AND w.lo = ? AND w.hi = ?",
            (key, lo, hi),
        ).fetchall()
        if rows:
            counted = [(str(c), int(p), int(t)) for c, p, t in rows if c is not None]
            out[label] = Spent({c: p for c, p, _ in counted}, sum(t for _, _, t in counted))
            continue
        out[label] = _from_rollups(conn, scope, start, end)
        if conn.in_transaction:  # under the write lock: no call can finish in between
            _remember(conn, scope, key, lo, hi, out[label], now)
    return out


def _from_rollups(conn: sqlite3.Connection, scope: Scope, start: datetime, end: datetime) -> Spent:
    # One query per window: SQLite then searches each rollup by its time key.
    from .report_queries import Segment, sums  # it imports the store, which imports this

    picos: dict[str, int] = {}
    tokens = 0
    for row in sums(conn, [Segment("", start, end)], (), scope):
        picos[row.currency] = picos.get(row.currency, 0) + row.sums["cost_pico"]
        tokens += sum(row.sums[name] for name in BUDGET_TOKENS)
    return Spent(picos, tokens)


def _remember(
    conn: sqlite3.Connection,
    scope: Scope,
    key: str,
    lo: str,
    hi: str,
    spent: Spent,
    now: datetime,
) -> None:
    # Windows that have ended are no longer checked; dropping them keeps the
    # table (which every finishing call joins) a few rows long.
    ended = _bound(now)
    conn.execute("DELETE FROM budget_windows WHERE hi <= ?", (ended,))
    conn.execute("DELETE FROM budget_totals WHERE hi <= ?", (ended,))
    conn.execute(
        "INSERT OR IGNORE INTO budget_windows (scope, lo, hi, provider, model, project, tags) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, lo, hi, scope.provider, scope.model, scope.project, json.dumps(dict(scope.tags))),
    )
    # Tokens are kept on the row of the currency they were spent in; the seed's
    # go on its first row (a window with no spend yet has only its window row).
    for i, (currency, pico) in enumerate(spent.picos.items()):
        conn.execute(
            "INSERT OR REPLACE INTO budget_totals (scope, lo, hi, currency, pico, tokens) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, lo, hi, currency, pico, spent.tokens if i == 0 else 0),
        )


def _bound(when: datetime) -> str:
    """A window bound as the calls table writes `ts`, so the two compare as text."""
    from .store import format_ts  # the store imports this module

    return format_ts(when.astimezone(UTC))


def _scope_key(scope: Scope) -> str:
    return json.dumps([scope.provider, scope.model, scope.project, sorted(scope.tags)])


# One finished call's cost and tokens (as the rollups count them: cached answers
# cost nothing, pending rows are not counted yet) into every open window whose
# scope covers it. A window's tags must all be on the call.
_COUNT = """
INSERT INTO budget_totals (scope, lo, hi, currency, pico, tokens)
SELECT w.scope, w.lo, w.hi, coalesce(c.currency, ''),
       {sign}coalesce(c.cost_pico, 0), {sign}(c.input_tokens + c.output_tokens)
FROM calls c JOIN budget_windows w ON c.ts >= w.lo AND c.ts < w.hi
WHERE c.id = ? AND c.status NOT IN ('pending', 'cached')
  AND (w.provider IS NULL OR w.provider = c.provider)
  AND (w.model IS NULL OR w.model = c.model)
  AND (w.project IS NULL OR w.project = c.project)
  AND NOT EXISTS (
      SELECT 1 FROM json_each(w.tags) t
      WHERE json_extract(nullif(c.tags, ''), '$.' || json_quote(t.key)) IS NOT t.value)
ON CONFLICT DO UPDATE SET pico = pico + excluded.pico, tokens = tokens + excluded.tokens
"""
_ADD, _TAKE = _COUNT.format(sign=""), _COUNT.format(sign="-")


def count(conn: sqlite3.Connection, call_id: str, sign: int = 1) -> None:
    """Add (or, before it is rewritten, take out) one call in the running totals."""
    conn.execute(_ADD if sign > 0 else _TAKE, (call_id,))


def forget(conn: sqlite3.Connection) -> None:
    """Drop every running total (after a bulk change); the next check reads them again."""
    conn.execute("DELETE FROM budget_windows")
    conn.execute("DELETE FROM budget_totals")


def reserved(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per budget name: (picos, tokens) held by calls in flight."""
    return {
        str(name): (int(pico or 0), int(tokens or 0))
        for name, pico, tokens in conn.execute(
            "SELECT budget, sum(pico), sum(tokens) FROM budget_reservations GROUP BY budget"
        )
    }


def reserve(conn: sqlite3.Connection, call_id: str, holds: Iterable[Hold]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO budget_reservations (budget, call_id, pico, tokens) "
        "VALUES (?, ?, ?, ?)",
        [(h.budget, call_id, h.pico, h.tokens) for h in holds],
    )


def release(conn: sqlite3.Connection, call_id: str) -> None:
    conn.execute("DELETE FROM budget_reservations WHERE call_id = ?", (call_id,))
