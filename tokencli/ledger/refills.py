"""Top-ups, free grants and live balance snapshots: the `refills` and `balance_snapshots` tables.

A refill's `quantity` is picos for money (`unit` a currency code) or a whole
number of tokens (`unit` = "tokens"). A snapshot is what one provider's balance
endpoint said in one currency at one time; a query that failed is a row with its
`error` and no figures, so history never shows a failure as zero. No key is ever
written here: snapshots hold the parsed figures and the endpoint's name only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from ..money import from_picos, to_picos
from ..scope import Scope
from .store import Ledger, format_ts, host_name, parse_ts

TOKENS = "tokens"


class Refill(NamedTuple):
    id: str
    ts: datetime  # when it was added: spend counts against it from here
    provider: str
    unit: str  # currency code or "tokens"
    amount: Decimal  # money, or a whole number of tokens
    grant: bool
    expires: datetime | None
    note: str | None

    @property
    def tokens(self) -> bool:
        return self.unit == TOKENS


class Snapshot(NamedTuple):
    ts: datetime
    provider: str
    source: str  # the endpoint, e.g. "GET /user/balance"
    currency: str | None
    balance: Decimal | None  # None: unavailable (see error)
    granted: Decimal | None
    paid: Decimal | None
    error: str | None
    detail: dict[str, Any]


def _quantity(amount: Decimal, unit: str) -> int:
    return int(amount) if unit == TOKENS else to_picos(amount)


def _amount(quantity: int, unit: str) -> Decimal:
    return Decimal(quantity) if unit == TOKENS else from_picos(quantity)


def add(ledger: Ledger, refill: Refill) -> None:
    with ledger.write() as conn:
        conn.execute(
            "INSERT INTO refills (id, ts, provider, unit, quantity, is_grant, expires, note, host)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                refill.id,
                format_ts(refill.ts),
                refill.provider,
                refill.unit,
                _quantity(refill.amount, refill.unit),
                int(refill.grant),
                format_ts(refill.expires) if refill.expires else None,
                refill.note,
                host_name(),
            ),
        )


def _refill(row: Any) -> Refill:
    return Refill(
        row[0],
        parse_ts(row[1]),
        row[2],
        row[3],
        _amount(row[4], row[3]),
        bool(row[5]),
        parse_ts(row[6]) if row[6] else None,
        row[7],
    )


def refills(ledger: Ledger, provider: str | None = None) -> list[Refill]:
    """Every refill (of one provider), oldest first."""
    sql = "SELECT id, ts, provider, unit, quantity, is_grant, expires, note FROM refills"
    args: tuple[Any, ...] = ()
    if provider is not None:
        sql += " WHERE provider = ?"
        args = (provider,)
    rows = ledger._conn.execute(sql + " ORDER BY ts, id", args).fetchall()
    return [_refill(row) for row in rows]


def find(ledger: Ledger, id_prefix: str) -> list[Refill]:
    """The refills whose id starts with `id_prefix` (case-insensitive)."""
    rows = ledger._conn.execute(
        "SELECT id, ts, provider, unit, quantity, is_grant, expires, note FROM refills"
        " WHERE substr(id, 1, ?) = ? ORDER BY ts, id",
        (len(id_prefix), id_prefix.upper()),
    ).fetchall()
    return [_refill(row) for row in rows]


def remove(ledger: Ledger, refill_id: str) -> bool:
    with ledger.write() as conn:
        return conn.execute("DELETE FROM refills WHERE id = ?", (refill_id,)).rowcount > 0


# ------------------------------------------------------------------ what was metered


class Metered(NamedTuple):
    picos: dict[str, int]  # per currency ('' for unpriced calls)
    tokens: int  # input + output

    def money(self) -> dict[str, Decimal]:
        return {c: from_picos(p) for c, p in self.picos.items() if p}


def metered(
    ledger: Ledger, provider: str, segments: Sequence[tuple[datetime, datetime]]
) -> list[Metered]:
    """What the provider's calls recorded in each [start, end), in one read of the rollups."""
    from .report_queries import Segment, sums

    out = [Metered({}, 0) for _ in segments]
    # Whole seconds, as the rollups are read: each bound cut the same way, so
    # stretches that meet still neither overlap nor leave a gap.
    cut = [(a.replace(microsecond=0), b.replace(microsecond=0)) for a, b in segments]
    wanted = [Segment(str(i), start, end) for i, (start, end) in enumerate(cut) if end > start]
    if not wanted:
        return out
    for row in sums(ledger._conn, wanted, (), Scope(provider=provider)):
        slot = out[int(row.label)]
        slot.picos[row.currency] = slot.picos.get(row.currency, 0) + row.sums["cost_pico"]
        out[int(row.label)] = Metered(
            slot.picos, slot.tokens + row.sums["input_tokens"] + row.sums["output_tokens"]
        )
    return out


# ------------------------------------------------------------------ snapshots


def save_snapshots(ledger: Ledger, snapshots: Sequence[Snapshot]) -> None:
    if not snapshots:
        return
    with ledger.write() as conn:
        conn.executemany(
            "INSERT INTO balance_snapshots (ts, provider, source, currency, balance_pico,"
            " granted_pico, paid_pico, error, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    format_ts(s.ts),
                    s.provider,
                    s.source,
                    s.currency,
                    None if s.balance is None else to_picos(s.balance),
                    None if s.granted is None else to_picos(s.granted),
                    None if s.paid is None else to_picos(s.paid),
                    s.error,
                    json.dumps(s.detail, sort_keys=True) if s.detail else None,
                )
                for s in snapshots
            ],
        )


def _snapshot(row: Any) -> Snapshot:
    def money(value: int | None) -> Decimal | None:
        return None if value is None else from_picos(value)

    return Snapshot(
        parse_ts(row[0]),
        row[1],
        row[2],
        row[3],
        money(row[4]),
        money(row[5]),
        money(row[6]),
        row[7],
        json.loads(row[8]) if row[8] else {},
    )


_SNAPSHOT_COLUMNS = (
    "ts, provider, source, currency, balance_pico, granted_pico, paid_pico, error, detail"
)


def snapshots(
    ledger: Ledger, provider: str | None = None, *, readable: bool = False, limit: int = 1000
) -> list[Snapshot]:
    """Snapshots newest first (of one provider; only those with a figure if `readable`)."""
    where, args = [], []
    if provider is not None:
        where.append("provider = ?")
        args.append(provider)
    if readable:
        where.append("balance_pico IS NOT NULL")
    sql = f"SELECT {_SNAPSHOT_COLUMNS} FROM balance_snapshots"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = ledger._conn.execute(sql + " ORDER BY ts DESC, id DESC LIMIT ?", (*args, limit))
    return [_snapshot(row) for row in rows.fetchall()]
