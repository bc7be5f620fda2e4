"""Reading the ledger out in bulk: every call for an export, all-time totals for metrics.

Rows come out as plain tuples in `IMPORT_COLUMNS` order (the calls row, then
its texts), the shape `Ledger.import_rows` takes back, so an export and an
import round-trip without building a `Call` per row.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from ..scope import Scope
from .store import CALL_COLUMNS, where_sql

_FETCH = 2000


def export_rows(
    conn: sqlite3.Connection,
    scope: Scope = Scope(),
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    with_text: bool = True,
) -> Iterator[tuple[object, ...]]:
    """Finished calls in `scope` and [since, until), oldest first (pending ones are in flight)."""
    where, args = where_sql(scope, since, until)
    where += (" AND " if where else " WHERE ") + "c.status != 'pending'"
    columns = ", ".join(f"c.{c}" for c in CALL_COLUMNS)
    if with_text:
        sql = (
            f"SELECT {columns}, t.system_text, t.prompt_text, t.response_text "
            f"FROM calls c LEFT JOIN call_texts t ON t.call_id = c.id{where} ORDER BY c.ts, c.id"
        )
    else:
        sql = f"SELECT {columns}, NULL, NULL, NULL FROM calls c{where} ORDER BY c.ts, c.id"
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a third of the cost of sqlite3.Row
    cursor.execute(sql, args)
    while rows := cursor.fetchmany(_FETCH):
        yield from rows


class ModelTotals(NamedTuple):
    """All-time sums for one provider, model and currency, from the month rollups."""

    provider: str
    model: str
    currency: str  # '' for calls without a price
    ok: int
    errors: int
    blocked: int
    cached: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_pico: int
    savings_pico: int
    unpriced: int


def model_totals(conn: sqlite3.Connection) -> list[ModelTotals]:
    """Totals since the ledger began; pruned calls included (the rollups keep them)."""
    sums = ", ".join(f"sum({f})" for f in ModelTotals._fields[3:])
    rows = conn.execute(
        f"SELECT provider, model, currency, {sums} FROM rollup_month_model "
        "GROUP BY provider, model, currency ORDER BY provider, model, currency"
    ).fetchall()
    return [ModelTotals(*row) for row in rows]


def known_ids(conn: sqlite3.Connection, ids: list[str]) -> tuple[set[str], set[str]]:
    """Which of `ids` the ledger holds, and which it pruned: one index probe per id."""
    listed = json.dumps(ids)
    found = []
    for table in ("calls", "pruned_calls"):
        found.append(
            {
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM {table} WHERE id IN (SELECT value FROM json_each(?))",
                    (listed,),
                )
            }
        )
    return found[0], found[1]
