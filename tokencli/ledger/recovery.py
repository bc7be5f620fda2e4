"""The recovery journal: a finished call the ledger could not record, kept durable.

When the write that finishes a call fails because the ledger cannot be written
(a full disk, a file turned read-only, an I/O error, another process
holding its write lock past the busy timeout), the call's whole outcome
(its `calls` row and texts) is appended as one JSON line to
`<ledger>-recovery.jsonl` beside the ledger, and fsync'd: a call that was paid
for is not lost. The next command that opens the ledger (`Ledger.open`) writes
those outcomes into the ledger and deletes the journal. Writing an outcome is
idempotent (its old numbers leave the rollups before the new ones go in), so a
replay cut short and run again counts each call once.

A disk that is full is usually full to the last block, which SQLite's failed
write has just used: so beside the ledger lies a small reserve file
(`<ledger>-reserve`, 64 KiB of zeros, made when a ledger is opened and missing),
deleted to make room when the journal cannot be written otherwise.

Appends and the replay take an exclusive lock on the journal (where the OS has
`fcntl`); an appender that finds the file it locked already replayed (unlinked)
opens the new one, so no outcome lands in a journal that is being deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Call, Ledger, LedgerUnwritable

VERSION = 1
SUFFIX = "-recovery.jsonl"
RESERVE_SUFFIX = "-reserve"
RESERVE_BYTES = 64 * 1024


def journal_path(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + SUFFIX)


def reserve_path(ledger_path: Path) -> Path:
    return ledger_path.with_name(ledger_path.name + RESERVE_SUFFIX)


def ensure_reserve(ledger_path: Path) -> None:
    """Make the reserve file beside the ledger if it is missing (quietly not, when
    there is no room or no permission)."""
    path = reserve_path(ledger_path)
    if os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        os.write(fd, bytes(RESERVE_BYTES))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(fd)


def keep(ledger_path: Path, call: Call, failure: LedgerUnwritable) -> str:
    """Append `call`'s outcome to the journal; the sentence that tells the user.

    When the journal cannot be written either, `failure` is raised again with the
    call's id and usage in its message: the numbers are at least on the screen.
    """
    path = journal_path(ledger_path)
    entry = {
        "v": VERSION,
        **call.columns(),
        "system_text": call.system_text,
        "prompt_text": call.prompt_text,
        "response_text": call.response_text,
    }
    data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        _append(path, data)
    except OSError as exc:
        try:
            os.unlink(reserve_path(ledger_path))  # make room, then try once more
            _append(path, data)
        except OSError:
            raise _lost(failure, path, call, exc) from None
    return (
        f"{failure.message[:-1]}, so call {call.id} is kept in {path};"
        " the next tokencli command adds it to the ledger."
    )


def _lost(failure: LedgerUnwritable, path: Path, call: Call, exc: OSError) -> LedgerUnwritable:
    """The failure, with the call's id and usage in its sentence: nothing else kept them."""
    from ..money import decimal_str
    from .store import LedgerUnwritable

    u = call.usage
    cost = f", cost {decimal_str(call.cost)} {call.currency or ''}".rstrip() if call.cost else ""
    return LedgerUnwritable(
        f"{failure.message[:-1]}, and neither could {path} ({exc.strerror}): call"
        f" {call.id} ({call.provider}:{call.model}, {call.status}) used"
        f" {u.input_tokens} input and {u.output_tokens} output tokens{cost}.",
        failure.hint,
    )


def replay(ledger: Ledger) -> int:
    """Write what the journal kept into `ledger` and delete the journal; how many calls.

    A failure to write (the disk still full) raises `LedgerUnwritable` and leaves
    the journal for the next command. A line cut short (a crash while appending)
    is skipped.
    """
    path = journal_path(ledger.path)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        _lock(fd)
        if not _linked(fd, path):  # another process replayed it while we waited
            return 0
        with open(os.dup(fd), "rb") as fh:
            lines = fh.read().splitlines()
        calls = [c for c in map(_decode, lines) if c is not None]
        for call in calls:
            ledger._write_finished(call)
        os.unlink(path)
        return len(calls)
    finally:
        os.close(fd)


def _decode(line: bytes) -> Call | None:
    from .store import _row_to_call

    try:
        entry = json.loads(line)
        if not isinstance(entry, dict) or entry.get("v") != VERSION:
            return None
        return _row_to_call(entry, True)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return None


def _append(path: Path, data: bytes) -> None:
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _lock(fd)
            if not _linked(fd, path):
                continue  # replayed and deleted while we waited: append to a new one
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                # No half line left behind to spoil the next append.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
            return
        finally:
            os.close(fd)  # and with it the lock


def _lock(fd: int) -> None:
    with contextlib.suppress(ImportError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


def _linked(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (not unlinked by a replay)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
