"""Observers: what hears about every call once its finished row is written.

Alerts, anomaly rules, refill thresholds and gateway metrics watch the calls
this way. An observer sees every outcome: ok, error, interrupted, cached, and
refusals a guard recorded. It is called after the row is safely in the
ledger, on the thread that made the call (a batch runs several), so it must
be thread-safe. An observer that raises does not lose the call or change the
result: the engine notifies and carries on with the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..ledger import Call


class Observer(Protocol):
    def finished(self, call: Call) -> None:
        """`call` is recorded with its outcome; react to it."""
        ...
