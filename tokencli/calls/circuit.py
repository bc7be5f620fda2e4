"""The circuit breaker: a provider (or one model) that keeps failing is set aside.

Each attempt's outcome is counted once its finished row is written: a
retryable failure (5xx, 429, timeouts, network, a cut stream) adds one to the
failures in a row of its model (`openai:gpt-4o`) and of its provider
(`openai`); an answer resets both. At `[alerts] max_consecutive_failures`
(default 5) the model is set aside for `cooldown` seconds (default 300). The
provider as a whole is set aside when its failures in a row span more than one
model, or the last could not reach it at all (network): then every model of it
is. A refusal for billing or quota sets the provider aside at once, until the
cooldown ends or `ledger.circuits.reset` (`refill add`) says it has money again.
Bad requests, content filters and interruptions say nothing about its health
and are not counted.

While a key is set aside the breaker, a `Guard` asked last, refuses the call
with `CircuitOpen` before anything is written: `Engine.run` goes on to the next
model of a fallback chain, or the command exits 5 saying when it will be tried
again. After the cooldown exactly one call, in whichever tokencli process
claims it first, is the trial: an answer closes the breaker, a retryable
failure sets it aside for another cooldown; meanwhile the others treat it as
still set aside. The state lives in the ledger (`ledger.circuits`), so every
process on the machine sees the same breakers. `max_consecutive_failures = 0`
(or `cooldown = 0`) turns the breaker off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime, tzinfo

from ..errors import ProviderError, ProviderUnavailable
from ..ledger import Ledger
from ..ledger import circuits as state
from ..ledger.circuits import Circuit
from ..settings.loader import Settings
from .guards import PlannedCall
from .resolve import ResolvedModel

BILLING_KINDS = frozenset({"billing", "quota"})
BILLING_REASON = "a billing refusal (out of credit or quota)"
# Failures that say the provider itself cannot be reached, whichever model was asked.
HOST_KINDS = frozenset({"network"})


class CircuitOpen(ProviderUnavailable):
    """A model or provider is set aside: refused before anything was written (exit 5)."""

    def __init__(self, target: ResolvedModel, circuit: Circuit, summary: str, tail: str) -> None:
        billing = circuit.reason == BILLING_REASON
        super().__init__(
            f"{summary}; {tail}.",
            "Top up the account, or pick another model with -m."
            if billing
            else "Run again after that, or pick another model with -m (an alias may name a fallback chain).",
            kind="circuit_open",
        )
        self.target = target
        self.circuit = circuit
        # "X is set aside until T after R": what a fallback notice starts with.
        self.summary = summary


class CircuitBreaker:
    """The breaker for one engine: a `Guard` before each attempt, and `settle`
    after each attempt's finished row. Thread-safe (a batch shares it)."""

    # A refusal leaves no row: nothing was attempted.
    refusal_status: str | None = None

    def __init__(
        self,
        settings: Settings,
        ledger: Callable[[], Ledger],
        timestamp: Callable[[], float],
    ) -> None:
        rules = settings.alerts.rules
        self.threshold = rules.max_consecutive_failures
        self.cooldown = float(rules.cooldown)
        self.enabled = self.threshold > 0 and self.cooldown > 0
        self._timezone = settings.defaults.timezone
        self._ledger = ledger
        self._timestamp = timestamp
        # The probes this thread's current attempt holds, and its owner token.
        self._local = threading.local()

    # ------------------------------------------------------------ the guard

    def check(self, attempt: PlannedCall) -> None:
        """Refuse while the attempt's model or provider is set aside; claim the trial."""
        self._local.probes = ()
        if not self.enabled:
            return
        owner = state.owner_of(os.urandom(6).hex())
        self._local.owner = owner
        now = self._timestamp()
        admission = state.admit(
            self._ledger(), keys(attempt.target), now, owner, stale_after=self.cooldown
        )
        if admission.refused is not None:
            raise self._refusal(attempt.target, admission.refused, now)
        self._local.probes = admission.probes

    def _refusal(self, target: ResolvedModel, circuit: Circuit, now: float) -> CircuitOpen:
        if circuit.state_at(now) == state.OPEN:
            return CircuitOpen(
                target,
                circuit,
                set_aside(circuit, self._zone(), now),
                "it will be tried again then",
            )
        return CircuitOpen(
            target,
            circuit,
            f"{circuit.key} is set aside after {circuit.reason}",
            "another tokencli call is trying it again now",
        )

    # ------------------------------------------------------------ counting

    def settle(self, target: ResolvedModel, error: Exception | None) -> list[Circuit]:
        """Count one attempt's outcome; return the circuits it set aside."""
        probes: tuple[str, ...] = getattr(self._local, "probes", ())
        self._local.probes = ()
        if not self.enabled:
            return []
        ledger, owner = self._ledger(), getattr(self._local, "owner", None)
        now = self._timestamp()
        if error is None:
            state.record_success(ledger, keys(target))
            return []
        opened: list[Circuit] = []
        if isinstance(error, ProviderError) and error.kind in BILLING_KINDS:
            opened.append(
                state.open_now(
                    ledger,
                    target.provider.name,
                    reason=BILLING_REASON,
                    kind=error.kind,
                    now=now,
                    until=now + self.cooldown,
                )
            )
        elif isinstance(error, ProviderError) and error.retryable:
            kind = error.kind
            for key in keys(target):
                is_provider = key == target.provider.name

                def opens(counted: Circuit, is_provider: bool = is_provider) -> str | None:
                    reason = f"{counted.failures} failures in a row ({kind})"
                    if counted.key in probes:
                        return reason  # the trial failed: another cooldown
                    if counted.failures < self.threshold:
                        return None
                    if is_provider and not (counted.spread or kind in HOST_KINDS):
                        return None  # one model failing is that model's trouble
                    return reason

                circuit = state.record_failure(
                    ledger,
                    key,
                    kind=kind,
                    model=target.model,
                    owner=owner,
                    opens=opens,
                    now=now,
                    cooldown=self.cooldown,
                )
                if circuit is not None:
                    opened.append(circuit)
        if probes and owner is not None:
            state.release(ledger, probes, owner)  # no verdict: the next call is the trial
        return opened

    def is_open(self, target: ResolvedModel) -> bool:
        """Whether the target's model or provider is set aside (stop retrying it)."""
        if not self.enabled:
            return False
        now = self._timestamp()
        rows = state.read(self._ledger(), keys(target)).values()
        return any(row.state_at(now) == state.OPEN for row in rows)

    def describe(self, circuit: Circuit) -> str:
        """E.g. "openai:gpt-4o is set aside until 14:32:05 after 5 failures in a row (timeout)"."""
        return set_aside(circuit, self._zone(), self._timestamp())

    def until(self, circuit: Circuit) -> str:
        """When it will be tried again: "14:32:05" today, else with its date."""
        return until_text(circuit, self._zone(), self._timestamp())

    def _zone(self) -> tzinfo:
        from ..window import zone

        return zone(self._timezone)


def keys(target: ResolvedModel) -> list[str]:
    """The breakers a call to `target` passes: its provider's, then its model's."""
    return [target.provider.name, target.ref]


def until_text(circuit: Circuit, tz: tzinfo, now: float) -> str:
    until = datetime.fromtimestamp(circuit.open_until or now, tz)
    today = datetime.fromtimestamp(now, tz).date()
    return f"{until:%H:%M:%S}" if until.date() == today else f"{until:%Y-%m-%d %H:%M:%S}"


def set_aside(circuit: Circuit, tz: tzinfo, now: float) -> str:
    return f"{circuit.key} is set aside until {until_text(circuit, tz, now)} after {circuit.reason}"
