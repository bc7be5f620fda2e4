"""Which calls: one `Scope` for logs, reports, exports, budgets, alerts and the gateway.

A scope is plain data (a field left as None or empty matches everything); the
ledger turns it into SQL, budgets and alerts compare it with a call. Time is
not part of it: that is a `window.Window`.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import UsageError


class Scope(NamedTuple):
    provider: str | None = None
    model: str | None = None
    project: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # "NAME" (every version) or "NAME@VERSION"
    prompt: str | None = None
    status: str | None = None
    # a gateway client's name
    client: str | None = None

    @property
    def prompt_parts(self) -> tuple[str, int | None] | None:
        """`prompt` as (name, version or None for every version); None when unset."""
        if not self.prompt:
            return None
        name, sep, version = self.prompt.rpartition("@")
        if not sep:
            return self.prompt, None
        if not name or not version.isascii() or not version.isdigit():
            raise UsageError(
                f"--prompt {self.prompt!r} is not NAME or NAME@VERSION.", "e.g. --prompt summary@3."
            )
        return name, int(version)

    def refuse_client(self) -> None:
        """No call records a gateway client yet: a client scope is refused, not silently empty."""
        if self.client:
            raise UsageError(
                f"--client {self.client!r}: no calls carry a client yet.",
                "Leave it out; the gateway will record clients.",
            )

    @property
    def is_everything(self) -> bool:
        return self == Scope()

    def describe(self) -> dict[str, str]:
        """What the scope covers, e.g. {"provider": "openai", "tag:client": "acme"}."""
        out = {
            name: value
            for name, value in (
                ("provider", self.provider),
                ("model", self.model),
                ("project", self.project),
                ("prompt", self.prompt),
                ("status", self.status),
                ("client", self.client),
            )
            if value
        }
        out.update({f"tag:{key}": value for key, value in self.tags})
        return out
