"""Saved comparisons (`tokencli compare`): one row each, its spec and results as JSON.

The calls a live comparison made are ordinary ledger rows, tagged `compare=<id>`
and carrying the comparison's id as their `batch_id` and the cell they fill as
their `batch_item`, so `--resume` finds what is already answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .store import Call, Ledger, _row_to_call


@dataclass(frozen=True)
class SavedComparison:
    id: str
    ts: str
    mode: str  # offline | live
    status: str  # complete | interrupted | failed
    spec: dict[str, Any]
    results: dict[str, Any] | None


def save(ledger: Ledger, saved: SavedComparison) -> None:
    """Insert or replace a comparison (a resumed one is saved again under its id)."""
    with ledger.write() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO comparisons (id, ts, mode, status, spec, results) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                saved.id,
                saved.ts,
                saved.mode,
                saved.status,
                json.dumps(saved.spec, ensure_ascii=False, sort_keys=True),
                None
                if saved.results is None
                else json.dumps(saved.results, ensure_ascii=False, sort_keys=True),
            ),
        )


def _saved(row: Any) -> SavedComparison:
    return SavedComparison(
        id=row["id"],
        ts=row["ts"],
        mode=row["mode"],
        status=row["status"],
        spec=json.loads(row["spec"]),
        results=json.loads(row["results"]) if row["results"] else None,
    )


def get(ledger: Ledger, id_prefix: str) -> SavedComparison:
    """The comparison whose id starts with `id_prefix` (4 characters at least)."""
    prefix = id_prefix.strip().upper()
    if len(prefix) < 4:
        raise UsageError(
            f"Comparison id {id_prefix!r} is too short.",
            "Give at least 4 characters of an id from 'tokencli compare list'.",
        )
    rows = ledger._conn.execute(
        "SELECT * FROM comparisons WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
        (prefix, prefix + "\uffff"),
    ).fetchall()
    if not rows:
        raise UsageError(
            f"No comparison with id {id_prefix!r}.", "'tokencli compare list' shows them."
        )
    if len(rows) > 1:
        raise UsageError(
            f"Comparison id {id_prefix!r} is ambiguous.", "Give more characters of the id."
        )
    return _saved(rows[0])


def recent(ledger: Ledger, limit: int = 20) -> list[SavedComparison]:
    rows = ledger._conn.execute(
        "SELECT * FROM comparisons ORDER BY ts DESC, id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_saved(r) for r in rows]


def item_calls(ledger: Ledger, compare_id: str) -> dict[str, Call]:
    """The latest finished call of each cell run of a comparison, with its texts.

    A run answered once (`ok` or `cached`) keeps that answer even when a later
    attempt of the same run failed.
    """
    rows = ledger._conn.execute(
        """
        SELECT c.*, t.system_text, t.prompt_text, t.response_text
        FROM calls c LEFT JOIN call_texts t ON t.call_id = c.id
        WHERE c.batch_id = ? AND c.status != 'pending'
        ORDER BY c.ts, c.id
        """,
        (compare_id,),
    ).fetchall()
    found: dict[str, Call] = {}
    for row in rows:
        call = _row_to_call(row, True)
        key = call.batch_item or ""
        previous = found.get(key)
        if (
            previous is None
            or previous.status not in ("ok", "cached")
            or call.status
            in (
                "ok",
                "cached",
            )
        ):
            found[key] = call
    return found


def output_history(
    ledger: Ledger,
    provider: str,
    model: str,
    prompt_name: str | None = None,
    prompt_version: int | None = None,
) -> tuple[float, int] | None:
    """Mean output tokens of the successful calls of a model (and prompt version), and how many."""
    sql = (
        "SELECT avg(output_tokens), count(*) FROM calls "
        "WHERE status = 'ok' AND provider = ? AND model = ?"
    )
    args: list[Any] = [provider, model]
    if prompt_name is not None:
        sql += " AND prompt_name = ? AND prompt_version IS ?"
        args += [prompt_name, prompt_version]
    avg, n = ledger._conn.execute(sql, args).fetchone()
    return (float(avg), int(n)) if n else None
