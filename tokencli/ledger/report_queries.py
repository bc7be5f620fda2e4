"""The SQL behind reports: sums over time segments from rollups plus raw edges.

A report asks for sums over segments (a month, or each local day of a year)
grouped by some dimensions. Each segment [a, b) is covered by the whole UTC
blocks of the narrowest rollup table that has those dimensions (`cover`), and
whatever is left at its edges (a local midnight at 05:30 UTC, a `--since`
at 09:17) is read from the calls themselves through the `ts` index. So totals
are exact in any time zone, and a year is read as tens of thousands of rollup
rows, never a million calls.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, NamedTuple

from ..errors import UsageError
from ..scope import Scope
from .migrations import ROLLUP_SUMS
from .rollups import BUCKET_EXPR, SUM_EXPR, bucket_middle
from .store import format_ts

HOUR, DAY = 3600, 86400


class Segment(NamedTuple):
    label: str
    start: datetime  # aware
    end: datetime


def _needs_detail(scope: Scope) -> bool:
    """Whether only the detail rollups (or the calls) know what `scope` asks about.

    Reports count every status; a scope's status or client cannot be read from
    the rollups and is refused.
    """
    if scope.status:
        raise UsageError(
            f"--status {scope.status!r}: reports and forecasts count every status.",
            "Filter by status in 'tokencli logs' or 'tokencli ledger export'.",
        )
    scope.refuse_client()
    return bool(scope.project or scope.tags or scope.prompt)


class SumRow(NamedTuple):
    label: str
    key: tuple[str, ...]  # one value per dimension ('' for none)
    currency: str
    sums: dict[str, int]


# ------------------------------------------------------------------ covering


def _seconds(when: datetime) -> int:
    """Epoch seconds of a bound; windows are whole seconds (see window.resolve_period)."""
    seconds = when.timestamp()
    if seconds != int(seconds):
        raise ValueError(f"report bounds must be whole seconds, not {when.isoformat()}")
    return int(seconds)


def _ts(epoch: int) -> str:
    return format_ts(datetime.fromtimestamp(epoch, UTC))


def _month_floor(t: int) -> int:
    d = datetime.fromtimestamp(t, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def _month_ceil(t: int) -> int:
    floor = _month_floor(t)
    if floor == t:
        return t
    d = datetime.fromtimestamp(floor, UTC)
    return int(datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC).timestamp())


def _block_bounds(grain: str, a: int, b: int) -> tuple[int, int]:
    """The first block start at or after a, the last block start at or before b."""
    if grain == "month":
        return _month_ceil(a), _month_floor(b)
    size = HOUR if grain == "hour" else DAY
    return -(-a // size) * size, b // size * size


def cover(a: int, b: int, grains: Sequence[str]) -> list[tuple[str, int, int]]:
    """[a, b) in epoch seconds as (grain, lo, hi) pieces: whole blocks, coarsest first, and 'raw'."""
    if a >= b:
        return []
    if not grains:
        return [("raw", a, b)]
    lo, hi = _block_bounds(grains[0], a, b)
    if lo >= hi:
        return cover(a, b, grains[1:])
    return [*cover(a, lo, grains[1:]), (grains[0], lo, hi), *cover(hi, b, grains[1:])]


# ------------------------------------------------------------------ dimensions


def _dimension_sql(dim: str, alias: str, raw: bool) -> tuple[str, list[Any]]:
    """SQL for one --by dimension on a rollup row (or a raw call), '' for none."""
    if dim in ("provider", "model"):
        return f"{alias}.{dim}", []
    if dim == "project":
        return (f"coalesce({alias}.project, '')" if raw else f"{alias}.project"), []
    if dim == "prompt":
        if raw:
            return (
                "CASE WHEN c.prompt_name IS NULL THEN '' "
                "ELSE c.prompt_name || '@' || coalesce(c.prompt_version, 0) END"
            ), []
        return (
            f"CASE WHEN {alias}.prompt_name = '' THEN '' "
            f"ELSE {alias}.prompt_name || '@' || {alias}.prompt_version END"
        ), []
    if dim.startswith("tag:"):
        return f"coalesce(json_extract(nullif({alias}.tags, ''), ?), '')", [_tag_path(dim[4:])]
    raise ValueError(f"unknown dimension {dim!r}")


def _tag_path(key: str) -> str:
    return "$." + json.dumps(key)


def _filter_sql(flt: Scope, alias: str, raw: bool) -> tuple[str, list[Any]]:
    _needs_detail(flt)
    clauses: list[str] = []
    args: list[Any] = []
    for column in ("provider", "model", "project"):
        value = getattr(flt, column)
        if value:
            clauses.append(f"{alias}.{column} = ?")
            args.append(value)
    prompt = flt.prompt_parts
    if prompt is not None:
        clauses.append(f"{alias}.prompt_name = ?")
        args.append(prompt[0])
        if prompt[1] is not None:
            clauses.append(f"{alias}.prompt_version = ?")
            args.append(prompt[1])
    for key, value in flt.tags:
        clauses.append(f"json_extract(nullif({alias}.tags, ''), ?) = ?")
        args.extend((_tag_path(key), value))
    return "".join(f" AND {c}" for c in clauses), args


def _tables_for(dims: Sequence[str], flt: Scope) -> list[tuple[str, str]]:
    """The narrowest rollups holding these dimensions and filters: [(grain, table)], coarsest first."""
    detail = _needs_detail(flt)
    if not dims and not detail and not flt.provider and not flt.model:
        return [("hour", "rollup_hour")]
    if set(dims) <= {"provider", "model"} and not detail:
        return [("month", "rollup_month_model"), ("hour", "rollup_hour_model")]
    return [("month", "rollup_month_detail"), ("day", "rollup_day_detail")]


# ------------------------------------------------------------------ queries


_SEGMENTS = (
    "(SELECT json_extract(value, '$[0]') AS label, json_extract(value, '$[1]') AS lo, "
    "json_extract(value, '$[2]') AS hi FROM json_each(?))"
)


def sums(
    conn: sqlite3.Connection,
    segments: Sequence[Segment],
    dims: Sequence[str] = (),
    flt: Scope = Scope(),
) -> list[SumRow]:
    """Sums per (segment label, dimension values, currency) over the segments."""
    tables = _tables_for(dims, flt)
    blocks: dict[str, list[tuple[str, int, int]]] = {grain: [] for grain, _ in tables}
    blocks["quarter"] = []
    raws: list[tuple[str, str, str]] = []
    for seg in segments:
        pieces = cover(_seconds(seg.start), _seconds(seg.end), [g for g, _ in tables])
        for grain, lo, hi in pieces:
            if grain == "raw":
                raws.append((seg.label, _ts(lo), _ts(hi)))
                # What `ledger prune` took from these edges, by the quarter hour it began in.
                blocks["quarter"].append((seg.label, lo, hi))
            else:
                blocks[grain].append((seg.label, lo, hi))
    out: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    group_by = ", ".join(str(i) for i in range(1, len(dims) + 3))
    for grain, table in [*tables, ("quarter", "rollup_quarter_detail")]:
        if not blocks.get(grain):
            continue
        dim_sql = [_dimension_sql(d, "r", raw=False) for d in dims]
        where, fargs = _filter_sql(flt, "r", raw=False)
        select = ", ".join(["s.label", *(s for s, _ in dim_sql), "r.currency"])
        sql = (
            f"SELECT {select}, {', '.join(f'sum(r.{c})' for c in ROLLUP_SUMS)} "
            f"FROM {_SEGMENTS} s CROSS JOIN {table} r "
            f"WHERE r.{grain} >= s.lo AND r.{grain} < s.hi{where} GROUP BY {group_by}"
        )
        args = [a for _, x in dim_sql for a in x]
        _collect(out, conn.execute(sql, (*args, json.dumps(blocks[grain]), *fargs)), len(dims))
    if raws:
        dim_sql = [_dimension_sql(d, "c", raw=True) for d in dims]
        where, fargs = _filter_sql(flt, "c", raw=True)
        select = ", ".join(["s.label", *(s for s, _ in dim_sql), "coalesce(c.currency, '')"])
        sql = (
            f"SELECT {select}, {', '.join(f'sum({SUM_EXPR[c]})' for c in ROLLUP_SUMS)} "
            f"FROM {_SEGMENTS} s CROSS JOIN calls c "
            f"WHERE c.ts >= s.lo AND c.ts < s.hi AND c.status != 'pending'{where} "
            f"GROUP BY {group_by}"
        )
        args = [a for _, x in dim_sql for a in x]
        _collect(out, conn.execute(sql, (*args, json.dumps(raws), *fargs)), len(dims))
    return _rows(out)


def _collect(
    out: dict[tuple[str, tuple[str, ...], str], list[int]], rows: Any, n_dims: int
) -> None:
    for row in rows:
        key = (str(row[0]), tuple(str(v) for v in row[1 : 1 + n_dims]), str(row[1 + n_dims]))
        values = [int(v or 0) for v in row[2 + n_dims :]]
        if key in out:
            out[key] = [x + y for x, y in zip(out[key], values, strict=True)]
        else:
            out[key] = values


def sums_by_local(
    conn: sqlite3.Connection,
    start: datetime,
    end: datetime,
    tz: tzinfo,
    unit: int,
    dims: Sequence[str] = (),
    flt: Scope = Scope(),
) -> list[SumRow] | None:
    """Sums per local hour or day (`unit` seconds) over [start, end).

    Each row's label is the local wall-clock start of its hour or day, as
    epoch seconds (as if local time were UTC).

    The fast path for `--by day` over long periods: one grouped scan of an
    hourly rollup per stretch of constant UTC offset, instead of one lookup
    per day. None when it does not apply (dimensions or filters that only the
    daily detail rollup has, or a zone whose offset is not whole hours): the
    caller then uses `sums` with segments.
    """
    if _needs_detail(flt) or not set(dims) <= {"provider", "model"}:
        return None
    a, b = _seconds(start), _seconds(end)
    lo, hi = _block_bounds("hour", a, b)
    if lo >= hi:
        return None
    stretches = _offset_stretches(lo, hi, tz)
    if any(offset % HOUR for _, _, offset in stretches):
        return None
    table = "rollup_hour_model" if dims or flt.provider or flt.model else "rollup_hour"
    dim_sql = ", ".join(f"r.{d}" for d in dims)
    where, fargs = _filter_sql(flt, "r", raw=False)
    out: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    for s_lo, s_hi, offset in stretches:
        rows = conn.execute(
            f"SELECT (r.hour + ?) / {unit} * {unit}, {dim_sql + ', ' if dims else ''}r.currency, "
            f"{', '.join(f'sum(r.{c})' for c in ROLLUP_SUMS)} FROM {table} r "
            f"WHERE r.hour >= ? AND r.hour < ?{where} "
            f"GROUP BY {', '.join(str(i) for i in range(1, len(dims) + 3))}",
            (offset, s_lo, s_hi, *fargs),
        )
        _collect(out, rows, len(dims))
    # The edges before the first and after the last whole hour, from the calls.
    edges = [
        Segment(
            str(_local_epoch(x, tz) // unit * unit),
            datetime.fromtimestamp(x, UTC),
            datetime.fromtimestamp(y, UTC),
        )
        for x, y in ((a, lo), (hi, b))
        if x < y
    ]
    for row in sums(conn, edges, dims, flt) if edges else []:
        _collect(out, [(row.label, *row.key, row.currency, *row.sums.values())], len(dims))
    return _rows(out)


def _local_epoch(epoch: int, tz: tzinfo) -> int:
    return epoch + _offset(epoch, tz)


def _rows(out: dict[tuple[str, tuple[str, ...], str], list[int]]) -> list[SumRow]:
    return [
        SumRow(label, key, currency, dict(zip(ROLLUP_SUMS, values, strict=True)))
        for (label, key, currency), values in out.items()
        if values[0]  # rows whose calls were all moved elsewhere
    ]


def hour_of_day_totals(
    conn: sqlite3.Connection, start: datetime, end: datetime, tz: tzinfo
) -> list[tuple[int, str, int, int]]:
    """(local hour of day, currency, calls, cost_pico spent) over the whole UTC hours in [start, end).

    The period is cut where the zone's UTC offset changes (DST), so SQL can
    shift each stretch by one offset. An hour is labelled with the local hour
    it starts in (in a zone at a half-hour offset, 9 is 09:30-10:30).
    """
    a, b = _block_bounds("hour", _seconds(start), _seconds(end))
    out: list[tuple[int, str, int, int]] = []
    for lo, hi, offset in _offset_stretches(a, b, tz):
        rows = conn.execute(
            "SELECT ((hour + ?) % 86400) / 3600, currency, sum(calls), sum(cost_pico) "
            "FROM rollup_hour WHERE hour >= ? AND hour < ? GROUP BY 1, 2",
            (offset, lo, hi),
        )
        out.extend((int(h), str(c), int(n), int(p)) for h, c, n, p in rows)
    return out


def _offset_stretches(a: int, b: int, tz: tzinfo) -> list[tuple[int, int, int]]:
    """[a, b) (whole hours) cut where `tz`'s UTC offset changes: (lo, hi, offset seconds)."""
    stretches = []
    start, current, at = a, _offset(a, tz), a
    while at < b:
        following = min(at + DAY, b)
        if _offset(following - HOUR, tz) != current:  # it changes within this day
            hour = at
            while _offset(hour, tz) == current:
                hour += HOUR
            stretches.append((start, hour, current))
            start, current, at = hour, _offset(hour, tz), hour
        else:
            at = following
    if start < b:
        stretches.append((start, b, current))
    return stretches


def _offset(epoch: int, tz: tzinfo) -> int:
    delta = datetime.fromtimestamp(epoch, UTC).astimezone(tz).utcoffset()
    return int(delta.total_seconds()) if delta else 0


def latency_histograms(
    conn: sqlite3.Connection, start: datetime, end: datetime, flt: Scope = Scope()
) -> dict[tuple[str, str], dict[int, int]]:
    """(provider, model) → {bucket: count} of ok calls' durations in [start, end)."""
    hist: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    model_where, model_args = _filter_sql(
        Scope(provider=flt.provider, model=flt.model), "r", raw=False
    )
    a, b = _seconds(start), _seconds(end)
    detail = _needs_detail(flt)
    # Histograms are per model only: with a project, prompt or tag filter, read the calls.
    pieces = [("raw", a, b)] if detail else cover(a, b, ["month", "day"])
    for grain, lo, hi in pieces:
        if grain == "raw":
            where, args = _filter_sql(flt, "c", raw=True)
            rows: Any = conn.execute(
                f"SELECT c.provider, c.model, {BUCKET_EXPR}, count(*) FROM calls c "
                "WHERE c.ts >= ? AND c.ts < ? AND c.status = 'ok' AND c.duration_ms IS NOT NULL"
                f"{where} GROUP BY 1, 2, 3",
                (_ts(lo), _ts(hi), *args),
            )
            if not detail:  # and what `ledger prune` took from this edge
                rows = [
                    *rows,
                    *conn.execute(
                        "SELECT r.provider, r.model, r.bucket, sum(r.n) FROM latency_quarter r "
                        f"WHERE r.quarter >= ? AND r.quarter < ?{model_where} GROUP BY 1, 2, 3",
                        (lo, hi, *model_args),
                    ),
                ]
        else:
            table = "latency_month" if grain == "month" else "latency_day"
            rows = conn.execute(
                f"SELECT r.provider, r.model, r.bucket, sum(r.n) FROM {table} r "
                f"WHERE r.{grain} >= ? AND r.{grain} < ?{model_where} GROUP BY 1, 2, 3",
                (lo, hi, *model_args),
            )
        for provider, model, bucket, n in rows:
            hist[(provider, model)][int(bucket)] += int(n)
    return {k: dict(v) for k, v in hist.items()}


def percentile(hist: dict[int, int], q: float) -> int | None:
    """The q-quantile (nearest rank) of a histogram, as its bucket's middle (within ±5%)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = max(1, -(-int(q * total * 1000) // 1000))  # ceil(q × n) without float drift
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return bucket_middle(bucket)
    return None


def top_calls(
    conn: sqlite3.Connection,
    start: datetime,
    end: datetime,
    flt: Scope,
    limit: int,
    period_calls: int,
) -> list[sqlite3.Row]:
    """The most expensive spending calls in [start, end), in their own currency's units.

    Many calls in the period: walk the cost index from the top (a few hundred
    rows). Few: read the period through the ts index and sort (`+ 0` keeps the
    planner off the cost index, which would walk the whole ledger's history).
    """
    where, args = _filter_sql(flt, "c", raw=True)
    # The cost index walk reads about limit × (all calls / period calls) rows.
    everything = conn.execute("SELECT sum(calls) FROM rollup_hour").fetchone()[0] or 0
    walk = period_calls > 0 and limit * everything / period_calls < period_calls
    index = "INDEXED BY calls_cost" if walk else ""
    order = "c.cost_pico" if walk else "c.cost_pico + 0"
    return conn.execute(
        f"SELECT c.id, c.ts, c.provider, c.model, c.project, c.status, c.input_tokens,"
        f" c.output_tokens, c.cost_pico, c.currency, c.duration_ms FROM calls c {index}"
        " WHERE c.cost_pico IS NOT NULL AND c.ts >= ? AND c.ts < ?"
        f" AND c.status NOT IN ('pending', 'cached'){where} ORDER BY {order} DESC LIMIT ?",
        (format_ts(start), format_ts(end), *args, limit),
    ).fetchall()


def pruned_until(conn: sqlite3.Connection) -> str | None:
    """The end of the newest quarter hour `ledger prune` deleted calls from (None if none).

    Every pruned call is counted in `rollup_quarter_detail`, whose key starts
    with the quarter: its maximum is one step down the primary key.
    """
    newest = conn.execute("SELECT max(quarter) FROM rollup_quarter_detail").fetchone()[0]
    return None if newest is None else _ts(int(newest) + 900)
