"""The report, as data. Every format (table, JSON, CSV, Markdown, HTML) renders this.

Records are NamedTuples: immutable like frozen dataclasses, and about ten
times cheaper to define, which `tokencli report`'s start-up feels.
Money is `Decimal` in the report's one currency. Spend excludes answers served
from the response cache: a `cached` row's cost is what it saved, shown apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from ..window import Window

# What `--by` accepts; `tag:KEY` too.
DIMENSIONS = ("provider", "model", "project", "prompt", "day", "week", "month", "hour")
TIME_DIMENSIONS = ("hour", "day", "week", "month")


# A report's period is a `window.Window`: [start, end) in UTC, its label and zone.
Period = Window


class Totals(NamedTuple):
    calls: int = 0  # every finished call: ok, error, interrupted, blocked, cached
    ok: int = 0
    errors: int = 0  # error + interrupted
    blocked: int = 0
    cached: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)  # spend: every status but cached
    savings: Decimal = Decimal(0)  # what cached answers would have cost
    unpriced_calls: int = 0  # calls with unknown cost (not in `cost`)
    duration_ms: int = 0  # summed, for the mean

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def price_per_1k(self) -> Decimal | None:
        """Effective price per 1,000 tokens (input and output together)."""
        priced = self.calls - self.unpriced_calls - self.cached
        if not self.total_tokens or priced <= 0:
            return None
        return self.cost * 1000 / self.total_tokens


class Group(NamedTuple):
    """One row of a `--by` breakdown: its key (one value per dimension) and totals."""

    key: tuple[str, ...]
    totals: Totals
    previous_cost: Decimal | None = None  # the same key in the previous period

    @property
    def change(self) -> Decimal | None:
        """Spend against the same key's previous spend, as `Report.change` measures it."""
        if not self.previous_cost:
            return None
        return (self.totals.cost - self.previous_cost) / self.previous_cost


class TopCall(NamedTuple):
    id: str
    ts: str  # UTC, as in the ledger
    provider: str
    model: str
    project: str | None
    status: str
    input_tokens: int
    output_tokens: int
    cost: Decimal  # in the report currency
    duration_ms: int | None


class ModelStats(NamedTuple):
    """Per model: effective price and latency percentiles of its successful calls."""

    provider: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    price_per_1k: Decimal | None
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None


class HourStat(NamedTuple):
    """A local hour of the day (0-23) across the period."""

    hour: int
    calls: int
    cost: Decimal


class BudgetLine(NamedTuple):
    """A configured budget as the report's period leaves it (`insights.budgets.budget_state`)."""

    name: str
    scope: str  # "provider=openai, project=x", or "all"
    period: str  # day | week | month
    window: str  # the budget's window, e.g. "2026-11"
    unit: str  # the budget's currency, or "tokens"
    limit: Decimal
    spent: Decimal  # in the window, up to the report's end (or now, if earlier)
    percent: Decimal
    crossed: tuple[int, ...]  # the `warn` thresholds reached
    block: bool


class Anomaly(NamedTuple):
    """A day whose spend was above `threshold` × the trailing 14-day median."""

    day: date
    spend: Decimal
    median: Decimal
    threshold: Decimal  # `[alerts] spike_factor`

    @property
    def factor(self) -> Decimal:
        return self.spend / self.median


@dataclass
class Report:
    period: Period
    currency: str
    by: tuple[str, ...]
    totals: Totals
    groups: list[Group] = field(default_factory=list)
    previous_period: Period | None = None
    previous: Totals | None = None
    daily: list[tuple[date, Decimal]] = field(default_factory=list)  # spend per local day
    top_calls: list[TopCall] = field(default_factory=list)
    models: list[ModelStats] = field(default_factory=list)
    busiest_hours: list[HourStat] = field(default_factory=list)
    # Currencies found in the period with no rate to the report currency:
    # their amounts are left out of `cost` and named here.
    unconverted: list[str] = field(default_factory=list)
    generated_at: datetime | None = None
    # The end of the newest quarter hour `ledger prune` deleted calls from, when the
    # period reaches back before it: totals still count pruned calls, lists cannot.
    pruned_until: str | None = None
    budgets: list[BudgetLine] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)  # spike days, oldest first

    @property
    def change(self) -> Decimal | None:
        """Spend against the previous period as a fraction (0.25 = +25%); None without a base."""
        if self.previous is None or not self.previous.cost:
            return None
        return (self.totals.cost - self.previous.cost) / self.previous.cost
