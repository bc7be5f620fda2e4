"""Budgets in the ledger: what a scope spent in a period, and what calls in flight hold.

Spend is read from the rollups (`report_queries.sums` over one segment), never
from every row. A call in flight holds its worst case against each budget that
covers it in `budget_reservations`, written in the transaction that writes its
pending row and deleted when the row is finished or recovered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
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
    conn: sqlite3.Connection, scope: Scope, windows: Mapping[str, tuple[datetime, datetime]]
) -> dict[str, Spent]:
    """Per window label: what the finished calls in `scope` recorded in [start, end).

    One query per window: SQLite then searches each rollup by its time key (one
    query over several windows joined to them is about twice as slow).
    """
    from .report_queries import Segment, sums  # it imports the store, which imports this

    picos: dict[str, dict[str, int]] = {label: {} for label in windows}
    tokens = dict.fromkeys(windows, 0)
    for label, (start, end) in windows.items():
        for row in sums(conn, [Segment(label, start, end)], (), scope):
            per_currency = picos[label]
            per_currency[row.currency] = per_currency.get(row.currency, 0) + row.sums["cost_pico"]
            tokens[label] += sum(row.sums[name] for name in BUDGET_TOKENS)
    return {label: Spent(picos[label], tokens[label]) for label in windows}


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
