"""The report rollups always equal what the calls table says, whatever wrote the calls."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from tokencli.calls.usage import Usage
from tokencli.ledger import Call, Ledger, rollups
from tokencli.ledger.migrations import LATENCY_TABLES, ROLLUP_TABLES

TABLES = (*ROLLUP_TABLES, *LATENCY_TABLES)


def _nonzero_rows(conn: sqlite3.Connection, table: str) -> list[tuple]:
    value_column = "n" if table in LATENCY_TABLES else "calls"
    rows = conn.execute(
        f"SELECT * FROM {table} WHERE {value_column} != 0 ORDER BY 1, 2, 3, 4"
    ).fetchall()
    return [tuple(r) for r in rows]


def assert_rollups_match_calls(ledger: Ledger) -> None:
    conn = ledger._conn
    actual = {t: _nonzero_rows(conn, t) for t in TABLES}
    conn.execute("BEGIN")
    try:
        for t in TABLES:
            conn.execute(f"DELETE FROM {t}")
        rollups.rebuild(conn)
        expected = {t: _nonzero_rows(conn, t) for t in TABLES}
    finally:
        conn.execute("ROLLBACK")
    assert actual == expected


def _call(i: int, status: str = "ok", **kw) -> Call:
    return Call(
        id=f"01JZZZZZZZZZZZZZZZZZZZZZ{i:02d}",
        ts=kw.pop("ts", f"2026-11-{10 + i % 5:02d}T{i % 24:02d}:30:00.000000Z"),
        provider=kw.pop("provider", "openai"),
        model=kw.pop("model", "gpt-4o-mini"),
        status=status,
        pid=kw.pop("pid", 1),
        usage=Usage(input_tokens=100 + i, output_tokens=10 + i, cached_input_tokens=i),
        cost=kw.pop("cost", Decimal("0.000123") * (i + 1)),
        currency=kw.pop("currency", "USD"),
        duration_ms=kw.pop("duration_ms", 1234 + 17 * i),
        **kw,
    )


def test_every_write_path_keeps_rollups_equal_to_calls(tmp_path: Path):
    ledger = Ledger.open(tmp_path / "l.db")
    assert ledger is not None
    # A finished call written whole, a pending one finished later, a cached answer.
    ledger.insert_call(_call(1, project="blog", tags={"step": "draft"}))
    pending = _call(2, status="pending", prompt_name="title", prompt_version=2)
    ledger.insert_call(pending)
    counted = ledger._conn.execute("SELECT sum(calls) FROM rollup_hour").fetchone()[0]
    assert counted == 1  # the pending call is not counted yet
    pending.status = "ok"
    ledger.finish_call(pending)
    ledger.insert_call(_call(3, status="cached", cost=Decimal("0.5")))
    ledger.insert_call(_call(4, status="error", cost=None, duration_ms=None))
    ledger.insert_call(_call(5, status="ok", cost=None, currency=None))  # unknown price
    # Finishing an already finished call moves its numbers instead of adding them twice.
    again = _call(1, project="blog", tags={"step": "draft"}, cost=Decimal("9"))
    ledger.finish_call(again)
    # A killed process's pending row, recovered as interrupted.
    ledger.recover_abandoned("somewhere-else", lambda pid: False)  # other host: untouched
    dead = _call(7, status="pending", pid=999_999)
    ledger.insert_call(dead)
    ledger.recover_abandoned(dead.host, lambda pid: pid != 999_999)
    # A bulk import with one call already present.
    counts = ledger.import_calls([_call(i, provider="anthropic") for i in (8, 9, 10)] + [_call(3)])
    assert (counts.inserted, counts.skipped, counts.pruned) == (3, 1, 0)
    assert_rollups_match_calls(ledger)

    totals = ledger._conn.execute(
        "SELECT sum(calls), sum(ok), sum(errors), sum(cached), sum(unpriced), sum(cost_pico), "
        "sum(savings_pico) FROM rollup_hour"
    ).fetchone()
    statuses = [
        r[0] for r in ledger._conn.execute("SELECT status FROM calls WHERE status != 'pending'")
    ]
    assert totals[0] == len(statuses)
    assert totals[1] == statuses.count("ok")
    assert totals[2] == statuses.count("error") + statuses.count("interrupted")
    assert totals[3] == 1 and totals[6] == 500_000_000_000  # $0.5 saved, not spent
    assert totals[4] == 1  # call 5
    spent = ledger._conn.execute(
        "SELECT sum(cost_pico) FROM calls WHERE status != 'cached' AND cost_pico IS NOT NULL"
    ).fetchone()[0]
    assert totals[5] == spent


def test_latency_buckets_are_within_five_percent(tmp_path: Path):
    ledger = Ledger.open(tmp_path / "l.db")
    assert ledger is not None
    durations = (0, 7, 99, 100, 109, 110, 1234, 1299, 9999, 98765, 1_000_000)
    for i, ms in enumerate(durations):
        ledger.insert_call(_call(i, duration_ms=ms, ts="2026-11-10T10:00:00.000000Z"))
    buckets = [r[0] for r in ledger._conn.execute("SELECT bucket FROM latency_day ORDER BY bucket")]
    assert buckets == [0, 7, 99, 100, 110, 1210, 9090, 90900, 1_000_000]
    for ms in (100, 109, 1234, 1299, 9999, 98765, 1_000_000, 123_456_789):
        expr = rollups.BUCKET_EXPR.replace("c.duration_ms", str(ms))
        bucket = ledger._conn.execute(f"SELECT {expr}").fetchone()[0]
        lower, upper = rollups.bucket_bounds(bucket)
        assert lower <= ms < upper
        assert abs(rollups.bucket_middle(bucket) - ms) / ms < 0.05 + 1e-9


def test_migration_fills_rollups_from_existing_calls(tmp_path: Path):
    """A ledger from before the rollups gets them filled when it is opened."""
    path = tmp_path / "old.db"
    ledger = Ledger.open(path)
    assert ledger is not None
    for i in range(1, 6):
        ledger.insert_call(_call(i, project="p"))
    before = _nonzero_rows(ledger._conn, "rollup_day_detail")
    conn = ledger._conn
    conn.execute("BEGIN")
    for t in TABLES:
        conn.execute(f"DROP TABLE {t}")
    conn.execute("DROP INDEX calls_cost")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm020_rollups'")
    conn.execute("COMMIT")
    ledger.close()
    reopened = Ledger.open(path)
    assert reopened is not None
    assert _nonzero_rows(reopened._conn, "rollup_day_detail") == before
    assert_rollups_match_calls(reopened)


def test_budget_running_totals_equal_the_rollups_after_every_write_path(tmp_path: Path):
    """The budget guard reads a scope's spend from running totals kept by each
    finishing call; they must always equal a fresh read of the rollups."""
    from datetime import UTC, datetime

    from tokencli.ledger import budgets
    from tokencli.scope import Scope

    ledger = Ledger.open(tmp_path / "l.db")
    assert ledger is not None
    conn = ledger._conn
    scopes = [
        Scope(),
        Scope(provider="openai"),
        Scope(provider="openai", model="gpt-4o-mini"),
        Scope(project="blog"),
        Scope(tags=(("step", "draft"),)),
        Scope(project="blog", tags=(("step", "draft"), ('we"ird', "x"))),
    ]
    windows = {
        "month": (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        # Edges inside a day: read from the calls, not the daily rollups.
        "local day": (datetime(2026, 11, 12, 5, tzinfo=UTC), datetime(2026, 11, 13, 5, tzinfo=UTC)),
    }

    now = datetime(2026, 11, 12, 9, tzinfo=UTC)

    def check() -> None:
        with ledger.write() as c:
            for scope in scopes:
                kept = budgets.spent(c, scope, windows, now)
                fresh = {label: budgets._from_rollups(c, scope, *w) for label, w in windows.items()}
                assert kept == fresh, scope

    ledger.insert_call(_call(0, project="blog", tags={"step": "draft", 'we"ird': "x"}))
    check()  # the first check remembers every window
    assert conn.execute("SELECT count(*) FROM budget_windows").fetchone()[0] == 12
    ledger.insert_call(_call(1, project="blog", tags={"step": "draft"}))
    pending = _call(2, status="pending", project="blog", tags={"step": "draft", 'we"ird': "x"})
    ledger.insert_call(pending)
    pending.status = "ok"
    ledger.finish_call(pending)
    ledger.insert_call(_call(3, status="cached", cost=Decimal("0.5"), tags={"step": "draft"}))
    ledger.insert_call(_call(4, status="error", cost=None, duration_ms=None, project="blog"))
    ledger.insert_call(_call(5, status="ok", cost=None, currency=None, provider="anthropic"))
    ledger.insert_call(_call(6, currency="CNY", cost=Decimal("0.7"), tags={"step": "edit"}))
    ledger.finish_call(_call(1, project="blog", tags={"step": "draft"}, cost=Decimal("9")))
    dead = _call(7, status="pending", pid=999_999, project="blog", tags={"step": "draft"})
    ledger.insert_call(dead)
    ledger.recover_abandoned(dead.host, lambda pid: pid != 999_999)
    check()
    assert conn.execute("SELECT count(*) FROM budget_windows").fetchone()[0] == 12
    # A bulk import drops the totals; the next check reads the rollups again.
    ledger.import_calls([_call(i, project="blog", tags={"step": "draft"}) for i in (8, 9)])
    assert conn.execute("SELECT count(*) FROM budget_windows").fetchone()[0] == 0
    check()
    ledger.insert_call(_call(10, project="blog", tags={"step": "draft"}))
    check()
