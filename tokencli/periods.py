"""Points in time from what people type: `7d`, `12h`, `2026-11-01`, ISO times.

Dates without a time are local midnight (the user's day), everything is
returned as an aware UTC datetime. The clock is passed in, so tests and
reports can pin "now".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import UsageError

_RELATIVE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    match = _RELATIVE.match(text)
    if not match:
        return None
    amount, unit = int(match.group(1)), match.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_point(text: str, now: datetime, *, option: str = "--since") -> datetime:
    """`7d` (that long before now), `YYYY-MM-DD` (local midnight) or an ISO time."""
    value = text.strip()
    delta = parse_duration(value)
    if delta is not None:
        return (now - delta).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date, a time or a duration.",
            "Use e.g. 7d, 12h, 30m, 2w, 2026-11-01 or 2026-11-01T09:00.",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time, as the user meant it
    return parsed.astimezone(UTC)
