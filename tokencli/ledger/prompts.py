"""The prompt library's SQL: immutable prompt versions and their movable labels.

Versions of a name are numbered 1, 2, 3…; a row is never changed after it is
written, except `retired`, set when a version that recorded calls used is
removed (the calls keep pointing at it). Labels map (name, label) to a version
and move when set again. The logic (templates, refs, files) is in
`tokencli.prompts`; this module only reads and writes rows.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, NamedTuple

from .store import Ledger


class VersionRow(NamedTuple):
    name: str
    version: int
    system: str | None
    template: str
    model: str | None
    params: dict[str, Any]
    note: str | None
    ts: str
    hash: str
    retired: bool


_COLUMNS = "name, version, system, template, model, params, note, ts, hash, retired"


def _row(row: sqlite3.Row) -> VersionRow:
    return VersionRow(
        row["name"],
        int(row["version"]),
        row["system"],
        row["template"],
        row["model"],
        json.loads(row["params"]) if row["params"] else {},
        row["note"],
        row["ts"],
        row["hash"],
        bool(row["retired"]),
    )


def all_versions(ledger: Ledger, name: str | None = None) -> list[VersionRow]:
    """Every version (retired ones too), by name and number; only `name`'s if given."""
    where, args = (" WHERE name = ?", (name,)) if name is not None else ("", ())
    rows = ledger._conn.execute(
        f"SELECT {_COLUMNS} FROM prompt_versions{where} ORDER BY name, version", args
    ).fetchall()
    return [_row(r) for r in rows]


def get_version(ledger: Ledger, name: str, version: int) -> VersionRow | None:
    row = ledger._conn.execute(
        f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = ? AND version = ?", (name, version)
    ).fetchone()
    return _row(row) if row else None


def latest(ledger: Ledger, name: str) -> VersionRow | None:
    """The newest version of `name` that is not retired."""
    return _latest(ledger._conn, name)


def _latest(conn: sqlite3.Connection, name: str) -> VersionRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = ? AND NOT retired"
        " ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    return _row(row) if row else None


def labels(ledger: Ledger, name: str | None = None) -> dict[str, dict[str, int]]:
    """{name: {label: version}} for every prompt, or only `name`."""
    where, args = (" WHERE name = ?", (name,)) if name is not None else ("", ())
    found: dict[str, dict[str, int]] = {}
    for row in ledger._conn.execute(
        f"SELECT name, label, version FROM prompt_labels{where} ORDER BY name, label", args
    ):
        found.setdefault(row["name"], {})[row["label"]] = int(row["version"])
    return found


def add_version(
    ledger: Ledger,
    *,
    name: str,
    system: str | None,
    template: str,
    model: str | None,
    params: dict[str, Any],
    note: str | None,
    ts: str,
    hash: str,
    version: int | None = None,
) -> tuple[VersionRow, bool]:
    """Add a version unless it is identical (`hash`) to the latest: (the row, whether added).

    `version` asks for a number (an import keeping its file's numbers); it is
    taken when it is above every number `name` has used, else the next one is.
    """
    with ledger.write() as conn:
        newest = _latest(conn, name)
        if newest is not None and newest.hash == hash:
            return newest, False
        used = conn.execute(
            "SELECT max(version) FROM prompt_versions WHERE name = ?", (name,)
        ).fetchone()[0]
        number = int(used or 0) + 1
        if version is not None and version > number:
            number = version
        row = VersionRow(
            name, number, system, template, model, params, note, ts, hash, retired=False
        )
        conn.execute(
            f"INSERT INTO prompt_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                name,
                number,
                system,
                template,
                model,
                json.dumps(params, sort_keys=True) if params else None,
                note,
                ts,
                hash,
            ),
        )
    return row, True


def set_label(ledger: Ledger, name: str, label: str, version: int, ts: str) -> int | None:
    """Point `label` at `version`; the version it pointed at before, if any."""
    with ledger.write() as conn:
        row = conn.execute(
            "SELECT version FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
        ).fetchone()
        conn.execute(
            "INSERT INTO prompt_labels (name, label, version, ts) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name, label) DO UPDATE SET version = excluded.version, ts = excluded.ts",
            (name, label, version, ts),
        )
    return int(row[0]) if row else None


def calls_using(ledger: Ledger, name: str) -> dict[int, int]:
    """{version: recorded calls} for the versions of `name` that calls used."""
    rows = ledger._conn.execute(
        "SELECT prompt_version, count(*) FROM calls WHERE prompt_name = ?"
        " AND prompt_version IS NOT NULL GROUP BY prompt_version",
        (name,),
    ).fetchall()
    return {int(v): int(n) for v, n in rows}


def remove_versions(ledger: Ledger, name: str, versions: list[int]) -> tuple[list[int], list[int]]:
    """Delete `versions` of `name`, except those calls used: those are retired.

    Labels pointing at any of them go. Returns (deleted, retired).
    """
    deleted: list[int] = []
    retired: list[int] = []
    with ledger.write() as conn:
        for version in versions:
            used = conn.execute(
                "SELECT 1 FROM calls WHERE prompt_name = ? AND prompt_version = ? LIMIT 1",
                (name, version),
            ).fetchone()
            if used:
                conn.execute(
                    "UPDATE prompt_versions SET retired = 1 WHERE name = ? AND version = ?",
                    (name, version),
                )
                retired.append(version)
            else:
                conn.execute(
                    "DELETE FROM prompt_versions WHERE name = ? AND version = ?", (name, version)
                )
                deleted.append(version)
            conn.execute(
                "DELETE FROM prompt_labels WHERE name = ? AND version = ?", (name, version)
            )
    return deleted, retired
