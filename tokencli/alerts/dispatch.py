"""Raise alerts (once per key, across processes) and deliver what is pending.

`raise_alerts` records each new alert for every channel and delivers;
`deliver_pending` sends whatever earlier commands left undelivered. Both are
bounded by a total time budget and never raise for a channel's failure: a
failed delivery stays in the ledger and the next command or check retries it.
With nothing pending, `deliver_pending` is one read of a partial index.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, NamedTuple

from ..settings.model import AlertChannel
from . import Alert

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..settings.model import Settings

STDERR_CHANNEL = AlertChannel(type="stderr", name="stderr")
# What a command that just answered may spend sending alerts, all channels together.
AFTER_COMMAND_S = 3.0
# Not worth starting a delivery with less time left: it is left for the next command.
MIN_TRY_S = 0.25


class Delivery(NamedTuple):
    key: str
    channel: str
    error: str | None  # None: sent


def channels_of(settings: Settings) -> tuple[AlertChannel, ...]:
    """The configured channels; stderr alone when none is configured."""
    return settings.alerts.channels or (STDERR_CHANNEL,)


def stamped(alert: Alert, ledger: Ledger) -> Alert:
    if alert.occurred_at:
        return alert
    when = ledger.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return Alert(alert.kind, alert.key, alert.title, alert.message, alert.level, alert.fields, when)


def enqueue(ledger: Ledger, settings: Settings, alerts: Sequence[Alert]) -> list[str]:
    """Record `alerts` for every channel; return the keys that were new (the others fired before)."""
    from ..ledger.alerts import Queued
    from ..ledger.alerts import enqueue as insert

    rows = []
    for alert in alerts:
        alert = stamped(alert, ledger)
        for channel in channels_of(settings):
            delivery_id = uuid.uuid4().hex
            payload = json.dumps(alert.payload(delivery_id), ensure_ascii=False, sort_keys=True)
            rows.append(
                Queued(alert.key, channel.name, alert.kind, alert.title, delivery_id, payload)
            )
    return insert(ledger, rows)


def deliver_pending(
    ledger: Ledger,
    settings: Settings,
    *,
    total_timeout: float = AFTER_COMMAND_S,
    stderr: IO[str] | None = None,
) -> list[Delivery]:
    """Send what is pending or failed, within `total_timeout` seconds in all."""
    from ..ledger import alerts as table

    if not table.has_undelivered(ledger):
        return []
    from .delivery import send

    channels = {c.name: c for c in channels_of(settings)}
    deadline = time.monotonic() + total_timeout
    claimed = table.claim(ledger, list(channels), ledger.clock.timestamp())
    results: list[Delivery] = []
    for index, row in enumerate(claimed):
        left = deadline - time.monotonic()
        if left < MIN_TRY_S:
            table.release(ledger, claimed[index:])
            break
        payload = json.loads(row.payload)
        error = send(
            channels[row.channel],
            Alert.from_payload(payload),
            delivery_id=row.id,
            timeout=left,
            stderr=stderr,
        )
        table.settle(ledger, row.key, row.channel, error)
        results.append(Delivery(row.key, row.channel, error))
    return results


def raise_alerts(
    ledger: Ledger,
    settings: Settings,
    alerts: Sequence[Alert],
    *,
    total_timeout: float = 10.0,
    stderr: IO[str] | None = None,
) -> list[Delivery]:
    """Record `alerts` (each key once, ever) and deliver everything pending."""
    enqueue(ledger, settings, alerts)
    return deliver_pending(ledger, settings, total_timeout=total_timeout, stderr=stderr)
