"""What reports and forecasts read from the ledger: a small protocol, and the ledger's side of it.

`tokencli.insights` builds reports and forecasts from these few queries and
never sees SQL or a connection: it takes any `LedgerReader`, which `Ledger`
is (through `ReportReads`). The SQL itself is in `report_queries`, imported
when a report first asks (the write path of a call never loads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    import sqlite3

    from ..scope import Scope
    from .report_queries import Segment, SumRow


class CostlyCall(NamedTuple):
    """One of a period's most expensive calls, in its own currency's picos."""

    id: str
    ts: str
    provider: str
    model: str
    project: str | None
    status: str
    input_tokens: int
    output_tokens: int
    cost_pico: int  # never NULL here: calls without a price are left out
    currency: str | None
    duration_ms: int | None


class LedgerReader(Protocol):
    """The reads a report or a forecast makes (see `report_queries` for what each returns)."""

    def segment_sums(
        self, segments: Sequence[Segment], dims: Sequence[str], flt: Scope
    ) -> list[SumRow]:
        """Sums per (segment label, dimension values, currency) over the segments."""
        ...

    def local_sums(
        self,
        start: datetime,
        end: datetime,
        tz: tzinfo,
        unit: int,
        dims: Sequence[str],
        flt: Scope,
    ) -> list[SumRow] | None:
        """Sums per local hour or day (`unit` seconds); None where only segments can say."""
        ...

    def hour_of_day_totals(
        self, start: datetime, end: datetime, tz: tzinfo
    ) -> list[tuple[int, str, int, int]]:
        """(local hour of day, currency, calls, cost_pico) over the whole UTC hours in [start, end)."""
        ...

    def latency_histograms(
        self, start: datetime, end: datetime, flt: Scope
    ) -> dict[tuple[str, str], dict[int, int]]:
        """(provider, model) → {duration bucket: count} of ok calls in [start, end)."""
        ...

    def costliest_calls(
        self, start: datetime, end: datetime, flt: Scope, limit: int, period_calls: int
    ) -> list[CostlyCall]:
        """The most expensive spending calls in [start, end), ranked in their own currency."""
        ...

    def pruned_until(self) -> str | None:
        """The end of the newest quarter hour `ledger prune` deleted calls from."""
        ...

    def budget_reserved(self) -> dict[str, tuple[int, int]]:
        """Per budget name: (picos in the budget's currency, tokens) held by calls in flight."""
        ...


class ReportReads:
    """`LedgerReader` on the ledger's own connection (a base class of `Ledger`)."""

    _conn: sqlite3.Connection

    def segment_sums(
        self, segments: Sequence[Segment], dims: Sequence[str], flt: Scope
    ) -> list[SumRow]:
        from .report_queries import sums

        return sums(self._conn, segments, dims, flt)

    def local_sums(
        self,
        start: datetime,
        end: datetime,
        tz: tzinfo,
        unit: int,
        dims: Sequence[str],
        flt: Scope,
    ) -> list[SumRow] | None:
        from .report_queries import sums_by_local

        return sums_by_local(self._conn, start, end, tz, unit, dims, flt)

    def hour_of_day_totals(
        self, start: datetime, end: datetime, tz: tzinfo
    ) -> list[tuple[int, str, int, int]]:
        from .report_queries import hour_of_day_totals

        return hour_of_day_totals(self._conn, start, end, tz)

    def latency_histograms(
        self, start: datetime, end: datetime, flt: Scope
    ) -> dict[tuple[str, str], dict[int, int]]:
        from .report_queries import latency_histograms

        return latency_histograms(self._conn, start, end, flt)

    def costliest_calls(
        self, start: datetime, end: datetime, flt: Scope, limit: int, period_calls: int
    ) -> list[CostlyCall]:
        from .report_queries import top_calls

        rows = top_calls(self._conn, start, end, flt, limit, period_calls)
        return [CostlyCall(*row) for row in rows]

    def pruned_until(self) -> str | None:
        from .report_queries import pruned_until

        return pruned_until(self._conn)
