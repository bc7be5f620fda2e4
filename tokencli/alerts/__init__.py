"""Alerts: what tokencli tells a user who must hear about spending before the bill.

`Alert` is the value every rule produces (budget thresholds, pace, anomalies,
failures, `alerts test`); `formats` turns one into each channel's wire format;
`delivery` sends it; `ledger.alerts` keeps the history that makes each alert
fire once. No typer or rich here, and httpx only when a webhook is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "tokencli.alert/1"
KINDS = ("budget_threshold", "budget_pace", "anomaly", "failures", "test")
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


__all__ = ["KINDS", "LEVELS", "SCHEMA", "Alert"]
