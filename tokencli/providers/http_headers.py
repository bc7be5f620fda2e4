"""Reading providers' timing headers, without importing httpx.

Retry-After comes as milliseconds (`retry-after-ms`), seconds or an HTTP
date; OpenAI's rate-limit resets are Go durations (`6m0s`, `250ms`),
Anthropic's are RFC 3339 times, Gemini's `retryDelay` is `38s`.

A value that is not a finite, non-negative number of seconds (`inf`, `nan`,
`-5`, a date that cannot be) counts as not given. How long a wait is used is
bounded where it is used (`calls.limits.RateLimiter.hold`, `calls.retry`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def seconds(value: float | None) -> float | None:
    """A wait a provider sent, if it is one: finite and not negative (else None)."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return value


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return None


def parse_duration(text: str) -> float | None:
    """`38s`, `1.5s`, `6m0s`, `250ms` → seconds."""
    total, found = 0.0, False
    for number, unit in _DURATION.findall(text.strip()[:200]):
        found = True
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return seconds(total) if found else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        found = _number(ms)
        if found is not None:
            return seconds(found / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    found = _number(value)
    if found is not None:
        return seconds(found)
    try:
        when = parsedate_to_datetime(value)
        return seconds(max((when - datetime.now(UTC)).total_seconds(), 0.0))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def parse_reset(text: str, now: datetime) -> float | None:
    """Seconds until a rate-limit reset given as a duration, seconds or an RFC 3339 time."""
    text = text.strip()
    if not text:
        return None
    found = _number(text)
    if found is not None:
        return seconds(found)
    if text[0].isdigit() and "T" in text:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return seconds(max((when - now).total_seconds(), 0.0))
        except (ValueError, OverflowError):
            return None
    return parse_duration(text)
