"""Client-side rate limits, shared by every tokencli process on the machine.

Per (provider, model) there is a request bucket (`rpm`) and a token bucket
(`tpm`), paced evenly (GCRA, see `ledger.ratelimits`): N per minute means at
most N in any minute, one every 60/N seconds. A call books one request and
its estimated tokens (input estimate plus `max_tokens`) before it is sent,
and the token booking is settled with the real usage afterwards.

What providers say is learnt too, configured limits or not: a 429's
Retry-After, or `remaining = 0` rate-limit headers (OpenAI's
`x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`), hold every process
back until the reset. A provider cannot hold anyone back longer than its
`retry_max_wait`: a longer (or absurd) wait is cut to that, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from ..ledger import Ledger, ratelimits
from ..providers.http_headers import parse_reset
from ..settings.loader import Settings

# Output tokens booked when a call gives no max_tokens (settled afterwards).
DEFAULT_OUTPUT_RESERVE = 1024


@dataclass(frozen=True)
class Reservation:
    wait: float
    tokens: int
    tpm: int | None


class RateLimiter:
    def __init__(
        self,
        settings: Settings,
        ledger: Callable[[], Ledger],
        now: Callable[[], float] = time.time,
        notify: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self._ledger = ledger
        self.now = now
        self.notify = notify

    def limits(self, provider: str, model: str) -> tuple[int | None, int | None]:
        per_model = self.settings.models.get(f"{provider}:{model}")
        config = self.settings.provider(provider)
        rpm = per_model.rpm if per_model and per_model.rpm else config.rpm
        tpm = per_model.tpm if per_model and per_model.tpm else config.tpm
        return rpm, tpm

    @staticmethod
    def key(provider: str, model: str, dimension: str) -> str:
        return f"{provider}\x1f{model}\x1f{dimension}"

    def acquire(self, provider: str, model: str, estimated_tokens: int) -> Reservation:
        """Book this call; the caller waits `wait` seconds before sending."""
        rpm, tpm = self.limits(provider, model)
        ledger, now = self._ledger(), self.now()
        # A hold only learnt from the provider lasts retry_max_wait at most, even one
        # stored before that bound existed (a Retry-After of years).
        most = self.settings.provider(provider).retry_max_wait
        wait = ratelimits.reserve(
            ledger, self.key(provider, model, "requests"), 1, rpm / 60 if rpm else None, now
        )
        wait = wait if rpm else min(wait, most)
        tokens = max(estimated_tokens, 1)
        held = ratelimits.reserve(
            ledger, self.key(provider, model, "tokens"), tokens, tpm / 60 if tpm else None, now
        )
        wait = max(wait, held if tpm else min(held, most))
        return Reservation(wait, tokens if tpm else 0, tpm)

    def settle(
        self, provider: str, model: str, reservation: Reservation, actual_tokens: int
    ) -> None:
        if reservation.tpm:
            ratelimits.adjust(
                self._ledger(),
                self.key(provider, model, "tokens"),
                actual_tokens - reservation.tokens,
                reservation.tpm / 60,
                self.now(),
            )

    def hold(self, provider: str, model: str, seconds: float, dimension: str = "requests") -> None:
        """The provider asked everyone to wait (Retry-After on a 429), bounded by
        the provider's retry_max_wait: a provider never holds every later run hostage."""
        if not seconds > 0:  # also nan
            return
        most = self.settings.provider(provider).retry_max_wait
        if seconds > most:
            self.notify(
                f"{provider} asked to hold back {model} for {seconds:.0f} s; "
                f"holding it for {most:.0f} s at most (retry_max_wait)."
            )
            seconds = most
        if seconds > 0:
            ratelimits.block_until(
                self._ledger(), self.key(provider, model, dimension), self.now() + seconds
            )

    def learn(self, provider: str, model: str, headers: Mapping[str, str]) -> None:
        """Hold back until reset when the provider says nothing is left."""
        lower = {k.lower(): v for k, v in headers.items()}
        for dimension in ("requests", "tokens"):
            for remaining_name, reset_name in (
                (f"x-ratelimit-remaining-{dimension}", f"x-ratelimit-reset-{dimension}"),
                (
                    f"anthropic-ratelimit-{dimension}-remaining",
                    f"anthropic-ratelimit-{dimension}-reset",
                ),
            ):
                remaining = lower.get(remaining_name)
                if remaining is None or remaining.strip() not in ("0", "0.0"):
                    continue
                seconds = parse_reset(
                    lower.get(reset_name, ""), datetime.fromtimestamp(self.now(), UTC)
                )
                if seconds:
                    self.hold(provider, model, seconds, dimension)
