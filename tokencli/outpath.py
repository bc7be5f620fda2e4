"""Where an `-o/--output PATH` is written, and how: the one place every command's
output file is opened.

What PATH is decides how it is written:

- a regular file, or a name that does not exist yet: written under a temporary
  name in the same directory and renamed over PATH at the end, so a reader never
  sees half a file and a failure leaves the old one whole. A file that is
  replaced keeps its permission bits and owner, unless the caller asks for a mode
  (`ledger export` backups are always owner-only);
- a symbolic link: the link is kept and what it points to is written, by the
  rules here (a regular file beside which the temporary file is made, a device
  written in place). A link to nothing yet creates its target;
- a device node, a FIFO or any other file that is not regular (`/dev/null`,
  `/dev/stdout`, a named pipe): opened and written in place, never replaced,
  never truncated. A path that is this process's stdout or stderr is written
  through that descriptor, so `-o /dev/stdout >> log` appends to the log;
- a directory: refused with one sentence (a UsageError, exit 2).

With `append` (a batch writing results as they finish) nothing is renamed:
every kind of file is opened in place, a regular file for appending.

Every failure of the operating system is one `OutputError` (a UsageError) naming PATH.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError, UsageError

HINT = "Check the --output path."


@dataclass(frozen=True)
class Plan:
    """How a path is written: `how` is "atomic" (temporary file, then rename onto
    `target`), "in_place" (open `target` as it is) or "fd" (write through `fd`)."""

    how: str
    target: Path
    fd: int | None = None
    truncate: bool = False  # in place, a regular file reached through a magic link
    existing: os.stat_result | None = None  # the regular file an atomic write replaces


def plan_output(path: Path, *, append: bool = False) -> Plan:
    """Decide how `path` is written (see the module's docstring); nothing is opened."""
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return Plan("in_place" if append else "atomic", path)
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        found = os.stat(path)
    except FileNotFoundError:  # a link to nothing yet: create what it points to
        return Plan("in_place" if append else "atomic", Path(os.path.realpath(path)))
    except OSError as exc:
        raise _cannot(path, exc) from None
    if stat.S_ISDIR(found.st_mode):
        raise UsageError(f"{path} is a directory.", "Give the name of a file for --output.")
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (found.st_dev, found.st_ino):
                return Plan("fd", path, fd=fd)
    if append or not stat.S_ISREG(found.st_mode):
        return Plan("in_place", path)
    if stat.S_ISLNK(link.st_mode):
        target = Path(os.path.realpath(path))
        try:
            resolved = os.stat(target)
        except OSError:
            resolved = None
        if resolved is None or (resolved.st_dev, resolved.st_ino) != (
            found.st_dev,
            found.st_ino,
        ):
            # A link the file system cannot name a real path for (/proc's magic links):
            # write through it rather than guess where the temporary file could go.
            return Plan("in_place", path, truncate=True)
        return Plan("atomic", target, existing=found)
    return Plan("atomic", path, existing=found)


@contextlib.contextmanager
def open_output(
    path: Path | str, *, mode: int | None = None, append: bool = False
) -> Iterator[BinaryIO]:
    """`path` opened for writing bytes, by what it is (see the module's docstring).

    `mode` (say 0o600) is the new file's permission bits whatever the umask; None
    keeps a replaced file's bits, or gives a new one the umask's. The file is
    complete (renamed into place) when the block ends without an exception; an
    exception leaves any file that was there as it was.
    """
    path = Path(path)
    plan = plan_output(path, append=append)
    if plan.how == "atomic":
        with _atomic(path, plan, mode) as handle:
            yield handle
        return
    try:
        if plan.how == "fd":
            assert plan.fd is not None
            handle = open(os.dup(plan.fd), "wb")  # noqa: SIM115 - closed below
        else:
            flags = os.O_WRONLY | (os.O_APPEND | os.O_CREAT if append else 0)
            flags |= os.O_TRUNC if plan.truncate else 0
            handle = open(os.open(plan.target, flags, 0o666 if mode is None else mode), "wb")  # noqa: SIM115
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        with reported(path):
            yield handle
            handle.flush()
    finally:
        with contextlib.suppress(OSError):
            handle.close()


@contextlib.contextmanager
def _atomic(path: Path, plan: Plan, mode: int | None) -> Iterator[BinaryIO]:
    target, existing = plan.target, plan.existing
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if mode is None:
        bits = stat.S_IMODE(existing.st_mode) if existing else 0o666 & ~_umask()
    else:
        bits = mode
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, bits)
    except FileExistsError:  # left by a killed run of this same pid: start again
        tmp.unlink(missing_ok=True)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, bits)
        except OSError as exc:
            raise _cannot(path, exc) from None
    except OSError as exc:
        raise _cannot(path, exc) from None
    try:
        with reported(path), open(fd, "wb") as handle:
            _keep_mode_and_owner(fd, bits, existing)
            yield handle
            handle.flush()
            os.fsync(fd)
        with reported(path):
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _keep_mode_and_owner(fd: int, bits: int, existing: os.stat_result | None) -> None:
    if hasattr(os, "fchmod"):  # the umask must not loosen (or tighten) the bits asked for
        os.fchmod(fd, bits)
    if existing is not None and hasattr(os, "fchown") and existing.st_uid != os.geteuid():
        # root replacing someone's file leaves it theirs
        with contextlib.suppress(OSError):
            os.fchown(fd, existing.st_uid, existing.st_gid)


@contextlib.contextmanager
def reported(path: Path | str) -> Iterator[None]:
    """An OSError of the file system (not a closed pipe to stdout) as one OutputError,
    for writes to a file opened here that go on after `open_output` (batch results)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _cannot(Path(path), exc) from None


def _cannot(path: Path, exc: OSError) -> UsageError:
    return OutputError(f"Cannot write {path}: {exc.strerror or exc}.", HINT)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_output(path: Path | str, text: str, *, mode: int | None = None) -> None:
    """Write `text` (UTF-8) to `path` by the rules of `open_output`."""
    with open_output(path, mode=mode) as handle:
        handle.write(text.encode("utf-8"))
