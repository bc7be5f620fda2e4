"""Time as people type it, in one grammar, and the `Window` of calls it names.

- Spans: `30min`, `12h`, `7d`, `2w`, `3mo`, `1y`. A bare `m` is refused: it
  meant minutes in one place and months in another, so it is spelled out.
- Points: a span before now (`7d`), a date (`2026-11-01`, midnight where the
  user lives), an ISO time (local unless it carries its zone).
- Windows: [start, end) as aware UTC instants with a label and the zone they
  are read in: `--month`, `--last`, `--since/--until`, and calendar periods
  (day, week from Monday, month) for budgets.

A day is a day in the user's zone (DST included, through the IANA zone).
The clock is passed in. Every parse failure and every value out of range is a
`UsageError` with one sentence, never a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import NamedTuple, TypeVar

from .errors import UsageError

UNITS = ("min", "h", "d", "w", "mo", "y")
DAY_UNITS = ("d", "w", "mo", "y")
SPAN_EXAMPLES = "30min, 12h, 7d, 2w, 3mo or 1y"
# Times a window may reach: far wider than any ledger, narrow enough that
# every sum, shift and comparison on them stays inside `datetime`.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_SLACK = timedelta(days=1)  # so that 1900-01-01 and 9998-12-31 hold in every zone
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # where an open --since starts

_SPAN = re.compile(r"^([0-9]+)\s*([a-z]+)$", re.IGNORECASE | re.ASCII)
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$", re.ASCII)
_MAX_DIGITS = 12  # more than any span inside EARLIEST..LATEST needs

T = TypeVar("T")


class Window(NamedTuple):
    """[start, end) as aware UTC datetimes, described in the zone the user reads it in."""

    start: datetime
    end: datetime
    label: str  # "2026-11", "2026-W47", "2026-11-01 → 2026-11-15", "last 7d"
    tz: str  # IANA zone name (or a fixed offset like "UTC+05:30")


class Span(NamedTuple):
    """A length of time as typed: `amount` of `unit` (one of UNITS)."""

    amount: int
    unit: str

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def months(self) -> int | None:
        """Calendar months for `mo` and `y`; None for the fixed-length units."""
        if self.unit == "mo":
            return self.amount
        return self.amount * 12 if self.unit == "y" else None

    @property
    def delta(self) -> timedelta | None:
        """The exact length for `min`, `h`, `d`, `w`; None for months and years."""
        if self.unit == "min":
            return timedelta(minutes=self.amount)
        if self.unit == "h":
            return timedelta(hours=self.amount)
        if self.unit in ("d", "w"):
            return timedelta(days=self.amount * (7 if self.unit == "w" else 1))
        return None

    def before(self, when: datetime, tz: tzinfo) -> datetime:
        """`when` less this span: exact for min/h/d/w, by the calendar in `tz` for mo/y.

        A month back from March 31 is the last day of February. May raise
        OverflowError or ValueError far outside the calendar: see `_checked`.
        """
        delta = self.delta
        if delta is not None:
            return (when - delta).astimezone(UTC)
        months = self.months or 0
        local = when.astimezone(tz)
        year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
        day = min(local.day, _month_days(year, month + 1))
        return local.replace(year=year, month=month + 1, day=day, tzinfo=tz).astimezone(UTC)


def parse_span(text: str, option: str, *, units: tuple[str, ...] = UNITS, minimum: int = 1) -> Span:
    """`7d`, `3mo`, ... as a Span; anything else a UsageError naming `option`."""
    span = _span(text, option, units=units, minimum=minimum)
    if span is None:
        raise UsageError(
            f"{option} {text!r} is not a length of time.",
            f"Use e.g. {_examples(units)}.",
        )
    return span


def _span(text: str, option: str, *, units: tuple[str, ...], minimum: int) -> Span | None:
    """A Span when `text` is shaped like one (None when it is not), refused when it is wrong."""
    match = _SPAN.match(text.strip())
    if not match:
        return None
    digits, unit = match.group(1), match.group(2).lower()
    if unit == "m":
        n = digits.lstrip("0") or "0"
        raise UsageError(
            f"{option} {text!r} is ambiguous: write {n}min for minutes or {n}mo for months."
        )
    if unit not in UNITS:
        return None
    if unit not in units:
        raise UsageError(
            f"{option} {text!r} is not a length this option takes.",
            f"Use e.g. {_examples(units)}.",
        )
    if len(digits.lstrip("0")) > _MAX_DIGITS:
        raise _out_of_range(option, text)
    amount = int(digits)
    if amount < minimum:
        raise UsageError(
            f"{option} {text!r} is not a length of time.",
            f"Use e.g. {_examples(units)} (at least {minimum}).",
        )
    return Span(amount, unit)


def _examples(units: tuple[str, ...]) -> str:
    if units == DAY_UNITS:
        return "180d, 26w, 6mo or 1y"
    return SPAN_EXAMPLES


def _out_of_range(option: str, text: str) -> UsageError:
    return UsageError(
        f"{option} {text!r} is out of range: it must fall between the years {EARLIEST.year}"
        f" and {LATEST.year - 1}."
    )


def _checked(option: str, text: str, compute: Callable[[], T]) -> T:
    """`compute()`, with every overflow of the calendar turned into one clear sentence."""
    try:
        return compute()
    except (OverflowError, ValueError):
        raise _out_of_range(option, text) from None


def _in_range(when: datetime, option: str, text: str) -> datetime:
    if not EARLIEST - _SLACK <= when <= LATEST + _SLACK:
        raise _out_of_range(option, text)
    return when


# ------------------------------------------------------------------ zones


def zone(name: str | None) -> tzinfo:
    """The zone called `name` (IANA, `UTC`, `local`), or this machine's zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name and name.lower() != "local":
        try:
            return ZoneInfo("UTC" if name.upper() == "UTC" else name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
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


# ------------------------------------------------------------------ calendar


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which `day` starts in `tz`."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def previous_month(day: date) -> date:
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def _month_days(year: int, month: int) -> int:
    import calendar

    return calendar.monthrange(year, month)[1]


def month_period(first: date, tz: tzinfo) -> Window:
    return Window(
        local_midnight(first, tz),
        local_midnight(next_month(first), tz),
        f"{first:%Y-%m}",
        zone_name(tz),
    )


CALENDAR_UNITS = ("day", "week", "month")


def calendar_days(unit: str, day: date) -> tuple[date, date, str]:
    """First and last day of the day, week (Monday first) or month holding `day`, and its
    label ("2026-11-22", "2026-W47", "2026-11")."""
    if unit == "day":
        return day, day, day.isoformat()
    if unit == "week":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return monday, monday + timedelta(days=6), f"{year}-W{week:02d}"
    if unit == "month":
        first = month_start(day)
        return first, next_month(first) - timedelta(days=1), f"{first:%Y-%m}"
    raise ValueError(f"unknown calendar period {unit!r}")


def calendar_window(unit: str, when: datetime, tz: tzinfo) -> Window:
    """The local day, week or month holding `when` in `tz`, as exact UTC bounds."""
    first, last, label = calendar_days(unit, when.astimezone(tz).date())
    return Window(
        local_midnight(first, tz),
        local_midnight(last + timedelta(days=1), tz),
        label,
        zone_name(tz),
    )


def parse_month(text: str, option: str = "--month") -> date:
    """`YYYY-MM` as the month's first day."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError(f"{option} {text!r} is not a month.", "Write it as YYYY-MM, e.g. 2026-11.")
    year = int(match.group(1))
    if not EARLIEST.year <= year <= LATEST.year - 1:
        raise _out_of_range(option, text)
    return date(year, int(match.group(2)), 1)


# ------------------------------------------------------------------ points


def parse_point(text: str, now: datetime, tz: tzinfo, *, option: str = "--since") -> datetime:
    """A span before `now`, `YYYY-MM-DD` (midnight in `tz`), or an ISO time (in `tz` unless it says)."""
    value = text.strip()
    span = _span(value, option, units=UNITS, minimum=0)
    if span is not None:
        return _in_range(_checked(option, text, lambda: span.before(now, tz)), option, text)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date, a time or a duration.",
            f"Use e.g. 2026-11-01, 2026-11-01T09:00 or {SPAN_EXAMPLES}.",
        ) from None
    local = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)
    return _in_range(_checked(option, text, lambda: local.astimezone(UTC)), option, text)


def retention_cutoff(text: str, now: datetime) -> datetime:
    """`180d`, `26w`, `6mo`, `1y` before now, rounded down to a UTC midnight.

    Whole UTC days, so a pruned day is gone whole and the day rollups that keep
    its totals line up with what is left.
    """
    option = "--older-than"
    span = parse_span(text, option, units=DAY_UNITS)
    today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), UTC)
    return _in_range(_checked(option, text, lambda: span.before(today, UTC)), option, text)


# ------------------------------------------------------------------ windows


def resolve_period(
    *,
    now: datetime,
    tz: tzinfo,
    month: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
) -> Window:
    """The window the options name; the current month when they name none.

    `--last 7d` is today and the six days before it (whole local days, so a
    daily chart has no partial first bar); `--last 12h` the current hour and
    the eleven before; `--last 3mo` this month and the two before.
    """
    return _whole_seconds(
        _resolve(now=now, tz=tz, month=month, since=since, until=until, last=last)
    )


def _whole_seconds(window: Window) -> Window:
    """Bounds on whole seconds, so the rollups' blocks line up exactly (end rounded up)."""
    start = window.start.replace(microsecond=0)
    end = window.end
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return Window(start, end, window.label, window.tz)


def _resolve(
    *,
    now: datetime,
    tz: tzinfo,
    month: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
) -> Window:
    if sum(x is not None for x in (month, last)) + (since is not None or until is not None) > 1:
        raise UsageError(
            "--month, --last and --since/--until each name a period; give only one of them."
        )
    local_now = now.astimezone(tz)
    if month is not None:
        first = parse_month(month)
        return _checked("--month", month, lambda: month_period(first, tz))
    if last is not None:
        return _last_period(last, local_now, tz)
    if since is not None or until is not None:
        start = parse_point(since, now, tz, option="--since") if since else EPOCH
        end = parse_point(until, now, tz, option="--until") if until else now.astimezone(UTC)
        if end <= start:
            raise UsageError("--until must be later than --since.")
        label = f"{_describe(start, tz) if since else 'start'} → {_describe(end, tz) if until else 'now'}"
        return Window(start, end, label, zone_name(tz))
    return month_period(month_start(local_now.date()), tz)


def _last_period(text: str, local_now: datetime, tz: tzinfo) -> Window:
    span = parse_span(text, "--last")
    end = local_now.astimezone(UTC)

    def start() -> datetime:
        if span.unit in ("min", "h"):
            size = timedelta(minutes=1) if span.unit == "min" else timedelta(hours=1)
            floor = end.replace(second=0, microsecond=0)
            if span.unit == "h":
                floor = floor.replace(minute=0)
            return floor - size * (span.amount - 1)
        if span.unit in ("d", "w"):
            days = span.amount * (7 if span.unit == "w" else 1)
            return local_midnight(local_now.date() - timedelta(days=days - 1), tz)
        first = month_start(local_now.date())
        year, month = divmod(first.year * 12 + first.month - 1 - ((span.months or 1) - 1), 12)
        return local_midnight(date(year, month + 1, 1), tz)

    begin = _in_range(_checked("--last", text, start), "--last", text)
    return Window(begin, end, f"last {span}", zone_name(tz))


def previous_period(period: Window, tz: tzinfo) -> Window:
    """The window just before: the previous month for a month, else the same length before.

    It never starts before EARLIEST (a window that long has nothing before it).
    """
    if _MONTH.match(period.label):
        first = previous_month(parse_month(period.label))
        return month_period(first, tz)
    length = period.end - period.start
    floor = EARLIEST - _SLACK
    start = period.start - length if length < period.start - floor else floor
    return Window(min(start, period.start), period.start, f"previous {period.label}", period.tz)


def _describe(when: datetime, tz: tzinfo) -> str:
    local = when.astimezone(tz)
    return f"{local:%Y-%m-%d}" if local.time() == datetime.min.time() else f"{local:%Y-%m-%d %H:%M}"
