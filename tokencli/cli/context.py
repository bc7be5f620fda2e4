"""What every command shares: the streams (swappable in tests) and settings
resolved once, lazily, from the root options."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TextIO, TypeVar, cast

import typer

if TYPE_CHECKING:
    from datetime import datetime

    from ..calls.engine import Engine
    from ..clock import Clock
    from ..ledger import Ledger
    from ..settings.loader import Settings

T = TypeVar("T")


@dataclass
class Streams:
    """stdin/stdout/stderr and whether each is a terminal (httpie's Environment idea)."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    stdin_isatty: bool
    stdout_isatty: bool
    stderr_isatty: bool

    @classmethod
    def system(cls) -> Streams:
        def tty(stream: TextIO | None) -> bool:
            try:
                return bool(stream and stream.isatty())
            except (ValueError, OSError):
                return False

        # A stream the shell closed (`>&-`) is None in Python: stdout then reads as a
        # reader that went away; stderr as nowhere; stdin as empty.
        stdin = sys.stdin if sys.stdin is not None else io.StringIO("")
        stdout = cast(TextIO, GuardedStdout(sys.stdout))
        stderr = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
        return cls(stdin, stdout, stderr, tty(sys.stdin), tty(sys.stdout), tty(sys.stderr))


class GuardedStdout:
    """The process's stdout as commands see it: a write the system refuses (a full
    disk or device, an I/O error) is one `OutputError` (exit 2) instead of an
    internal error; a closed stdout (`>&-`) is a BrokenPipeError, like a reader
    that went away. Everything else is the stream's own."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with self._guard():
            return self._open().write(text)

    def flush(self) -> None:
        if self._stream is None:
            return
        with self._guard():
            self._stream.flush()

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    def _open(self) -> TextIO:
        if self._stream is None:
            raise BrokenPipeError("stdout is closed")
        return self._stream

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            if self._stream is None:  # closed from the start (`>&-`): quiet, exit 130
                raise
            # Without its errno: click would turn EPIPE into exit 1 before the CLI's
            # boundary sees it (a reader that went away: quiet, exit 141).
            from ..errors import ReaderGone

            raise ReaderGone("stdout was closed by its reader") from None
        except OSError as exc:
            from ..errors import OutputError

            raise OutputError(
                f"Cannot write to stdout: {exc.strerror or exc}.",
                "Free some space, or send the output elsewhere.",
            ) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


@dataclass
class AppContext:
    config_flag: str | None = None
    db_flag: str | None = None
    streams: Streams = field(default_factory=Streams.system)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @cached_property
    def settings(self) -> Settings:
        from ..settings.loader import load_settings

        return load_settings(self.env, config_flag=self.config_flag, db_flag=self.db_flag)

    def ledger(self, *, create: bool = True) -> Ledger | None:
        from ..ledger import Ledger

        return Ledger.open(self.settings.paths.db, create=create, clock=self.clock)

    def read_ledger(self, read: Callable[[Ledger], T], empty: T) -> T:
        """What `read` finds in the ledger, closed afterwards; `empty` when there is no
        ledger yet (a read command never creates one)."""
        ledger = self.ledger(create=False)
        if ledger is None:
            return empty
        try:
            return read(ledger)
        finally:
            ledger.close()

    def engine(self) -> Engine:
        """An engine whose notices (retries, waits, price hints) go to stderr."""
        from ..calls.engine import Engine
        from ..ledger import Ledger

        path, clock = self.settings.paths.db, self.clock

        def open_ledger() -> Ledger:
            ledger = Ledger.open(path, clock=clock)
            assert ledger is not None  # create=True always opens
            return ledger

        engine = Engine(
            self.settings,
            ledger=open_ledger,
            clock=clock,
            notify=lambda m: self.err(f"tokencli: {m}"),
        )
        from ..alerts.rules import AlertObserver

        engine.observers = (*engine.observers, AlertObserver(self.settings, lambda: engine.ledger))
        return engine

    def deliver_alerts(self, engine: Engine) -> None:
        """Send what alerts are pending, after the command's answer is out (bounded, never fails)."""
        import contextlib

        from ..alerts.dispatch import deliver_pending

        # Only on the ledger this command opened: one that wrote nothing creates no file.
        ledger = getattr(engine._local, "ledger", None) or next(iter(engine._ledgers), None)
        if ledger is None:
            return
        from ..alerts.rules import AlertObserver

        for observer in engine.observers:
            if isinstance(observer, AlertObserver):
                with contextlib.suppress(Exception):
                    observer.after_command(ledger)
        with contextlib.suppress(Exception):
            deliver_pending(ledger, self.settings, stderr=self.streams.stderr)

    @cached_property
    def clock(self) -> Clock:
        """The one clock; TOKENCLI_NOW pins it (reproducible reports, forecasts, tests)."""
        from ..clock import clock_from_env

        return clock_from_env(self.env)

    def now(self) -> datetime:
        return self.clock.now()

    def err(self, message: str) -> None:
        """A status line on stderr; values in it are shown with control characters escaped."""
        from ..safetext import visible

        print(visible(message), file=self.streams.stderr, flush=True)


def app_context(ctx: typer.Context) -> AppContext:
    """The AppContext main() put on the root context (a fresh one when called otherwise)."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppContext):
        root.obj = AppContext()
    return root.obj
