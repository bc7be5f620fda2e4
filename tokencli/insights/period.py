"""Report periods: `--month`, `--since/--until`, `--last`, in a time zone.

A day is a day where the user lives: bounds are local midnights (DST
included, through the IANA zone), turned into exact UTC instants. The clock is
passed in.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path

from ..errors import UsageError
from .model import Period

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_LAST = re.compile(r"^\s*(\d+)\s*(h|d|w|m|mo)\s*$", re.IGNORECASE)


def zone(name: str | None) -> tzinfo:
    """The zone called `name` (IANA, `UTC`, `local`), or this machine's zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name and name.lower() != "local":
        try:
            return ZoneInfo("UTC" if name.upper() == "UTC" else name)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(
                f"--tz {name!r} is not a known time zone.",
                "Use an IANA name like Europe/Berlin, America/New_York or UTC.",
            ) from None
    return local_zone()


def local_zone() -> tzinfo:
    """This machine's zone with its DST rules: $TZ, then /etc/localtime, else a fixed offset."""
    from zoneinfo import ZoneInfo

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = Path("/etc/localtime").resolve()
        if "zoneinfo" in target.parts:
            candidates.append("/".join(target.parts[target.parts.index("zoneinfo") + 1 :]))
    except OSError:
        pass
    for key in candidates:
        if key:
            try:
                return ZoneInfo(key)
            except Exception:  # a malformed $TZ falls through
                continue
    fixed = datetime.now().astimezone().tzinfo
    return fixed if fixed is not None else UTC


def zone_name(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    return str(key) if key else str(datetime.now(tz).strftime("UTC%z"))


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which `day` starts in `tz`."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def previous_month(day: date) -> date:
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def month_period(first: date, tz: tzinfo) -> Period:
    return Period(
        local_midnight(first, tz),
        local_midnight(next_month(first), tz),
        f"{first:%Y-%m}",
        zone_name(tz),
    )


def parse_month(text: str) -> date:
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError(f"--month {text!r} is not a month.", "Write it as YYYY-MM, e.g. 2026-11.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def parse_bound(text: str, tz: tzinfo, option: str, now: datetime) -> datetime:
    """`YYYY-MM-DD` (local midnight in `tz`), an ISO time (local unless it says), or `7d` ago."""
    value = text.strip()
    relative = _LAST.match(value)
    if relative and relative.group(2).lower() in ("h", "d", "w"):
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        delta = (
            timedelta(hours=amount)
            if unit == "h"
            else timedelta(days=amount * (7 if unit == "w" else 1))
        )
        return now.astimezone(UTC) - delta
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date, a time or a duration.",
            "Use e.g. 2026-11-01, 2026-11-01T09:00, 7d or 12h.",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def resolve_period(
    *,
    now: datetime,
    tz: tzinfo,
    month: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
) -> Period:
    """The period the options name; the current month when they name none.

    `--last 7d` is today and the six days before it (whole local days, so a
    daily chart has no partial first bar); `--last 12h` the current hour and
    the eleven before; `--last 3m` this month and the two before.
    """
    return _whole_seconds(
        _resolve(now=now, tz=tz, month=month, since=since, until=until, last=last)
    )


def _whole_seconds(period: Period) -> Period:
    """Bounds on whole seconds, so the rollups' blocks line up exactly (end rounded up)."""
    start = period.start.replace(microsecond=0)
    end = period.end
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return Period(start, end, period.label, period.tz)


def _resolve(
    *,
    now: datetime,
    tz: tzinfo,
    month: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
) -> Period:
    if sum(x is not None for x in (month, last)) + (since is not None or until is not None) > 1:
        raise UsageError(
            "--month, --last and --since/--until each name a period; give only one of them."
        )
    local_now = now.astimezone(tz)
    if month is not None:
        return month_period(parse_month(month), tz)
    if last is not None:
        return _last_period(last, local_now, tz)
    if since is not None or until is not None:
        start = (
            parse_bound(since, tz, "--since", now) if since else datetime(1970, 1, 1, tzinfo=UTC)
        )
        end = parse_bound(until, tz, "--until", now) if until else now.astimezone(UTC)
        if end <= start:
            raise UsageError("--until must be later than --since.")
        label = f"{_describe(start, tz) if since else 'start'} → {_describe(end, tz) if until else 'now'}"
        return Period(start, end, label, zone_name(tz))
    return month_period(month_start(local_now.date()), tz)


def _last_period(text: str, local_now: datetime, tz: tzinfo) -> Period:
    match = _LAST.match(text)
    if not match or int(match.group(1)) < 1:
        raise UsageError(
            f"--last {text!r} is not a length of time.",
            "Use e.g. 24h, 7d, 4w or 3mo (3m works too: months).",
        )
    amount, unit = int(match.group(1)), match.group(2).lower()
    end = local_now.astimezone(UTC)
    if unit == "h":
        hour = local_now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        start = hour - timedelta(hours=amount - 1)
    elif unit in ("d", "w"):
        days = amount * (7 if unit == "w" else 1)
        start = local_midnight(local_now.date() - timedelta(days=days - 1), tz)
    else:
        first = month_start(local_now.date())
        for _ in range(amount - 1):
            first = previous_month(first)
        start = local_midnight(first, tz)
    return Period(start, end, f"last {amount}{unit}", zone_name(tz))


def previous_period(period: Period, tz: tzinfo) -> Period:
    """The period just before: the previous month for a month, else the same length before."""
    if _MONTH.match(period.label):
        first = previous_month(parse_month(period.label))
        return month_period(first, tz)
    length = period.end - period.start
    return Period(period.start - length, period.start, f"previous {period.label}", period.tz)


def _describe(when: datetime, tz: tzinfo) -> str:
    local = when.astimezone(tz)
    return f"{local:%Y-%m-%d}" if local.time() == datetime.min.time() else f"{local:%Y-%m-%d %H:%M}"
