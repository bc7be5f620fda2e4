"""The ledger store: opening, migrating, writing and reading calls.

- WAL mode, a long busy timeout and `BEGIN IMMEDIATE` for every write, so
  many tokencli processes write at once without "database is locked";
- created owner-only (0600) in an owner-only directory;
- ordered, append-only migrations (sqlite-utils' `Migrations`), each in one
  transaction with its record, run once on open. sqlite-utils costs ~0.1 s
  to import, so it loads only when a migration is actually pending;
- a call is written *before* the request is sent (status `pending`, with the
  host and pid) and completed after, so a killed process leaves a row that the
  next tokencli command marks `interrupted`;
- prompt and response texts live in their own table, so the `calls` rows that
  reports scan stay narrow.

Money is stored as integer picos (see `money`), times as fixed-width UTC ISO
text (`2026-11-22T17:29:00.123456Z`), which sorts chronologically.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from ..calls.usage import Usage
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError, Interrupted, TokencliError, UsageError
from ..money import from_picos, to_picos
from ..scope import Scope
from . import budgets, rollups
from .migrations import MIGRATION_SET, MIGRATIONS
from .reads import ReportReads

BUSY_TIMEOUT_S = 60.0
STATUSES = ("pending", "ok", "error", "interrupted", "blocked", "cached")


def format_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@functools.cache
def host_name() -> str:
    """This machine's name, recorded on every row so merged ledgers keep their origin."""
    import socket

    return socket.gethostname()


# ------------------------------------------------------------------ records


@dataclass
class Call:
    """One row of the ledger, in and out."""

    id: str
    ts: str
    provider: str
    model: str
    status: str = "pending"
    host: str = field(default_factory=host_name)
    pid: int | None = None
    response_model: str | None = None
    alias: str | None = None
    project: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    prompt_name: str | None = None
    prompt_version: int | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None
    currency: str | None = None
    price_source: str | None = None
    duration_ms: int | None = None
    ttft_ms: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    finish_reason: str | None = None
    stream: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    system_text: str | None = None
    prompt_text: str | None = None
    response_text: str | None = None
    # sha256 of the request, for the response cache (None: not cacheable).
    cache_key: str | None = None
    batch_id: str | None = None
    batch_item: str | None = None

    def columns(self) -> dict[str, Any]:
        """The `calls` row (texts and tags go to their own tables)."""
        u = self.usage
        return {
            "id": self.id,
            "ts": self.ts,
            "host": self.host,
            "pid": self.pid,
            "provider": self.provider,
            "model": self.model,
            "response_model": self.response_model,
            "alias": self.alias,
            "project": self.project,
            "tags": json.dumps(self.tags, ensure_ascii=False, sort_keys=True)
            if self.tags
            else None,
            "prompt_name": self.prompt_name,
            "prompt_version": self.prompt_version,
            "input_tokens": u.input_tokens,
            "cached_input_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "output_tokens": u.output_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "total_tokens": u.total_tokens,
            "usage_source": u.source,
            "cost_pico": to_picos(self.cost) if self.cost is not None else None,
            "currency": self.currency,
            "price_source": self.price_source,
            "duration_ms": self.duration_ms,
            "ttft_ms": self.ttft_ms,
            "status": self.status,
            "error_kind": self.error_kind,
            "error_message": self.error_message,
            "request_id": self.request_id,
            "finish_reason": self.finish_reason,
            "stream": None if self.stream is None else int(self.stream),
            "params": json.dumps(self.params, sort_keys=True) if self.params else None,
            "extra": json.dumps(self.extra, sort_keys=True, default=str) if self.extra else None,
            "cache_key": self.cache_key,
            "batch_id": self.batch_id,
            "batch_item": self.batch_item,
        }


CALL_COLUMNS = tuple(Call(id="", ts="", provider="", model="").columns())
# Columns a finished call fills in; the rest were written with the pending row.
_START_COLUMNS = {
    "id",
    "ts",
    "host",
    "pid",
    "provider",
    "model",
    "alias",
    "project",
    "tags",
    "prompt_name",
    "prompt_version",
    "stream",
    "params",
    "cache_key",
    "batch_id",
    "batch_item",
}
RESULT_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in _START_COLUMNS)
# What one imported call carries: its `calls` row, then its texts.
IMPORT_COLUMNS = (*CALL_COLUMNS, "system_text", "prompt_text", "response_text")


class ImportStopped(Exception):
    """The rows of an import raised `error` after `counts` were committed."""

    def __init__(self, error: TokencliError, counts: ImportCounts) -> None:
        super().__init__(str(error))
        self.error = error
        self.counts = counts


class Known(NamedTuple):
    """Yielded among the rows of an import for calls the reader found already in the
    ledger (or pruned from it) and left out without parsing them: counted, not written."""

    present: int = 0
    pruned: int = 0


class ImportCounts(NamedTuple):
    """What an import did: calls added, already present (or repeated), pruned before."""

    inserted: int = 0
    skipped: int = 0
    pruned: int = 0

    def __add__(self, other: object) -> ImportCounts:
        if not isinstance(other, ImportCounts):
            return NotImplemented
        return ImportCounts(*(a + b for a, b in zip(self, other, strict=True)))


def _row_to_call(row: sqlite3.Row, with_text: bool) -> Call:
    keys = row.keys()
    return Call(
        id=row["id"],
        ts=row["ts"],
        host=row["host"],
        pid=row["pid"],
        provider=row["provider"],
        model=row["model"],
        response_model=row["response_model"],
        alias=row["alias"],
        project=row["project"],
        tags=json.loads(row["tags"]) if row["tags"] else {},
        prompt_name=row["prompt_name"],
        prompt_version=row["prompt_version"],
        usage=Usage(
            input_tokens=row["input_tokens"],
            cached_input_tokens=row["cached_input_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
            source=row["usage_source"] or "reported",
        ),
        cost=from_picos(row["cost_pico"]) if row["cost_pico"] is not None else None,
        currency=row["currency"],
        price_source=row["price_source"],
        duration_ms=row["duration_ms"],
        ttft_ms=row["ttft_ms"],
        status=row["status"],
        error_kind=row["error_kind"],
        error_message=row["error_message"],
        request_id=row["request_id"],
        finish_reason=row["finish_reason"],
        stream=None if row["stream"] is None else bool(row["stream"]),
        params=json.loads(row["params"]) if row["params"] else {},
        extra=json.loads(row["extra"]) if row["extra"] else {},
        system_text=row["system_text"] if with_text and "system_text" in keys else None,
        prompt_text=row["prompt_text"] if with_text and "prompt_text" in keys else None,
        response_text=row["response_text"] if with_text and "response_text" in keys else None,
        cache_key=row["cache_key"],
        batch_id=row["batch_id"],
        batch_item=row["batch_item"],
    )


# ------------------------------------------------------------------- ledger


class Ledger(ReportReads):
    """The ledger file. Its connection stays inside this package: callers use its
    methods (reports and forecasts read through `reads.LedgerReader`)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._conn = conn
        self.path = path
        self._savepoints = -1  # ≥ 0 inside `batch`: each write is a savepoint of it

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, *, create: bool = True, clock: Clock = SYSTEM_CLOCK) -> Ledger | None:
        """Open (and if needed create and migrate) the ledger at `path`.

        With `create=False` a missing ledger gives None: read-only commands do
        not create files.
        """
        if not path.exists():
            if not create:
                return None
            _create_owner_only(path)
        try:
            conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            ledger = cls(conn, path, clock)
            ledger._configure()
            ledger._migrate()
            # Any command that opens the ledger adds what the recovery journal kept
            # (finishing writes that failed) and settles calls of killed processes.
            # A ledger that cannot be written now (a full disk, a read-only file) still
            # reads: both wait for a command that can write.
            from . import recovery

            with contextlib.suppress(LedgerUnwritable):
                recovery.replay(ledger)
            recovery.ensure_reserve(path)
            with contextlib.suppress(LedgerUnwritable):
                ledger.recover_abandoned(host_name(), pid_alive)
        except sqlite3.DatabaseError as exc:
            failure = ledger_failure(path, exc)
            if not create and isinstance(failure, LedgerUnwritable) and _frozen_fs(path):
                return cls._open_frozen(path, failure, clock)
            raise failure or ConfigError(
                f"The ledger {path} cannot be opened: {exc}.",
                "If it is damaged, move it aside; tokencli will start a new one.",
            ) from None
        return ledger

    @classmethod
    def _open_frozen(cls, path: Path, failure: ConfigError, clock: Clock) -> Ledger:
        """The ledger on a read-only file system (a mounted backup, a snapshot), for
        reading. SQLite cannot make the WAL's shared-memory file there, so it reads the
        file as immutable: right only when every write is in the file itself, which a
        missing or empty write-ahead log says. Nothing is replayed or settled, and a
        write is refused (exit 6)."""
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise failure  # calls still in its log: reading the file alone would miss them
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            ledger = cls(conn, path, clock)
            if ledger._applied_count() < len(MIGRATIONS):
                conn.close()
                raise ConfigError(
                    f"The ledger {path} is on a read-only file system and was written by an"
                    " older tokencli, so it cannot be upgraded where it is.",
                    "Copy it to a writable place and point --db (or TOKENCLI_DB) at the copy.",
                )
        except sqlite3.DatabaseError as exc:
            raise ledger_failure(path, exc) or failure from None
        return ledger

    @classmethod
    def open_memory(cls) -> Ledger:
        """An empty ledger in memory: what read commands show before any call."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        ledger = cls(conn, Path(":memory:"))
        ledger._migrate()
        return ledger

    def close(self) -> None:
        self._conn.close()

    def optimize(self) -> None:
        """Let SQLite refresh its query planner's statistics (after a bulk import)."""
        self._conn.execute("PRAGMA optimize")

    def _configure(self) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # journal_mode is persistent: only the first process to open the file
        # switches it, and racing first openers retry on "locked".
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            for attempt in range(50):
                try:
                    self._conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    import time

                    time.sleep(0.05)
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    def _applied_count(self) -> int:
        try:
            return int(
                self._conn.execute(
                    "SELECT count(*) FROM _sqlite_migrations WHERE migration_set = ?",
                    (MIGRATION_SET,),
                ).fetchone()[0]
            )
        except sqlite3.OperationalError:  # no migrations table yet
            return 0

    def _migrate(self) -> None:
        if self._applied_count() >= len(MIGRATIONS):
            return
        from sqlite_utils import Database
        from sqlite_utils.migrations import Migrations

        migrations = Migrations(MIGRATION_SET)
        for name, function in MIGRATIONS:
            migrations(name=name)(function)
        db = Database(self._conn, execute_plugins=False)
        # One writer migrates; the others wait on the lock, then find nothing pending.
        with self.write():
            migrations.apply(db)

    # ----------------------------------------------------------------- writes

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front.

        `BEGIN IMMEDIATE` waits (busy timeout) for the lock instead of failing
        later when a deferred read would have to be upgraded.
        """
        if self._savepoints >= 0:
            self._savepoints += 1
            name = f"w{self._savepoints}"
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            else:
                self._conn.execute(f"RELEASE {name}")
            return
        with self._transaction():
            yield self._conn

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes, one transaction (one commit, one fsync): inside, each `write` is a
        savepoint, undone alone when it fails. The gateway's writer runs the rows of
        concurrent requests this way; nothing is durable before the batch commits."""
        with self._transaction():
            self._savepoints = 0
            try:
                yield
            finally:
                self._savepoints = -1

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT (ROLLBACK on any exception), with a full disk, a
        read-only, busy or damaged file said as one sentence that says what to do."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            failure = ledger_failure(self.path, exc)
            if failure is None:
                raise
            raise failure from None

    def insert_call(
        self, call: Call, admit: Callable[[Ledger], Iterable[budgets.Hold]] | None = None
    ) -> None:
        """Write a whole call: the pending row before a request, or a finished one.

        `admit` runs first, inside the same write transaction: it may read the
        ledger (budgets' spend and reservations) and refuse by raising, which
        writes nothing; what it returns is reserved for the call until it ends.
        Checking and reserving under one write lock is what keeps concurrent
        processes from all passing the same budget check.
        """
        with self.write() as conn:
            holds = list(admit(self)) if admit is not None else []
            row = call.columns()  # after admit, which may note things in `extra`
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO calls ({names}) VALUES ({marks})", tuple(row.values()))
            self._write_texts(conn, call)
            self._write_tags(conn, call)
            rollups.add(conn, call.id)
            if holds:
                budgets.reserve(conn, call.id, holds)

    def budget_spent(
        self, scope: Scope, windows: Mapping[str, tuple[datetime, datetime]], now: datetime
    ) -> dict[str, budgets.Spent]:
        """Per window label: what finished calls in `scope` recorded in it (running
        totals kept by finishing calls, first read from the rollups)."""
        return budgets.spent(self._conn, scope, windows, now)

    def budget_reserved(self) -> dict[str, tuple[int, int]]:
        """Per budget: (picos, tokens) that calls in flight hold."""
        return budgets.reserved(self._conn)

    def finish_call(self, call: Call) -> str | None:
        """Write the outcome of a call whose pending row exists.

        When the ledger cannot be written (a full disk, a file turned read-only),
        the outcome goes to the recovery journal beside it instead (`recovery`),
        which the next command that opens the ledger adds to it; what is returned
        then is the sentence that says so. When even that fails, the
        `LedgerUnwritable` is raised, its message holding the call's usage.
        """
        try:
            self._write_finished(call)
        except LedgerUnwritable as exc:
            from . import recovery

            return recovery.keep(self.path, call, exc)
        return None

    def _write_finished(self, call: Call) -> None:
        """Write a call's outcome; the same outcome written twice counts once."""
        row = call.columns()
        updates = {k: row[k] for k in RESULT_COLUMNS}
        assignments = ", ".join(f"{k} = ?" for k in updates)
        with self.write() as conn:
            rollups.remove(conn, call.id)  # nothing while it was pending
            budgets.release(conn, call.id)  # the real cost replaces the worst case
            cur = conn.execute(
                f"UPDATE calls SET {assignments} WHERE id = ?", (*updates.values(), call.id)
            )
            if cur.rowcount == 0:  # the pending row was pruned or never written
                names = ", ".join(row)
                conn.execute(
                    f"INSERT INTO calls ({names}) VALUES ({', '.join('?' for _ in row)})",
                    tuple(row.values()),
                )
                self._write_tags(conn, call)
            self._write_texts(conn, call)
            rollups.add(conn, call.id)

    def import_calls(self, calls: Iterable[Call], *, chunk: int = 20_000) -> ImportCounts:
        """Insert calls that are not in the ledger yet (see `import_rows`)."""
        return self.import_rows(
            ((*c.columns().values(), c.system_text, c.prompt_text, c.response_text) for c in calls),
            chunk=chunk,
        )

    def import_rows(
        self,
        rows: Iterable[Sequence[Any] | Known],
        *,
        chunk: int = 20_000,
        progress: Callable[[ImportCounts], None] | None = None,
        parallel: bool = False,
    ) -> ImportCounts:
        """Insert rows (IMPORT_COLUMNS values) whose call is not in the ledger yet.

        Ids are global (ULIDs), so a row seen before (in the ledger, or earlier
        in the same rows) is the same call: it is skipped, never duplicated,
        and so is a call `ledger prune` deleted (its numbers are still in the
        rollups). Pending rows are refused by the caller.

        Each chunk is one transaction: rows go to a staging table, the known
        ones are dropped there, and the rest move into `calls`, their texts and
        tags, and the rollups with a few set-wise statements. With `parallel`
        (and where the OS can fork), the rows are read in a second process (see
        `staging`). An error the rows raise, or Ctrl-C, comes after every chunk
        before it was committed, wrapped in ImportStopped with the counts so far.
        """
        from . import staging

        self._staging_table()
        steps = (
            staging.staged_chunks(rows, chunk, IMPORT_COLUMNS)
            if parallel and staging.CAN_FORK
            else batches(rows, chunk)
        )
        total = ImportCounts()
        try:
            for step in steps:
                if isinstance(step, Known):
                    total = total + ImportCounts(0, step.present, step.pruned)
                    continue
                if isinstance(step, staging.StagedChunk):
                    self._stage_from(step.path, step.table)
                    offered = step.rows
                else:
                    self._stage_rows(step)
                    offered = len(step)
                total = total + self._import_staged(offered)
                if progress:
                    progress(total)
        except TokencliError as exc:  # the chunks before it are committed
            raise ImportStopped(exc, total) from exc
        except KeyboardInterrupt:
            raise ImportStopped(Interrupted("Interrupted."), total) from None
        return total

    def _staging_table(self) -> None:
        self._conn.execute("PRAGMA temp_store = MEMORY")
        columns = ", ".join(f"{c}{' PRIMARY KEY' if c == 'id' else ''}" for c in IMPORT_COLUMNS)
        self._conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming ({columns})")

    def _stage_rows(self, batch: list[Sequence[Any]]) -> None:
        marks = ", ".join("?" for _ in IMPORT_COLUMNS)
        with self._temp_only() as conn:
            conn.execute("DELETE FROM temp.incoming")
            # An id seen twice is the same call: the first copy stays, as in the ledger.
            conn.executemany(f"INSERT OR IGNORE INTO temp.incoming VALUES ({marks})", batch)

    @contextlib.contextmanager
    def _temp_only(self) -> Iterator[sqlite3.Connection]:
        """A transaction that writes the temp database only: the ledger is not locked."""
        self._conn.execute("BEGIN")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _stage_from(self, path: Path, table: str) -> None:
        """Copy a chunk another process staged into temp.incoming (no per-value binding)."""
        conn = self._conn
        conn.execute("ATTACH DATABASE ? AS staging", (str(path),))
        try:
            with self._temp_only():
                conn.execute("DELETE FROM temp.incoming")
                conn.execute(f"INSERT OR IGNORE INTO temp.incoming SELECT * FROM staging.{table}")
        finally:
            # Detached before the write transaction, which would lock the scratch file too.
            conn.execute("DETACH DATABASE staging")

    def _import_staged(self, offered: int) -> ImportCounts:
        """Move what temp.incoming holds into the ledger, in one write transaction."""
        names = ", ".join(CALL_COLUMNS)
        with self.write() as conn:
            staged = conn.execute("SELECT count(*) FROM temp.incoming").fetchone()[0]
            # EXISTS probes the primary key per staged row; `id IN (SELECT id FROM calls)`
            # would build a set of every id in the ledger for each chunk.
            present = conn.execute(
                "DELETE FROM temp.incoming WHERE EXISTS"
                " (SELECT 1 FROM main.calls c WHERE c.id = temp.incoming.id)"
            ).rowcount
            pruned = conn.execute(
                "DELETE FROM temp.incoming WHERE EXISTS"
                " (SELECT 1 FROM main.pruned_calls p WHERE p.id = temp.incoming.id)"
            ).rowcount
            conn.execute(f"INSERT INTO main.calls ({names}) SELECT {names} FROM temp.incoming")
            conn.execute(
                "INSERT INTO main.call_texts (call_id, system_text, prompt_text, response_text)"
                " SELECT id, system_text, prompt_text, response_text FROM temp.incoming"
                " WHERE coalesce(system_text, prompt_text, response_text) IS NOT NULL"
            )
            conn.execute(
                "INSERT INTO main.call_tags (call_id, key, value)"
                " SELECT i.id, j.key, j.value FROM temp.incoming i, json_each(i.tags) j"
                " WHERE i.tags IS NOT NULL"
            )
            rollups.add_table(conn, "temp.incoming")
            conn.execute("DELETE FROM temp.incoming")
        inserted = staged - present - pruned
        return ImportCounts(inserted, offered - inserted - pruned, pruned)

    @staticmethod
    def _write_texts(conn: sqlite3.Connection, call: Call) -> None:
        if call.system_text is None and call.prompt_text is None and call.response_text is None:
            return
        conn.execute(
            """
            INSERT INTO call_texts (call_id, system_text, prompt_text, response_text) VALUES (?, ?, ?, ?)
            ON CONFLICT(call_id) DO UPDATE SET
                system_text = coalesce(excluded.system_text, system_text),
                prompt_text = coalesce(excluded.prompt_text, prompt_text),
                response_text = coalesce(excluded.response_text, response_text)
            """,
            (call.id, call.system_text, call.prompt_text, call.response_text),
        )

    @staticmethod
    def _write_tags(conn: sqlite3.Connection, call: Call) -> None:
        if call.tags:
            conn.executemany(
                "INSERT OR REPLACE INTO call_tags (call_id, key, value) VALUES (?, ?, ?)",
                [(call.id, k, v) for k, v in call.tags.items()],
            )

    def recover_abandoned(self, host: str, alive: Callable[[int], bool]) -> int:
        """Mark `pending` calls of dead processes on this host as interrupted.

        A process killed outright (kill -9, power loss) never finished its row;
        the request may have been paid for, so the row stays, marked.
        """
        rows = self._conn.execute(
            "SELECT id, pid, ts FROM calls WHERE status = 'pending' AND host = ?", (host,)
        ).fetchall()
        # A day-old pending call is abandoned whatever its pid says: pids get reused.
        stale = format_ts(self.clock.now() - timedelta(days=1))
        dead = [
            r["id"] for r in rows if r["pid"] is None or r["ts"] < stale or not alive(int(r["pid"]))
        ]
        if not dead:
            return 0
        with self.write() as conn:
            for call_id in dead:
                cur = conn.execute(
                    """
                    UPDATE calls SET status = 'interrupted', error_kind = 'killed',
                        error_message = 'The tokencli process ended before the call finished.',
                        usage_source = 'estimated'
                    WHERE id = ? AND status = 'pending'
                    """,
                    (call_id,),
                )
                if cur.rowcount:
                    rollups.add(conn, call_id)
                budgets.release(conn, call_id)
        return len(dead)

    def notice_once(self, key: str) -> bool:
        """True the first time `key` is seen: for hints shown only once."""
        # Most calls find the key already there: a read, not a write lock (and its fsync).
        if self._conn.execute("SELECT 1 FROM notices WHERE key = ?", (key,)).fetchone():
            return False
        with self.write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO notices (key, ts) VALUES (?, ?)",
                (key, format_ts(self.clock.now())),
            )
            return cur.rowcount == 1

    # ------------------------------------------------------------------ reads

    def list_calls(
        self,
        scope: Scope = Scope(),
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        with_text: bool = False,
    ) -> list[Call]:
        """The newest calls in `scope` recorded in [since, until)."""
        where, args = where_sql(scope, since, until)
        select = "SELECT c.*" + (
            ", t.system_text, t.prompt_text, t.response_text" if with_text else ""
        )
        join = " LEFT JOIN call_texts t ON t.call_id = c.id" if with_text else ""
        sql = f"{select} FROM calls c{join}{where} ORDER BY c.ts DESC, c.id DESC LIMIT ?"
        rows = self._conn.execute(sql, (*args, limit)).fetchall()
        return [_row_to_call(r, with_text) for r in rows]

    def get_call(self, id_prefix: str) -> Call:
        prefix = id_prefix.strip().upper()
        if len(prefix) < 4:
            raise UsageError(
                f"Call id {id_prefix!r} is too short.",
                "Give at least 4 characters of an id from 'tokencli logs'.",
            )
        rows = self._conn.execute(
            """
            SELECT c.*, t.system_text, t.prompt_text, t.response_text
            FROM calls c LEFT JOIN call_texts t ON t.call_id = c.id
            WHERE c.id >= ? AND c.id < ? ORDER BY c.id LIMIT 2
            """,
            (prefix, prefix + "\uffff"),
        ).fetchall()
        if not rows:
            raise UsageError(
                f"No call with id {id_prefix!r}.",
                "'tokencli logs' lists recent calls and their ids.",
            )
        if len(rows) > 1:
            raise UsageError(
                f"Call id {id_prefix!r} is ambiguous.", "Give more characters of the id."
            )
        return _row_to_call(rows[0], True)

    def cached_answer(self, cache_key: str, not_before: str | None = None) -> Call | None:
        """The newest successful call with this request key whose text was kept."""
        row = self._conn.execute(
            """
            SELECT c.*, t.system_text, t.prompt_text, t.response_text
            FROM calls c JOIN call_texts t ON t.call_id = c.id
            WHERE c.cache_key = ? AND c.status = 'ok' AND t.response_text IS NOT NULL AND c.ts >= ?
            ORDER BY c.ts DESC LIMIT 1
            """,
            (cache_key, not_before or ""),
        ).fetchone()
        return _row_to_call(row, True) if row else None

    def batch_results(self, batch_id: str) -> dict[str, Call]:
        """The latest finished call of each item of a batch (a rerun's skip list)."""
        rows = self._conn.execute(
            """
            SELECT c.*, t.system_text, t.prompt_text, t.response_text
            FROM calls c LEFT JOIN call_texts t ON t.call_id = c.id
            WHERE c.batch_id = ? AND c.status IN ('ok', 'cached')
            ORDER BY c.ts
            """,
            (batch_id,),
        ).fetchall()
        return {row["batch_item"]: _row_to_call(row, True) for row in rows}

    def count_calls(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM calls").fetchone()[0])


def where_sql(
    scope: Scope, since: datetime | None = None, until: datetime | None = None
) -> tuple[str, list[Any]]:
    """` WHERE ...` on calls `c` for a scope and [since, until); '' for everything.

    A scope's `client` is refused (no call records one yet) rather than matching nothing.
    """
    scope.refuse_client()
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("provider", "model", "project", "status"):
        value = getattr(scope, column)
        if value:
            clauses.append(f"c.{column} = ?")
            args.append(value)
    prompt = scope.prompt_parts
    if prompt is not None:
        clauses.append("c.prompt_name = ?")
        args.append(prompt[0])
        if prompt[1] is not None:
            clauses.append("c.prompt_version = ?")
            args.append(prompt[1])
    if since is not None:
        clauses.append("c.ts >= ?")
        args.append(format_ts(since))
    if until is not None:
        clauses.append("c.ts < ?")
        args.append(format_ts(until))
    for key, value in scope.tags:
        clauses.append(
            "EXISTS (SELECT 1 FROM call_tags g WHERE g.call_id = c.id AND g.key = ? AND g.value = ?)"
        )
        args.extend((key, value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def batches(rows: Iterable[Any], size: int) -> Iterator[list[Sequence[Any]] | Known]:
    """`rows` in lists of `size`, `Known` items passed on as they come.

    When the rows raise an input error (a TokencliError: a bad line), the
    rows before it come out as a last batch first, then the error: what came
    before a bad line is always imported.
    """
    batch: list[Sequence[Any]] = []
    try:
        for row in rows:
            if type(row) is Known:
                yield row
                continue
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
    except TokencliError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


class LedgerUnwritable(ConfigError):
    """The ledger cannot be written now: a full disk, a read-only file or directory,
    a disk I/O error (exit 6)."""


class LedgerBusy(LedgerUnwritable):
    """Another process held the ledger's write lock for longer than the busy timeout
    (exit 6, like every ledger that cannot be written now)."""


class LedgerDamaged(ConfigError):
    """The ledger file is not a (whole) SQLite database (exit 6)."""


_WRITABLE_HINT = (
    "Make it and its directory writable by this user (or point --db or TOKENCLI_DB at"
    " another file), then run the command again."
)
# What each failure means, and what to do about it.
_UNWRITABLE = {
    "SQLITE_FULL": (
        "the disk is full",
        "Free some space (or point --db or TOKENCLI_DB at another disk), then run the"
        " command again.",
    ),
    "SQLITE_READONLY": ("it (or its directory) is read-only for this user", _WRITABLE_HINT),
    "SQLITE_CANTOPEN": (
        "it (or its directory) cannot be opened for writing by this user",
        _WRITABLE_HINT,
    ),
    "SQLITE_IOERR": (
        "the disk reported an I/O error",
        "Check the disk (and that it is mounted), then run the command again.",
    ),
}
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_BUSY = "SQLITE_BUSY"
# The same, by SQLite's message, for errors that carry no code.
_BY_MESSAGE = {
    "database or disk is full": "SQLITE_FULL",
    "readonly database": "SQLITE_READONLY",
    "unable to open database file": "SQLITE_CANTOPEN",
    "disk i/o error": "SQLITE_IOERR",
    "malformed": "SQLITE_CORRUPT",
    "file is not a database": "SQLITE_NOTADB",
    "database is locked": _BUSY,
}


def ledger_failure(path: Path, exc: sqlite3.Error) -> ConfigError | None:
    """What SQLite's `exc` means for the ledger at `path`, as one sentence that says
    what to do (exit 6); None for errors that are not about the file (a constraint)."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    base = next((k for k in (*_UNWRITABLE, *_DAMAGED, _BUSY) if name.startswith(k)), None)
    if base is None:
        text = str(exc).lower()
        base = next((code for words, code in _BY_MESSAGE.items() if words in text), None)
    if base in _UNWRITABLE:
        what, hint = _UNWRITABLE[base]
        return LedgerUnwritable(f"The ledger {path} cannot be written: {what}.", hint)
    if base == _BUSY:
        # Its write lock held past BUSY_TIMEOUT_S: a long import or prune, a stuck process.
        return LedgerBusy(
            f"The ledger {path} is busy: another tokencli process holds it.",
            f"Try again; 'fuser {path}' or 'lsof {path}' shows which process.",
        )
    if base in _DAMAGED:
        return LedgerDamaged(
            f"The ledger {path} is damaged ({exc}).",
            "Move it aside (tokencli then starts a new one) and bring your calls back with"
            " 'tokencli ledger import' from your latest 'tokencli ledger export' backup.",
        )
    return None


def _frozen_fs(path: Path) -> bool:
    """Whether `path` is on a file system mounted read-only (for root too)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # (no statvfs on Windows)
        return False


def _create_owner_only(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the ledger {path}: {exc.strerror}.", "Check --db or TOKENCLI_HOME."
        ) from None


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
