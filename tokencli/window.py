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


_RETENTION = re.compile(r"^\s*(\d+)\s*(d|w|m|mo|y)\s*$", re.IGNORECASE)


def retention_cutoff(text: str, now: datetime) -> datetime:
    """`180d`, `26w`, `6mo` (or `6m`), `1y` before now, rounded down to a UTC midnight.

    Whole UTC days, so a pruned day is gone whole and the day rollups that keep
    its totals line up with what is left.
    """
    match = _RETENTION.match(text)
    if not match or int(match.group(1)) < 1:
        raise UsageError(
            f"--older-than {text!r} is not a length of time.",
            "Use e.g. 180d, 26w, 6mo or 1y.",
        )
    amount, unit = int(match.group(1)), match.group(2).lower()
    today = now.astimezone(UTC).date()
    if unit in ("d", "w"):
        day = today - timedelta(days=amount * (7 if unit == "w" else 1))
    else:
        months = amount * (12 if unit == "y" else 1)
        index = today.year * 12 + today.month - 1 - months
        year, month = divmod(index, 12)
        day = today.replace(
            year=year, month=month + 1, day=min(today.day, _month_days(year, month + 1))
        )
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month_days(year: int, month: int) -> int:
    import calendar

    return calendar.monthrange(year, month)[1]
