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


# The hourly rollup: one row per UTC hour and (provider, model, project, tags,
# prompt, status, currency), kept by triggers in the same transaction as the
# call, so reports read thousands of rollup rows instead of a million calls.
# NULLs become '' / 0 in the key (NULLs would never conflict in a UNIQUE key).
# Pending rows are not counted; an update moves a row's numbers from its old
# key to its new one. Deleting calls (ledger prune) leaves the rollup alone:
# the totals of pruned months survive their rows.
ROLLUP_KEY = (
    "hour",
    "provider",
    "model",
    "project",
    "tags",
    "prompt_name",
    "prompt_version",
    "status",
    "currency",
)
ROLLUP_SUMS = (
    "calls",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_pico",
    "unpriced_calls",
    "duration_ms",
)


def _rollup_key(row: str) -> str:
    """The rollup key of one call row (`NEW`, `OLD` or a table alias)."""
    return (
        f"CAST(strftime('%s', substr({row}.ts, 1, 13) || ':00:00') AS INTEGER), "
        f"{row}.provider, {row}.model, coalesce({row}.project, ''), coalesce({row}.tags, ''), "
        f"coalesce({row}.prompt_name, ''), coalesce({row}.prompt_version, 0), {row}.status, "
        f"coalesce({row}.currency, '')"
    )


def _rollup_values(row: str, sign: str) -> str:
    """The VALUES of one call row for the rollup, signed."""
    sums = (
        f"{sign}1, {sign}{row}.input_tokens, {sign}{row}.cached_input_tokens, "
        f"{sign}{row}.cache_write_tokens, {sign}{row}.output_tokens, {sign}{row}.reasoning_tokens, "
        f"{sign}coalesce({row}.cost_pico, 0), {sign}({row}.cost_pico IS NULL), "
        f"{sign}coalesce({row}.duration_ms, 0)"
    )
    return f"({_rollup_key(row)}, {sums})"


def _rollup_upsert(row: str, sign: str) -> str:
    columns = ", ".join(ROLLUP_KEY + ROLLUP_SUMS)
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS)
    return (
        f"INSERT INTO rollup_hourly ({columns}) VALUES {_rollup_values(row, sign)} "
        f"ON CONFLICT DO UPDATE SET {updates};"
    )


def _m020_rollups(db: Database) -> None:
    """Hourly rollups for reports, and indexes for top calls and latency."""
    key_columns = """
            hour INTEGER NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            project TEXT NOT NULL,
            tags TEXT NOT NULL,
            prompt_name TEXT NOT NULL,
            prompt_version INTEGER NOT NULL,
            status TEXT NOT NULL,
            currency TEXT NOT NULL,"""
    sum_columns = ",\n".join(f"            {c} INTEGER NOT NULL DEFAULT 0" for c in ROLLUP_SUMS)
    # The call columns the rollup reads: an update of any other leaves it alone.
    watched = ", ".join(
        ["ts", *ROLLUP_KEY[1:], *(c for c in ROLLUP_SUMS if c not in ("calls", "unpriced_calls"))]
    )
    for statement in (
        f"""
        CREATE TABLE rollup_hourly ({key_columns}
{sum_columns},
            PRIMARY KEY ({", ".join(ROLLUP_KEY)})
        ) WITHOUT ROWID
        """,
        f"""
        CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls
        WHEN NEW.status != 'pending'
        BEGIN {_rollup_upsert("NEW", "")} END
        """,
        f"""
        CREATE TRIGGER calls_rollup_update_old AFTER UPDATE OF {watched} ON calls
        WHEN OLD.status != 'pending'
        BEGIN {_rollup_upsert("OLD", "-")} END
        """,
        f"""
        CREATE TRIGGER calls_rollup_update_new AFTER UPDATE OF {watched} ON calls
        WHEN NEW.status != 'pending'
        BEGIN {_rollup_upsert("NEW", "")} END
        """,
        # Existing calls: the same numbers the triggers would have written.
        f"""
        INSERT INTO rollup_hourly ({", ".join(ROLLUP_KEY + ROLLUP_SUMS)})
        SELECT {_rollup_key("c")},
            count(*), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens),
            sum(output_tokens), sum(reasoning_tokens), sum(coalesce(cost_pico, 0)),
            sum(cost_pico IS NULL), sum(coalesce(duration_ms, 0))
        FROM calls c WHERE status != 'pending'
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        """,
        # The most expensive calls of a period, walked from the top.
        "CREATE INDEX calls_cost ON calls(cost_pico) WHERE cost_pico IS NOT NULL",
        # Latency percentiles of a period from the index alone.
        "CREATE INDEX calls_latency ON calls(ts, provider, model, duration_ms) WHERE status = 'ok'",
    ):
        db.execute(statement)


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("m001_calls", _m001_calls),
    ("m010_cache_batch_rate_limits", _m010_cache_batch_rate_limits),
    ("m020_rollups", _m020_rollups),
]
