"""Keeping ledger writes whole when Ctrl-C, SIGTERM or SIGHUP arrive.

`STOPPING` are the signals that end a command the way Ctrl-C does: the CLI turns
SIGTERM and SIGHUP (the terminal closed) into `Interrupted`, so the call in flight
keeps its partial text and tokens and is recorded `interrupted`; a ledger write
under way finishes first. A signal the process was started ignoring (`nohup`)
stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOPPING = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until a ledger write is done, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[signal.Signals] = []

    def hold(signum: int, _frame: object) -> None:
        caught.append(signal.Signals(signum))

    previous = {
        sig: signal.signal(sig, hold)
        for sig in STOPPING
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        handler = previous[caught[0]]
        if callable(handler):
            handler(caught[0], None)
        elif caught[0] == signal.SIGINT and handler != signal.SIG_IGN:
            raise KeyboardInterrupt
