"""The circuit breaker's shared state: which providers and models are set aside.

One row per key, a provider (`openai`) or a model (`openai:gpt-4o`), that has
failed lately or is set aside; a key without a row is closed with no failures.
Every tokencli process reads and writes the same table, each write under
`BEGIN IMMEDIATE`, so a breaker opened by one process holds for all of them,
and exactly one of them claims the trial call (the probe) once the cooldown
is over. Times are wall-clock epoch seconds (`Clock.timestamp()`): a pinned
`TOKENCLI_NOW` must not freeze a cooldown.

States as stored: `closed` (counting failures), `open` (set aside until
`open_until`; once that has passed, the next call may claim the probe) and
`half_open` (a probe is in flight, owned by `probe_owner`, "HOST:PID:TOKEN").
A probe whose process died, or that has run for longer than the cooldown, is
stale and may be claimed again.

When a key opens is decided in `calls.circuit`; this module keeps the counts
and states consistent between processes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .store import Ledger, host_name, pid_alive

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

_COLUMNS = (
    "key, failures, last_kind, last_model, spread, state, opened_at, open_until, reason,"
    " probe_owner, probe_at"
)


@dataclass(frozen=True)
class Circuit:
    """One key's row. `state` is as stored; `state_at(now)` is what it means now."""

    key: str
    failures: int = 0
    last_kind: str | None = None
    last_model: str | None = None
    spread: bool = False  # the failures in a row came from more than one model
    state: str = CLOSED
    opened_at: float | None = None
    open_until: float | None = None
    reason: str | None = None  # why it opened, worded to follow "set aside … after"
    probe_owner: str | None = None
    probe_at: float | None = None

    def state_at(self, now: float) -> str:
        """closed; open (cooling down); half_open (cooldown over, or a trial in flight)."""
        if self.state == OPEN and self.open_until is not None and now >= self.open_until:
            return HALF_OPEN
        return self.state

    def probe_is_stale(self, now: float, stale_after: float) -> bool:
        """The probe's process is gone (it ran on this host), or it has run too long."""
        if self.probe_at is None or now - self.probe_at >= stale_after:
            return True
        host, pid = _owner_process(self.probe_owner or "")
        return host == host_name() and pid is not None and not pid_alive(pid)


@dataclass(frozen=True)
class Admission:
    """The answer to "may a call go to these keys?": refused by a circuit, or let
    through, holding the probe of each key whose cooldown was over."""

    refused: Circuit | None = None
    probes: tuple[str, ...] = ()


def owner_of(token: str) -> str:
    """The probe owner recorded for this process and `token` (one per attempt)."""
    return f"{host_name()}:{os.getpid()}:{token}"


def _owner_process(owner: str) -> tuple[str, int | None]:
    host_pid, _, _token = owner.rpartition(":")
    host, _, pid = host_pid.rpartition(":")
    return host, int(pid) if pid.isdigit() else None


def _row(row: sqlite3.Row) -> Circuit:
    (key, failures, kind, model, spread, state, opened_at, until, reason, owner, probe_at) = row
    return Circuit(
        str(key),
        int(failures),
        kind,
        model,
        bool(spread),
        str(state),
        opened_at,
        until,
        reason,
        owner,
        probe_at,
    )


def _read(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, Circuit]:
    marks = ", ".join("?" for _ in keys)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM circuits WHERE key IN ({marks})", tuple(keys)
    ).fetchall()
    return {circuit.key: circuit for circuit in map(_row, rows)}


def _write(conn: sqlite3.Connection, circuit: Circuit) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO circuits ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            circuit.key,
            circuit.failures,
            circuit.last_kind,
            circuit.last_model,
            int(circuit.spread),
            circuit.state,
            circuit.opened_at,
            circuit.open_until,
            circuit.reason,
            circuit.probe_owner,
            circuit.probe_at,
        ),
    )


def read(ledger: Ledger, keys: Sequence[str]) -> dict[str, Circuit]:
    """The rows of `keys` that exist (a plain read, no lock)."""
    return _read(ledger._conn, keys)


def admit(
    ledger: Ledger, keys: Sequence[str], now: float, owner: str, stale_after: float
) -> Admission:
    """Let a call through to `keys` unless one of them is set aside.

    A key cooling down refuses; a key whose cooldown is over is claimed as this
    call's probe (`owner`), unless another live probe holds it (then it refuses).
    The common case, every key closed, is one read and no write lock.
    """
    if all(c.state == CLOSED for c in read(ledger, keys).values()):
        return Admission()
    with ledger.write() as conn:
        rows = _read(conn, keys)
        claim: list[Circuit] = []
        for key in keys:
            row = rows.get(key)
            if row is None or row.state == CLOSED:
                continue
            state = row.state_at(now)
            if state == OPEN or (
                row.state == HALF_OPEN
                and row.probe_owner != owner
                and not row.probe_is_stale(now, stale_after)
            ):
                return Admission(refused=row)
            claim.append(row)
        for row in claim:
            _write(conn, replace(row, state=HALF_OPEN, probe_owner=owner, probe_at=now))
    return Admission(probes=tuple(row.key for row in claim))


def record_failure(
    ledger: Ledger,
    key: str,
    *,
    kind: str,
    model: str,
    owner: str | None,
    opens: Callable[[Circuit], str | None],
    now: float,
    cooldown: float,
) -> Circuit | None:
    """Count one failure in a row on `key`; open it when `opens(counted)` gives a reason.

    A probe held by `owner` that failed re-opens the key for another cooldown.
    Failures of calls that were already in flight while the key was open are
    counted but do not extend the cooldown. Returns the circuit if it opened now.
    """
    with ledger.write() as conn:
        row = _read(conn, [key]).get(key) or Circuit(key)
        counted = replace(
            row,
            failures=row.failures + 1,
            last_kind=kind,
            last_model=model,
            spread=row.spread or row.last_model not in (None, model),
        )
        reopen = row.state == HALF_OPEN and row.probe_owner == owner
        reason = opens(counted) if row.state == CLOSED or reopen else None
        if reason is None:
            _write(conn, counted)
            return None
        opened = replace(
            counted,
            state=OPEN,
            opened_at=now,
            open_until=now + cooldown,
            reason=reason,
            probe_owner=None,
            probe_at=None,
        )
        _write(conn, opened)
        return opened


def open_now(
    ledger: Ledger, key: str, *, reason: str, kind: str, now: float, until: float
) -> Circuit:
    """Set `key` aside until `until`, whatever its count (a billing refusal)."""
    with ledger.write() as conn:
        row = _read(conn, [key]).get(key) or Circuit(key)
        opened = replace(
            row,
            failures=row.failures + 1,
            last_kind=kind,
            state=OPEN,
            opened_at=now,
            open_until=max(until, row.open_until or until) if row.state == OPEN else until,
            reason=reason,
            probe_owner=None,
            probe_at=None,
        )
        _write(conn, opened)
        return opened


def record_success(ledger: Ledger, keys: Sequence[str]) -> list[Circuit]:
    """A call answered: its keys close and their counts start again.

    Returns the circuits that were open (or probing) and are closed now.
    """
    rows = read(ledger, keys)
    if not rows:
        return []
    with ledger.write() as conn:
        rows = _read(conn, keys)
        marks = ", ".join("?" for _ in keys)
        conn.execute(f"DELETE FROM circuits WHERE key IN ({marks})", tuple(keys))
    return [row for row in rows.values() if row.state != CLOSED]


def release(ledger: Ledger, keys: Iterable[str], owner: str) -> None:
    """Give back probes `owner` holds without a verdict (interrupted, refused, a bad
    request): the next call becomes the trial instead."""
    keys = tuple(keys)
    if not keys:
        return
    marks = ", ".join("?" for _ in keys)
    with ledger.write() as conn:
        conn.execute(
            f"UPDATE circuits SET state = ?, probe_owner = NULL, probe_at = NULL "
            f"WHERE state = ? AND probe_owner = ? AND key IN ({marks})",
            (OPEN, HALF_OPEN, owner, *keys),
        )


def reset(ledger: Ledger, provider: str) -> int:
    """Close `provider` and each of its models at once, counts cleared.

    For whoever knows the provider is back before its cooldown ends: `refill add`
    (the account has money again) calls this. Returns the keys that were cleared.
    """
    with ledger.write() as conn:
        cursor = conn.execute(
            "DELETE FROM circuits WHERE key = ? OR substr(key, 1, ?) = ?",
            (provider, len(provider) + 1, f"{provider}:"),
        )
        return int(cursor.rowcount)


def open_circuits(ledger: Ledger, now: float) -> list[Circuit]:
    """Every key set aside: cooling down (`open`), or with its cooldown over and a
    trial due or in flight (`half_open`), each with its state as of `now`, the
    soonest to be tried first."""
    rows = ledger._conn.execute(
        f"SELECT {_COLUMNS} FROM circuits WHERE state != ? ORDER BY open_until, key", (CLOSED,)
    ).fetchall()
    return [replace(c, state=c.state_at(now)) for c in map(_row, rows)]
