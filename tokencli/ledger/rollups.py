"""Keeping the report rollups in step with the calls table.

Every write of a finished call adds its numbers to each rollup table and
histogram in the same transaction (`add`); rewriting a finished call first
takes its old numbers out (`remove`). The statements aggregate in SQL, so a
bulk import of thousands of calls costs one grouped statement per table, not
one per row. Pending rows are not counted; deleting calls (`ledger prune`)
leaves the rollups alone, so pruned months keep their totals (and the pruned
ids are kept, so re-importing them cannot count them twice).

The tables themselves are created by migrations m020 and m021 (see `migrations`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence

from . import budgets
from .migrations import (
    DETAIL_KEYS,
    LATENCY_TABLES,
    PRUNED_LATENCY_TABLES,
    PRUNED_ROLLUP_TABLES,
    ROLLUP_SUMS,
    ROLLUP_TABLES,
)

# Start of the UTC block holding a call, as epoch seconds, from its ts text.
BLOCK_EXPR = {
    "hour": "CAST(strftime('%s', substr(c.ts, 1, 13) || ':00:00') AS INTEGER)",
    "day": "CAST(strftime('%s', substr(c.ts, 1, 10)) AS INTEGER)",
    "month": "CAST(strftime('%s', substr(c.ts, 1, 7) || '-01') AS INTEGER)",
    "quarter": "CAST(strftime('%s', substr(c.ts, 1, 13) || ':00:00') AS INTEGER)"
    " + CAST(substr(c.ts, 15, 2) AS INTEGER) / 15 * 900",
}
KEY_EXPR = {
    "provider": "c.provider",
    "model": "c.model",
    "project": "coalesce(c.project, '')",
    "prompt_name": "coalesce(c.prompt_name, '')",
    "prompt_version": "coalesce(c.prompt_version, 0)",
    "tags": "coalesce(c.tags, '')",
    "currency": "coalesce(c.currency, '')",
}
_SPENT = "c.status != 'cached'"
# One row's contribution to each sum; summed over a group of calls.
SUM_EXPR = {
    "calls": "1",
    "ok": "c.status = 'ok'",
    "errors": "c.status IN ('error', 'interrupted')",
    "blocked": "c.status = 'blocked'",
    "cached": "c.status = 'cached'",
    "input_tokens": f"CASE WHEN {_SPENT} THEN c.input_tokens ELSE 0 END",
    "cached_input_tokens": f"CASE WHEN {_SPENT} THEN c.cached_input_tokens ELSE 0 END",
    "cache_write_tokens": f"CASE WHEN {_SPENT} THEN c.cache_write_tokens ELSE 0 END",
    "output_tokens": f"CASE WHEN {_SPENT} THEN c.output_tokens ELSE 0 END",
    "reasoning_tokens": f"CASE WHEN {_SPENT} THEN c.reasoning_tokens ELSE 0 END",
    "cost_pico": f"CASE WHEN {_SPENT} THEN coalesce(c.cost_pico, 0) ELSE 0 END",
    "unpriced": "c.status IN ('ok', 'interrupted') AND c.cost_pico IS NULL",
    "savings_pico": "CASE WHEN c.status = 'cached' THEN coalesce(c.cost_pico, 0) ELSE 0 END",
    "duration_ms": "CASE WHEN c.status = 'ok' THEN coalesce(c.duration_ms, 0) ELSE 0 END",
}
assert tuple(SUM_EXPR) == ROLLUP_SUMS
# Latency buckets: 24 per decade (each about 10% wider than the last), so a
# percentile read from a histogram is within ±5% of the exact one. Below
# 100 ms every millisecond is its own bucket. A bucket is stored as its lower
# bound: the duration's first three digits rounded down to a step, scaled back.
BUCKET_STEPS = (
    100, 110, 121, 133, 147, 162, 178, 196, 215, 237, 261, 287,
    316, 348, 383, 422, 464, 511, 562, 619, 681, 750, 825, 909,
)  # fmt: skip
_DIGITS = "CAST(substr(c.duration_ms, 1, 3) AS INTEGER)"
_SCALE = "CAST(substr('1000000000000000', 1, length(c.duration_ms) - 2) AS INTEGER)"
# The step at or below each three-digit prefix 100..999, as one string of
# three-digit entries: one substr per call instead of a 24-way CASE.
_STEPS = "".join(
    str(max(step for step in BUCKET_STEPS if step <= digits)) for digits in range(100, 1000)
)
_STEP = f"CAST(substr('{_STEPS}', ({_DIGITS} - 100) * 3 + 1, 3) AS INTEGER)"
BUCKET_EXPR = f"CASE WHEN c.duration_ms < 100 THEN c.duration_ms ELSE {_STEP} * {_SCALE} END"


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """The durations a bucket holds: [lower, upper) in ms."""
    if bucket < 100:
        return bucket, bucket + 1
    scale = 10 ** (len(str(bucket)) - 3)
    step = bucket // scale
    i = BUCKET_STEPS.index(step)
    upper = BUCKET_STEPS[i + 1] * scale if i + 1 < len(BUCKET_STEPS) else 1000 * scale
    return bucket, upper


def bucket_middle(bucket: int) -> int:
    """The value a percentile falling in this bucket is reported as (its geometric middle)."""
    lower, upper = bucket_bounds(bucket)
    return lower if upper - lower == 1 else round((lower * upper) ** 0.5)


def _statements(
    where: str,
    sign: str,
    source: str = "calls",
    tables: Mapping[str, tuple[str, tuple[str, ...]]] = ROLLUP_TABLES,
    latency: Mapping[str, str] = LATENCY_TABLES,
) -> list[str]:
    out = []
    for table, (block, keys) in tables.items():
        columns = ", ".join((block, *keys, *ROLLUP_SUMS))
        group = ", ".join(str(i) for i in range(1, len(keys) + 2))
        select = ", ".join(
            (
                BLOCK_EXPR[block],
                *(KEY_EXPR[k] for k in keys),
                *(f"{sign}sum({SUM_EXPR[s]})" for s in ROLLUP_SUMS),
            )
        )
        updates = ", ".join(f"{s} = {s} + excluded.{s}" for s in ROLLUP_SUMS)
        out.append(
            f"INSERT INTO {table} ({columns}) SELECT {select} FROM {source} c "
            f"WHERE ({where}) AND c.status != 'pending' GROUP BY {group} "
            f"ON CONFLICT DO UPDATE SET {updates}"
        )
    for table, block in latency.items():
        out.append(
            f"INSERT INTO {table} ({block}, provider, model, bucket, n) "
            f"SELECT {BLOCK_EXPR[block]}, c.provider, c.model, {BUCKET_EXPR}, {sign}count(*) "
            f"FROM {source} c WHERE ({where}) AND c.status = 'ok' AND c.duration_ms IS NOT NULL "
            "GROUP BY 1, 2, 3, 4 ON CONFLICT DO UPDATE SET n = n + excluded.n"
        )
    return out


_ADD_ONE = _statements("c.id = ?", "")
_REMOVE_ONE = _statements("c.id = ?", "-")


def add(conn: sqlite3.Connection, call_id: str) -> None:
    """Count one call (if finished) into the rollups and the budgets' running totals.
    Inside the caller's transaction."""
    for statement in _ADD_ONE:
        conn.execute(statement, (call_id,))
    budgets.count(conn, call_id)


def remove(conn: sqlite3.Connection, call_id: str) -> None:
    """Take one call's current numbers out of the rollups, before it is rewritten."""
    for statement in _REMOVE_ONE:
        conn.execute(statement, (call_id,))
    budgets.count(conn, call_id, -1)


# A block's start from the start of the hour or day holding it, for bulk adds.
_MONTH_OF = "CAST(strftime('%s', b.{0}, 'unixepoch', 'start of month') AS INTEGER)"
_FROM_HOUR = {"hour": "b.hour", "month": _MONTH_OF.format("hour")}
_FROM_DAY = {"day": "b.day", "month": _MONTH_OF.format("day")}


@functools.cache  # built once, run for every chunk of an import
def _bulk_statements(source: str) -> tuple[str, ...]:
    """Statements counting every call of `source` into the rollups, in two steps.

    The calls are summed once per UTC hour and model, once per UTC day and
    detail key, and their latency once per day and bucket, into temp tables;
    each rollup is then a grouped sum over the narrowest of those, so the
    per-call expressions run three times per call, not once per table.
    """
    sums = ", ".join(f"sum({SUM_EXPR[s]}) AS {s}" for s in ROLLUP_SUMS)
    model_keys = ("provider", "model", "currency")
    bases = {
        # name: (block, keys)
        "bulk_hour": ("hour", model_keys),
        "bulk_day": ("day", DETAIL_KEYS),
    }
    out = []
    for name, (block, keys) in bases.items():
        key_sql = ", ".join(f"{KEY_EXPR[k]} AS {k}" for k in keys)
        out += [
            f"DROP TABLE IF EXISTS temp.{name}",
            f"CREATE TEMP TABLE {name} AS SELECT {BLOCK_EXPR[block]} AS {block}, {key_sql}, "
            f"{sums} FROM {source} c WHERE c.status != 'pending' "
            f"GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 2))}",
        ]
    out += [
        "DROP TABLE IF EXISTS temp.bulk_latency",
        f"CREATE TEMP TABLE bulk_latency AS SELECT {BLOCK_EXPR['day']} AS day, c.provider, "
        f"c.model, {BUCKET_EXPR} AS bucket, count(*) AS n FROM {source} c "
        "WHERE c.status = 'ok' AND c.duration_ms IS NOT NULL GROUP BY 1, 2, 3, 4",
    ]
    updates = ", ".join(f"{s} = {s} + excluded.{s}" for s in ROLLUP_SUMS)
    for table, (block, table_keys) in ROLLUP_TABLES.items():
        base, from_base = (
            ("bulk_day", _FROM_DAY) if table_keys == DETAIL_KEYS else ("bulk_hour", _FROM_HOUR)
        )
        block_sql = from_base[block]
        columns = ", ".join((block, *table_keys, *ROLLUP_SUMS))
        select = ", ".join(
            (block_sql, *(f"b.{k}" for k in table_keys), *(f"sum(b.{s})" for s in ROLLUP_SUMS))
        )
        group = ", ".join(str(i) for i in range(1, len(table_keys) + 2))
        out.append(
            f"INSERT INTO {table} ({columns}) SELECT {select} FROM temp.{base} b WHERE 1 "
            f"GROUP BY {group} ON CONFLICT DO UPDATE SET {updates}"
        )
    for table, block in LATENCY_TABLES.items():
        out.append(
            f"INSERT INTO {table} ({block}, provider, model, bucket, n) "
            f"SELECT {_FROM_DAY[block]}, b.provider, b.model, b.bucket, sum(b.n) "
            "FROM temp.bulk_latency b WHERE 1 GROUP BY 1, 2, 3, 4 "
            "ON CONFLICT DO UPDATE SET n = n + excluded.n"
        )
    return tuple(out)


def add_table(conn: sqlite3.Connection, table: str) -> None:
    """Count every call in `table` (shaped like `calls`: a bulk import's staging
    table) into the rollups, set-wise. Inside the caller's transaction."""
    for statement in _bulk_statements(table):
        conn.execute(statement)
    budgets.forget(conn)  # read again from the rollups at the next check


_KEEP_PRUNED = _statements("1", "", "temp.doomed", PRUNED_ROLLUP_TABLES, PRUNED_LATENCY_TABLES)


def keep_pruned(conn: sqlite3.Connection) -> None:
    """Count the calls about to be pruned (rows copied to temp.doomed) into the quarter-hour tables."""
    for statement in _KEEP_PRUNED:
        conn.execute(statement)


def rebuild(conn: sqlite3.Connection) -> None:
    """Fill empty rollups from every call (the migration that creates them)."""
    for statement in _statements("1", ""):
        conn.execute(statement)


def rollup_columns() -> Sequence[str]:
    return ROLLUP_SUMS
