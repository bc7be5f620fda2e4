"""Alerts: what tokencli tells a user who must hear about spending before the bill.

`Alert` is the value every rule produces (budget thresholds, pace, anomalies,
failures, `alerts test`); `formats` turns one into each channel's wire format;
`delivery` sends it; `ledger.alerts` keeps the history that makes each alert
fire once. No typer or rich here, and httpx only when a webhook is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..ledger.reads import LedgerReader
    from ..settings.model import Settings
    from .dispatch import Delivery

SCHEMA = "tokencli.alert/1"
KINDS = ("budget_threshold", "budget_pace", "anomaly", "failures", "refill", "test")
LEVELS = ("info", "warning", "critical")


@dataclass(frozen=True)
class Alert:
    """One alert. `key` is its identity: the same key never fires twice.

    e.g. `budget:monthly:80:2026-12` (budget, threshold, period),
    `anomaly:spike:2026-12-04`, `failures:openai:<first call id>`.
    """

    kind: str
    key: str
    title: str
    message: str
    level: str = "warning"  # info | warning | critical
    # budget, spent, limit, unit, period, provider, model, call_id, value, threshold …
    fields: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: str = ""  # ISO-8601 UTC, `Z`

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        if self.level not in LEVELS:
            raise ValueError(f"unknown alert level {self.level!r}")

    def text(self) -> str:
        """Plain text for chat channels: the title, then the message."""
        return f"{self.title}\n{self.message}" if self.message else self.title

    def payload(self, delivery_id: str = "") -> dict[str, Any]:
        """The versioned JSON document (docs/alerts.md): webhooks, commands, the ledger."""
        return {
            "schema": SCHEMA,
            "event": self.kind,
            "status": "firing",
            "id": delivery_id,
            "dedupe_key": self.key,
            "occurred_at": self.occurred_at,
            "severity": self.level,
            "title": self.title,
            "message": self.message,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            kind=data["event"],
            key=data["dedupe_key"],
            title=data["title"],
            message=data.get("message", ""),
            level=data.get("severity", "warning"),
            fields=dict(data.get("fields") or {}),
            occurred_at=data.get("occurred_at", ""),
        )


def budget_threshold(
    budget: str,
    threshold: int,
    window: str,
    *,
    spent: str,
    limit: str,
    unit: str,
    period: str,
) -> Alert:
    """A budget crossed `threshold`% in `window` ("2026-12", "2026-W49", "2026-12-04"):
    once per budget, threshold and window. Amounts as exact decimal strings."""
    return Alert(
        kind="budget_threshold",
        key=f"budget:{budget}:{threshold}:{window}",
        title=f"Budget {budget}: {threshold}% used",
        message=f"{spent} of {limit} {unit} spent this {period} ({window}).",
        level="critical" if threshold >= 100 else "warning",
        fields={
            "budget": budget,
            "threshold": threshold,
            "spent": spent,
            "limit": limit,
            "unit": unit,
            "period": period,
            "window": window,
        },
    )


def budget_pace(budget: str, window: str, crosses_on: str, *, limit: str, unit: str) -> Alert:
    """A budget on pace to be crossed on `crosses_on` (a date): once per budget and window."""
    return Alert(
        kind="budget_pace",
        key=f"budget-pace:{budget}:{window}",
        title=f"Budget {budget}: on pace to cross {limit} {unit}",
        message=f"At the current pace budget {budget} is crossed on {crosses_on} ({window}).",
        fields={
            "budget": budget,
            "window": window,
            "crosses_on": crosses_on,
            "limit": limit,
            "unit": unit,
        },
    )


def raise_alerts(
    ledger: Ledger, settings: Settings, alerts: Sequence[Alert], **kw: Any
) -> list[Delivery]:
    """Record `alerts` (each key fires once, across processes) and deliver what is pending."""
    from .dispatch import raise_alerts as raise_

    return raise_(ledger, settings, alerts, **kw)


def deliver_pending(ledger: Ledger, settings: Settings, **kw: Any) -> list[Delivery]:
    """Send what earlier commands left undelivered (one indexed read when nothing is)."""
    from .dispatch import deliver_pending as deliver

    return deliver(ledger, settings, **kw)


def anomalies(ledger: LedgerReader, settings: Settings, now: datetime) -> list[Alert]:
    """The day-level anomaly rules (spike, z-score) for today."""
    from .rules import anomalies as day_rules

    return day_rules(ledger, settings, now)


__all__ = [
    "KINDS",
    "LEVELS",
    "SCHEMA",
    "Alert",
    "anomalies",
    "budget_pace",
    "budget_threshold",
    "deliver_pending",
    "raise_alerts",
]
