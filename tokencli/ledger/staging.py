"""Parsing a bulk import in a second process, handed over through a scratch SQLite file.

Reading and checking a million JSON lines is Python work (about half of an
import); writing them into the ledger is mostly SQLite's. On a machine with
two cores they can run side by side: a forked child iterates the rows (the
file, the parser, the checks) and stores each chunk as a table in a scratch
database; the ledger's process copies each table into its staging table with
one statement and never binds a parameter per value. The child keeps at most
`AHEAD` chunks unconsumed (back-pressure, and a bounded scratch file), and
drops each table once the parent says it is done with it.

Where `os.fork` does not exist the caller imports in one process instead.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from ..errors import ConfigError, TokencliError, UsageError
from .store import Known, batches

AHEAD = 3  # chunks the child may stage before the parent has taken them

CAN_FORK = hasattr(os, "fork")


class StagedChunk(NamedTuple):
    path: Path  # the scratch database
    table: str
    rows: int


class ReaderCrashed(RuntimeError):
    """The child failed for a reason that is not the input's fault."""


def staged_chunks(
    rows: Iterable[Any], size: int, columns: Sequence[str]
) -> Iterator[StagedChunk | Known]:
    """Chunks of `rows` staged by a child process; each is valid until the next is asked for.

    `Known` items among the rows (calls the reader skipped) are summed and
    passed on with the chunks. An input error the rows raise (a TokencliError,
    e.g. a bad line) comes after the chunks before it, as in a plain loop.
    """
    workdir = Path(tempfile.mkdtemp(prefix="tokencli-import-"))
    path = workdir / "staging.db"
    up_read, up_write = os.pipe()
    down_read, down_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(up_read)
            os.close(down_write)
            with os.fdopen(up_write, "wb", buffering=0) as out, os.fdopen(down_read, "rb") as acks:
                _child(rows, size, columns, path, out, acks)
            code = 0
        finally:
            os._exit(code)
    os.close(up_write)
    os.close(down_read)
    inbox = os.fdopen(up_read, "rb")
    outbox = os.fdopen(down_write, "wb", buffering=0)
    try:
        while True:
            try:
                message = pickle.load(inbox)
            except EOFError:
                raise ReaderCrashed("the import's reader process ended unexpectedly") from None
            kind = message[0]
            if kind == "known":
                yield Known(message[1], message[2])
            elif kind == "chunk":
                yield StagedChunk(path, f"c{message[1]}", message[2])
                try:
                    pickle.dump(message[1], outbox)  # done with it: the child may drop it
                except BrokenPipeError:
                    pass  # the child has staged everything and gone
            elif kind == "end":
                return
            elif kind == "error":
                error_class, text, hint = message[1:]
                raise _ERRORS.get(error_class, UsageError)(text, hint)
            else:
                raise ReaderCrashed(f"the import's reader failed: {message[1]}")
    finally:
        for stream in (inbox, outbox):
            try:
                stream.close()
            except OSError:
                pass
        _reap(pid)
        shutil.rmtree(workdir, ignore_errors=True)


def _reap(pid: int) -> None:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:  # still running: the parent stopped early (an error, Ctrl-C)
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass


def _child(
    rows: Iterable[Any],
    size: int,
    columns: Sequence[str],
    path: Path,
    out: BinaryIO,
    acks: BinaryIO,
) -> None:
    # Ctrl-C at a terminal reaches both processes: the parent handles it (and ends
    # the child with SIGTERM), so the child's death never looks like a failure of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Parsed rows are dropped chunk by chunk and hold no cycles: the cyclic collector
    # would only walk the million objects the parent's heap brought along.
    gc.disable()
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")  # scratch: written once, no journal
    conn.execute("PRAGMA synchronous = OFF")  # scratch: a crash loses nothing of value
    insert = f"INSERT INTO {{}} VALUES ({', '.join('?' for _ in columns)})"
    state = {"next": 0, "acked": -1}

    def stage(batch: list[Sequence[Any]]) -> None:
        k = state["next"]
        while k - state["acked"] > AHEAD:
            state["acked"] = pickle.load(acks)
            conn.execute(f"DROP TABLE IF EXISTS c{state['acked']}")
        conn.execute(f"CREATE TABLE c{k} ({', '.join(columns)})")
        conn.execute("BEGIN")
        conn.executemany(insert.format(f"c{k}"), batch)
        conn.execute("COMMIT")
        pickle.dump(("chunk", k, len(batch)), out)
        state["next"] = k + 1

    known = [0, 0]  # summed here: one message per chunk, not one per skipped line

    def tell_known() -> None:
        if known != [0, 0]:
            pickle.dump(("known", *known), out)
            known[:] = [0, 0]

    try:
        for step in batches(rows, size):
            if isinstance(step, Known):
                known[0] += step.present
                known[1] += step.pruned
            else:
                stage(step)
                tell_known()
        tell_known()
        pickle.dump(("end",), out)
    except TokencliError as exc:  # the input's fault: what came before it is staged; say so
        tell_known()
        pickle.dump(("error", type(exc).__name__, exc.message, exc.hint), out)
    except Exception as exc:
        pickle.dump(("crash", f"{type(exc).__name__}: {exc}"), out)


# The input errors a reader raises (the others take more than a message and a hint).
_ERRORS: dict[str, type[TokencliError]] = {"UsageError": UsageError, "ConfigError": ConfigError}
