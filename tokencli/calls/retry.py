"""When to try a failed call again, and how long to wait first.

Retryable failures are rate limits (429), overloads (503, Anthropic 529),
5xx, timeouts and connection errors that happened before any text arrived.
Billing and quota exhaustion, bad requests and content filters are never
retried. The wait is the provider's own `retry-after-ms` / `retry-after` /
Gemini `retryDelay` when given, else exponential backoff with jitter (the
official SDKs' 0.5 s doubling to 8 s); the sum of waits is bounded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ProviderError
from ..providers.registry import ProviderConfig

MAX_BACKOFF_S = 8.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    max_wait: float = 60.0
    backoff: float = 0.5

    @classmethod
    def of(cls, provider: ProviderConfig) -> RetryPolicy:
        return cls(provider.max_retries, provider.retry_max_wait, provider.retry_backoff)

    def delay(
        self,
        attempt: int,
        error: ProviderError,
        waited: float,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if not error.retryable or error.had_output or attempt > self.max_retries:
            return None
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF_S) * (1 - 0.25 * rng())
        if waited + wait > self.max_wait:
            return None
        return wait


def describe_failure(exc: ProviderError) -> str:
    """What went wrong, as the end of "PROVIDER ...; retrying"."""
    reasons = {
        "rate_limit": "is rate limiting",
        "overloaded": "is overloaded",
        "server": f"answered {exc.status_code}" if exc.status_code else "failed",
        "timeout": "timed out",
        "network": "could not be reached",
        "stream_cut": "closed the connection",
    }
    return reasons.get(exc.kind, f"failed ({exc.kind})")


def give_up_hint(exc: ProviderError, attempts: int, policy: RetryPolicy) -> str:
    """The hint on the error raised once the retries are over."""
    if exc.had_output:
        return "What arrived was printed and recorded; run again for the rest."
    if exc.retry_after is not None and exc.retry_after > policy.max_wait:
        return (
            f"It asked to wait {exc.retry_after:.0f} s, more than retry_max_wait ({policy.max_wait:.0f} s); "
            "run again later."
        )
    tries = f"Gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
    return f"{tries}; try again later, or raise max_retries/retry_max_wait for this provider."
