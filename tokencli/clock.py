"""The one clock: every timestamp tokencli records or compares with a calendar.

`TOKENCLI_NOW` (an ISO time) pins `now()` for tests and reproducible runs:
recorded calls, `logs --since`, reports, forecasts and prune all see that
instant. Two readings are never pinned: `timestamp()`, the wall time that
rate-limit holds share with every other tokencli process (a frozen one would
make a wait last forever), and call ids, which keep the machine's time so that
ledgers merged from several machines stay unique and ordered.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from .errors import ConfigError

# A pinned clock has to leave room for every window computed from it (a year
# back, a month ahead), so the extremes of datetime are refused up front.
EARLIEST_YEAR, LATEST_YEAR = 1971, 9998


class Clock:
    """`now()`: the instant recorded and compared with calendars (aware UTC);
    `timestamp()`: wall-clock epoch seconds for waits shared between processes."""

    # A plain class: every command builds one, and a dataclass costs start-up time.
    __slots__ = ("pinned",)

    def __init__(self, pinned: datetime | None = None) -> None:
        self.pinned = pinned

    def now(self) -> datetime:
        return datetime.now(UTC) if self.pinned is None else self.pinned

    def timestamp(self) -> float:
        return time.time()


SYSTEM_CLOCK = Clock()


def pinned_clock(when: datetime) -> Clock:
    """A clock whose `now()` is always `when` (naive means UTC)."""
    return Clock(when if when.tzinfo else when.replace(tzinfo=UTC))


def clock_from_env(env: Mapping[str, str]) -> Clock:
    """The system clock, or the one `TOKENCLI_NOW` pins (exit 6 when it is not a usable time)."""
    pinned = env.get("TOKENCLI_NOW", "").strip()
    if not pinned:
        return SYSTEM_CLOCK
    try:
        when = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"TOKENCLI_NOW={pinned!r} is not an ISO time.",
            "Use e.g. 2026-11-15T12:00:00Z, or unset it.",
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        year = when.astimezone(UTC).year
    except OverflowError:
        year = when.year
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise ConfigError(
            f"TOKENCLI_NOW={pinned!r} is outside the years {EARLIEST_YEAR}–{LATEST_YEAR} tokencli can count from.",
            "Pin a nearer time, e.g. 2026-11-15T12:00:00Z, or unset it.",
        )
    return pinned_clock(when)
