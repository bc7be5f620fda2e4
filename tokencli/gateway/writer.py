"""The gateway's one ledger writer: a thread that runs the engine's ledger work for every
request, in batches that share one transaction.

Under load, many requests want a pending row or a finished row at the same moment. Each
was its own transaction and its own fsync (`synchronous = FULL`); here the jobs queued
while the last batch committed run together inside `Ledger.batch()` (each write a
savepoint, undone alone when it fails) and commit once. A job's result is handed back
only after its batch committed, so a pending row exists on disk before its request
leaves, as with `run`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..ledger import Ledger

_MAX_BATCH = 64
_STOP = object()


class Writer:
    def __init__(self, ledger: Callable[[], Ledger]) -> None:
        self._ledger = ledger  # this thread's connection (the engine's, per thread)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tokencli-ledger", daemon=True)
        self._thread.start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((function, args, future))
        return future

    def shutdown(self) -> None:
        """Finish what is queued, then stop."""
        self._jobs.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is _STOP:
                return
            jobs = [first]
            while len(jobs) < _MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                jobs.append(job)
            self._batch(jobs)

    def _batch(self, jobs: list[Any]) -> None:
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            ledger = self._ledger()
            with ledger.batch():
                for function, args, future in jobs:
                    if not future.set_running_or_notify_cancel():
                        continue  # its request was cancelled before the job began
                    try:
                        outcomes.append((future, function(*args), None))
                    except BaseException as exc:  # handed to the job's caller
                        outcomes.append((future, None, exc))
        except BaseException as exc:  # the batch did not commit: none of it happened
            for _, _, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, value, error in outcomes:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
