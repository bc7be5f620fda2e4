"""Reading providers' timing headers, without importing httpx.

Retry-After comes as milliseconds (`retry-after-ms`), seconds or an HTTP
date; OpenAI's rate-limit resets are Go durations (`6m0s`, `250ms`),
Anthropic's are RFC 3339 times, Gemini's `retryDelay` is `38s`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """`38s`, `1.5s`, `6m0s`, `250ms` → seconds."""
    total, found = 0.0, False
    for number, unit in _DURATION.findall(text.strip()):
        found = True
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total if found else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(float(ms) / 1000, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def parse_reset(text: str, now: datetime) -> float | None:
    """Seconds until a rate-limit reset given as a duration, seconds or an RFC 3339 time."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    if text[0].isdigit() and "T" in text:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return max((when - now).total_seconds(), 0.0)
        except ValueError:
            return None
    return parse_duration(text)
