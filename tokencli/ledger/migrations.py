"""The ledger's schema, as ordered, append-only migrations.

Each (name, function) runs once, in list order, inside one transaction
together with its record in `_sqlite_migrations` (sqlite-utils' Migrations).
Never edit or reorder an applied migration: append a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database

MIGRATION_SET = "tokencli"


def _m001_calls(db: Database) -> None:
    for statement in (
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            ts TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            response_model TEXT,
            alias TEXT,
            project TEXT,
            tags TEXT,
            prompt_name TEXT,
            prompt_version INTEGER,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            total_tokens INTEGER NOT NULL DEFAULT 0,
            usage_source TEXT,
            cost_pico INTEGER,
            currency TEXT,
            price_source TEXT,
            duration_ms INTEGER,
            ttft_ms INTEGER,
            status TEXT NOT NULL,
            error_kind TEXT,
            error_message TEXT,
            request_id TEXT,
            finish_reason TEXT,
            stream INTEGER,
            params TEXT,
            extra TEXT
        )
        """,
        "CREATE INDEX calls_ts ON calls(ts)",
        "CREATE INDEX calls_provider_model_ts ON calls(provider, model, ts)",
        "CREATE INDEX calls_project_ts ON calls(project, ts)",
        "CREATE INDEX calls_pending ON calls(host, pid) WHERE status = 'pending'",
        """
        CREATE TABLE call_texts (
            call_id TEXT PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
            system_text TEXT,
            prompt_text TEXT,
            response_text TEXT
        )
        """,
        """
        CREATE TABLE call_tags (
            call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (call_id, key)
        )
        """,
        "CREATE INDEX call_tags_key_value ON call_tags(key, value)",
        "CREATE TABLE notices (key TEXT PRIMARY KEY, ts TEXT NOT NULL)",
    ):
        db.execute(statement)


def _m010_cache_batch_rate_limits(db: Database) -> None:
    """Response cache keys, batch item identity, and shared rate-limit state."""
    for statement in (
        "ALTER TABLE calls ADD COLUMN cache_key TEXT",
        "ALTER TABLE calls ADD COLUMN batch_id TEXT",
        "ALTER TABLE calls ADD COLUMN batch_item TEXT",
        "CREATE INDEX calls_cache_key ON calls(cache_key, ts) WHERE cache_key IS NOT NULL",
        "CREATE INDEX calls_batch ON calls(batch_id, batch_item) WHERE batch_id IS NOT NULL",
        # One row per (provider, model, dimension): the GCRA "theoretical arrival
        # time" as epoch seconds, shared by every tokencli process on the machine.
        "CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat REAL NOT NULL)",
    ):
        db.execute(statement)


# Rollups for reports: sums per time block, so a year of calls is read as
# thousands of rows. Blocks are UTC hours, days or months (epoch seconds of
# their start); every report period is covered by whole blocks plus raw calls
# at its edges (see `report_queries`). Statuses are folded into columns.
# NULLs are stored as '' / 0 (NULLs never conflict in a primary key).
ROLLUP_SUMS = (
    "calls",  # every finished call (not pending)
    "ok",
    "errors",  # error + interrupted
    "blocked",
    "cached",
    # Tokens and cost: calls that reached a model (cached answers excluded).
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_pico",
    "unpriced",  # calls with an unknown cost, left out of cost_pico
    "savings_pico",  # what cached answers would have cost
    "duration_ms",  # summed over ok calls, for the mean
)
DETAIL_KEYS = ("provider", "model", "project", "prompt_name", "prompt_version", "tags", "currency")
ROLLUP_TABLES = {
    # table: (block column, key columns after the block)
    "rollup_hour": ("hour", ("currency",)),
    "rollup_hour_model": ("hour", ("provider", "model", "currency")),
    "rollup_month_model": ("month", ("provider", "model", "currency")),
    "rollup_day_detail": ("day", DETAIL_KEYS),
    "rollup_month_detail": ("month", DETAIL_KEYS),
}
# Latency histograms of ok calls: `bucket` is the duration rounded down to two
# significant digits (1234 ms → 1200), so percentiles are exact to that.
LATENCY_TABLES = {"latency_day": "day", "latency_month": "month"}
# Filled by `ledger prune` only, with the calls it deletes: reports read a
# period's edges that are not whole hours or days (a local midnight in
# Kolkata, a project report's partial day) from the calls themselves, and
# from these quarter hours (every zone's offset is a multiple of 15 minutes)
# once the calls are gone.
PRUNED_ROLLUP_TABLES = {"rollup_quarter_detail": ("quarter", DETAIL_KEYS)}
PRUNED_LATENCY_TABLES = {"latency_quarter": "quarter"}


_TEXT_KEYS = {"provider", "model", "project", "prompt_name", "tags", "currency"}


def _create_rollup(db: Database, table: str, block: str, keys: tuple[str, ...]) -> None:
    key_sql = ", ".join(f"{k} {'TEXT' if k in _TEXT_KEYS else 'INTEGER'} NOT NULL" for k in keys)
    sums_sql = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in ROLLUP_SUMS)
    db.execute(
        f"CREATE TABLE {table} ({block} INTEGER NOT NULL, {key_sql}, {sums_sql}, "
        f"PRIMARY KEY ({block}, {', '.join(keys)})) WITHOUT ROWID"
    )


def _create_latency(db: Database, table: str, block: str) -> None:
    db.execute(
        f"CREATE TABLE {table} ({block} INTEGER NOT NULL, provider TEXT NOT NULL, "
        "model TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 0, "
        f"PRIMARY KEY ({block}, provider, model, bucket)) WITHOUT ROWID"
    )


def _m020_rollups(db: Database) -> None:
    """Rollup tables and histograms for reports, filled from existing calls."""
    for table, (block, keys) in ROLLUP_TABLES.items():
        _create_rollup(db, table, block, keys)
    for table, block in LATENCY_TABLES.items():
        _create_latency(db, table, block)
    # The most expensive calls of a period, walked from the top.
    db.execute("CREATE INDEX calls_cost ON calls(cost_pico) WHERE cost_pico IS NOT NULL")
    from .rollups import rebuild

    rebuild(db.conn)


def _m021_pruned_calls(db: Database) -> None:
    """Ids of calls that `ledger prune` deleted, and their quarter-hour totals.

    Their numbers stay in the rollups, so importing a backup that still holds
    them must skip them as already counted; an id is all that needs keeping.
    """
    db.execute("CREATE TABLE pruned_calls (id TEXT PRIMARY KEY) WITHOUT ROWID")
    for table, (block, keys) in PRUNED_ROLLUP_TABLES.items():
        _create_rollup(db, table, block, keys)
    for table, block in PRUNED_LATENCY_TABLES.items():
        _create_latency(db, table, block)


def _m030_prompts(db: Database) -> None:
    """The prompt library: immutable versions of named prompts, and movable labels.

    A version used by recorded calls (calls.prompt_name/prompt_version) is never
    deleted, only marked `retired`, so a call's prompt can always be looked up.
    """
    for statement in (
        """
        CREATE TABLE prompt_versions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            system TEXT,
            template TEXT NOT NULL,
            model TEXT,
            params TEXT,
            note TEXT,
            ts TEXT NOT NULL,
            hash TEXT NOT NULL,
            retired INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (name, version)
        )
        """,
        """
        CREATE TABLE prompt_labels (
            name TEXT NOT NULL,
            label TEXT NOT NULL,
            version INTEGER NOT NULL,
            ts TEXT NOT NULL,
            PRIMARY KEY (name, label)
        )
        """,
        "CREATE INDEX calls_prompt ON calls(prompt_name, prompt_version)"
        " WHERE prompt_name IS NOT NULL",
    ):
        db.execute(statement)


def _m031_comparisons(db: Database) -> None:
    """Saved `compare` runs: what was compared (spec) and what came out (results)."""
    db.execute(
        "CREATE TABLE comparisons (id TEXT PRIMARY KEY, ts TEXT NOT NULL, mode TEXT NOT NULL, "
        "status TEXT NOT NULL, spec TEXT NOT NULL, results TEXT)"
    )
    db.execute("CREATE INDEX comparisons_ts ON comparisons(ts)")


def _m032_circuits(db: Database) -> None:
    """The circuit breaker's state, shared by every tokencli process (`ledger.circuits`).

    One row per key (a provider, or PROVIDER:MODEL) that has failed lately or is set aside;
    a key with no row is closed with no failures. Times are wall-clock epoch seconds.
    """
    db.execute(
        """
        CREATE TABLE circuits (
            key TEXT PRIMARY KEY,
            failures INTEGER NOT NULL DEFAULT 0,
            last_kind TEXT,
            last_model TEXT,
            spread INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'closed',
            opened_at REAL,
            open_until REAL,
            reason TEXT,
            probe_owner TEXT,
            probe_at REAL
        ) WITHOUT ROWID
        """
    )


def _m033_budget_reservations(db: Database) -> None:
    """What calls in flight hold against each budget: written with the pending row,
    deleted when the call ends (or is recovered as interrupted)."""
    db.execute(
        "CREATE TABLE budget_reservations (budget TEXT NOT NULL, call_id TEXT NOT NULL, "
        "pico INTEGER NOT NULL DEFAULT 0, tokens INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (budget, call_id))"
    )
    db.execute("CREATE INDEX budget_reservations_call ON budget_reservations(call_id)")


def _m034_alerts(db: Database) -> None:
    """Alert history and outbox: one row per (alert key, channel).

    A key is inserted once (the first process to raise it wins), so an alert
    fires once; `status` pending → sending → sent or failed, retried until sent.
    """
    db.execute(
        """
        CREATE TABLE alerts (
            key TEXT NOT NULL,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            id TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            ts TEXT NOT NULL,
            claimed_at REAL,
            sent_ts TEXT,
            PRIMARY KEY (key, channel)
        )
        """
    )
    db.execute("CREATE INDEX alerts_ts ON alerts(ts)")
    # What is left to deliver: the one read every command makes, empty almost always.
    db.execute("CREATE INDEX alerts_undelivered ON alerts(attempts) WHERE status != 'sent'")


def _m035_budget_totals(db: Database) -> None:
    """Running totals of what each budget scope spent in each open period.

    `budget_windows` names a (scope, period) the budget guard has read once from
    the rollups; `budget_totals` holds its spend per currency, and every call
    that finishes adds to the windows that cover it (see `ledger.budgets`).
    """
    db.execute(
        "CREATE TABLE budget_windows (scope TEXT NOT NULL, lo TEXT NOT NULL, hi TEXT NOT NULL, "
        "provider TEXT, model TEXT, project TEXT, tags TEXT NOT NULL, "
        "PRIMARY KEY (scope, lo, hi)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE budget_totals (scope TEXT NOT NULL, lo TEXT NOT NULL, hi TEXT NOT NULL, "
        "currency TEXT NOT NULL, pico INTEGER NOT NULL DEFAULT 0, "
        "tokens INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (scope, lo, hi, currency)) WITHOUT ROWID"
    )


def _m036_refills(db: Database) -> None:
    """Top-ups and free grants (`refill add`), and the live balances seen (`refill status`).

    `quantity` is picos for money (`unit` a currency code) or a whole number of
    tokens (`unit` = 'tokens'). A snapshot row is one provider's balance in one
    currency at one time, or, with `error` set, a query that failed (never zero).
    """
    db.execute(
        """
        CREATE TABLE refills (
            id TEXT PRIMARY KEY,
            ts TEXT NOT NULL,
            provider TEXT NOT NULL,
            unit TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            is_grant INTEGER NOT NULL DEFAULT 0,
            expires TEXT,
            note TEXT,
            host TEXT
        )
        """
    )
    db.execute("CREATE INDEX refills_provider_ts ON refills(provider, ts)")
    db.execute(
        """
        CREATE TABLE balance_snapshots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts TEXT NOT NULL,
            provider TEXT NOT NULL,
            source TEXT NOT NULL,
            currency TEXT,
            balance_pico INTEGER,
            granted_pico INTEGER,
            paid_pico INTEGER,
            error TEXT,
            detail TEXT
        )
        """
    )
    db.execute("CREATE INDEX balance_snapshots_provider_ts ON balance_snapshots(provider, ts)")


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("m001_calls", _m001_calls),
    ("m010_cache_batch_rate_limits", _m010_cache_batch_rate_limits),
    ("m020_rollups", _m020_rollups),
    ("m021_pruned_calls", _m021_pruned_calls),
    ("m030_prompts", _m030_prompts),
    ("m031_comparisons", _m031_comparisons),
    ("m032_circuits", _m032_circuits),
    ("m033_budget_reservations", _m033_budget_reservations),
    ("m034_alerts", _m034_alerts),
    ("m035_budget_totals", _m035_budget_totals),
    ("m036_refills", _m036_refills),
]
