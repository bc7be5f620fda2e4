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


MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = [
    ("m001_calls", _m001_calls),
    ("m010_cache_batch_rate_limits", _m010_cache_batch_rate_limits),
]
