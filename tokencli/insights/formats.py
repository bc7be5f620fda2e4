"""The report as JSON, CSV and Markdown, and a terminal chart of daily spend.

Pure functions of a `Report`: no I/O, no clock, no typer or rich. The CLI
prints what they return; `html.py` renders the same report as one HTML file.

Money leaves as exact decimal strings (`decimal_str`) in JSON and CSV, never
floats, so a script summing the rows gets the ledger's figures to the pico.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..money import decimal_str
from ..safetext import visible
from .display import (
    ANOMALY_HEADER,
    BUDGET_HEADER,
    CALL_HEADER,
    HOUR_HEADER,
    MODEL_HEADER,
    anomaly_rows,
    breakdown_header,
    breakdown_rows,
    budget_rows,
    by_title,
    call_rows,
    day_label,
    filled_daily,
    headline,
    hour_rows,
    model_rows,
    money,
    period_text,
    warnings,
)
from .model import (
    Anomaly,
    BudgetLine,
    Group,
    HourStat,
    ModelStats,
    Period,
    Report,
    TopCall,
    Totals,
)

JSON_VERSION = 1
CSV_COUNTS = ("calls", "ok", "errors", "input_tokens", "cached_input_tokens", "output_tokens")
CSV_TAIL = ("total_tokens", "cost", "savings", "currency", "previous_cost", "change")


# --- JSON -------------------------------------------------------------------------------


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as a stable JSON document (version 1).

    Money and ratios are exact decimal strings (`"0.000450"` → `"0.00045"`), times
    ISO 8601 in UTC, group keys objects of `{dimension: value}`. Keys are only
    ever added within a version; a renamed or removed key bumps `version`.
    """
    return {
        "version": JSON_VERSION,
        "period": _period_dict(report.period),
        "currency": report.currency,
        "by": list(report.by),
        "totals": _totals_dict(report.totals),
        "previous_period": _period_dict(report.previous_period) if report.previous_period else None,
        "previous": _totals_dict(report.previous) if report.previous else None,
        "change": decimal_str(report.change),
        "groups": [_group_dict(report.by, group) for group in report.groups],
        "daily": [
            {"date": day.isoformat(), "cost": decimal_str(cost)} for day, cost in report.daily
        ],
        "top_calls": [_call_dict(call) for call in report.top_calls],
        "models": [_model_dict(stats) for stats in report.models],
        "busiest_hours": [_hour_dict(hour) for hour in report.busiest_hours],
        "unconverted": list(report.unconverted),
        "pruned_until": report.pruned_until,
        "budgets": [_budget_dict(line) for line in report.budgets],
        "anomalies": [_anomaly_dict(anomaly) for anomaly in report.anomalies],
        "generated_at": _iso_utc(report.generated_at) if report.generated_at else None,
    }


def _iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _period_dict(period: Period) -> dict[str, Any]:
    return {
        "start": _iso_utc(period.start),
        "end": _iso_utc(period.end),
        "label": period.label,
        "tz": period.tz,
    }


def _totals_dict(totals: Totals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "ok": totals.ok,
        "errors": totals.errors,
        "blocked": totals.blocked,
        "cached": totals.cached,
        "input_tokens": totals.input_tokens,
        "cached_input_tokens": totals.cached_input_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "output_tokens": totals.output_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "total_tokens": totals.total_tokens,
        "cost": decimal_str(totals.cost),
        "savings": decimal_str(totals.savings),
        "unpriced_calls": totals.unpriced_calls,
        "price_per_1k": decimal_str(totals.price_per_1k),
        "duration_ms": totals.duration_ms,
    }


def _group_dict(by: Sequence[str], group: Group) -> dict[str, Any]:
    return {
        "key": dict(zip(by, group.key, strict=True)),
        "totals": _totals_dict(group.totals),
        "previous_cost": decimal_str(group.previous_cost),
        "change": decimal_str(group.change),
    }


def _call_dict(call: TopCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "ts": call.ts,
        "provider": call.provider,
        "model": call.model,
        "project": call.project,
        "status": call.status,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cost": decimal_str(call.cost),
        "duration_ms": call.duration_ms,
    }


def _model_dict(stats: ModelStats) -> dict[str, Any]:
    return {
        "provider": stats.provider,
        "model": stats.model,
        "calls": stats.calls,
        "input_tokens": stats.input_tokens,
        "output_tokens": stats.output_tokens,
        "cost": decimal_str(stats.cost),
        "price_per_1k": decimal_str(stats.price_per_1k),
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
    }


def _budget_dict(line: BudgetLine) -> dict[str, Any]:
    return {
        "name": line.name,
        "scope": line.scope,
        "period": line.period,
        "window": line.window,
        "unit": line.unit,
        "limit": decimal_str(line.limit),
        "spent": decimal_str(line.spent),
        "percent": decimal_str(line.percent),
        "crossed": list(line.crossed),
        "block": line.block,
    }


def _anomaly_dict(anomaly: Anomaly) -> dict[str, Any]:
    return {
        "date": anomaly.day.isoformat(),
        "cost": decimal_str(anomaly.spend),
        "median": decimal_str(anomaly.median),
        "factor": decimal_str(anomaly.factor.quantize(Decimal("0.01"))),
        "threshold": decimal_str(anomaly.threshold),
    }


def _hour_dict(hour: HourStat) -> dict[str, Any]:
    return {"hour": hour.hour, "calls": hour.calls, "cost": decimal_str(hour.cost)}


# --- CSV --------------------------------------------------------------------------------


def csv_header(report: Report) -> list[str]:
    """One column per `--by` dimension (named as given, e.g. `tag:team`), then the figures."""
    return [*report.by, *CSV_COUNTS, *CSV_TAIL]


def to_csv(report: Report) -> str:
    """The breakdown, one row per group; with no `--by`, one row of totals.

    Newline-terminated rows (pipes and `cut` read them plainly; spreadsheets too),
    written by the one CSV writer (`csvout`: text that looks like a formula is
    neutralised, figures stay numbers). Amounts are exact decimal strings; an
    unknown previous cost or change is empty.
    """
    from ..csvout import CsvWriter

    writer = CsvWriter()
    lines = [writer.line(csv_header(report))]
    if report.by:
        for group in report.groups:
            lines.append(
                writer.line(
                    [
                        *group.key,
                        *_csv_figures(report, group.totals, group.previous_cost, group.change),
                    ]
                )
            )
    else:
        previous = report.previous.cost if report.previous else None
        lines.append(writer.line(_csv_figures(report, report.totals, previous, report.change)))
    return "".join(lines)


def _csv_figures(
    report: Report, totals: Totals, previous: Decimal | None, change: Decimal | None
) -> list[str | None]:
    from ..csvout import Number

    def amount(value: Decimal | None, default: str | None) -> str | None:
        text = decimal_str(value) or default
        return None if text is None else Number(text)

    return [
        *(Number(str(getattr(totals, name))) for name in CSV_COUNTS),
        Number(str(totals.total_tokens)),
        amount(totals.cost, "0"),
        amount(totals.savings, "0"),
        report.currency,
        amount(previous, None),
        amount(change, None),
    ]


# --- Markdown ---------------------------------------------------------------------------

# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that
# would break a table (|), start markup (* _ ` ~ [ ]) or raw HTML (< >).
_MD_SPECIAL = set("\\|*_`~[]<>")


def md_escape(text: str) -> str:
    """A user-provided string as literal Markdown table-cell text, on one line."""
    flat = visible(" ".join(text.splitlines()))
    return "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in flat)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int) -> list[str]:
    """A GitHub-flavoured table; every cell escaped; after `text_columns`, right-aligned."""
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |"]
    lines.append(
        "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header))) + "|"
    )
    lines.extend("| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows)
    return lines


def to_markdown(report: Report) -> str:
    """Headline figures, the change, then the breakdown, budgets, anomalies, models, top
    calls and hours."""
    period = report.period
    lines = [f"# tokencli report: {md_escape(period.label)}", ""]
    lines.append(f"{md_escape(period_text(period))}, amounts in {report.currency}.")
    lines.append("")
    lines.extend(f"- **{name}:** {value}" for name, value in headline(report))
    lines.extend(f"- {md_escape(note)}" for note in warnings(report))
    if report.by:
        lines += ["", f"## By {md_escape(by_title(report))}", ""]
        rows = breakdown_rows(report)
        lines += md_table(breakdown_header(report), rows, len(report.by)) if rows else ["No calls."]
    sections = (
        ("Budgets", BUDGET_HEADER, budget_rows(report), 4),
        ("Anomalies", ANOMALY_HEADER, anomaly_rows(report), 1),
        ("Models", MODEL_HEADER, model_rows(report), 1),
        ("Most expensive calls", CALL_HEADER, call_rows(report), 5),
        ("Busiest hours", HOUR_HEADER, hour_rows(report), 1),
    )
    for title, header_row, rows, text_columns in sections:
        if rows:
            lines += ["", f"## {title}", "", *md_table(header_row, rows, text_columns)]
    return "\n".join(lines) + "\n"


# --- terminal chart ---------------------------------------------------------------------

BLOCKS = " ▁▂▃▄▅▆▇█"  # index = eighths of a cell
MIN_CHART_WIDTH = 20


def daily_chart(report: Report, width: int = 72, height: int = 8) -> list[str]:
    """Daily spend as `height + 2` text lines, each exactly `width` characters.

    A y-axis labelled with money, one bar per day (up to four cells per day when
    they fit, several days summed per bar when they do not: one more line then
    says so), the tallest bar on the day with the most spend, the axis at zero and
    day labels under it. Pure and deterministic; the CLI prints the lines as they are.
    """
    if width < MIN_CHART_WIDTH or height < 1:
        raise ValueError(f"a chart needs width ≥ {MIN_CHART_WIDTH} and height ≥ 1")
    days = filled_daily(report)
    if not days:
        return ["No spend to chart in this period.".ljust(width)[:width]]
    pad = 0
    while True:
        # The labels' width sets the room for bars, and summing days into bars
        # changes the top label; settle both (it takes two rounds at most).
        columns = max(1, width - pad - 2)  # "label ┤" then the plot
        per_bar = -(-len(days) // columns)  # days summed into one bar, ceil division
        bars = [
            (days[i][0], sum((cost for _, cost in days[i : i + per_bar]), Decimal(0)))
            for i in range(0, len(days), per_bar)
        ]
        top = max(cost for _, cost in bars)
        labels = _y_labels(report, top, height)
        needed = max(len(label) for label in labels)  # the zero label included
        if needed <= pad:
            break
        pad = needed
    slot = max(1, min(4, columns // len(bars)))  # cells per bar, gap included
    bar_width = slot - 1 if slot > 1 else 1
    eighths = [_eighths(cost, top, height) for _, cost in bars]
    # Bars holding a spike day (`report.anomalies`): "!" beside the bar's top, in its gap
    # cell (on the axis when bars are one cell wide).
    spikes = {a.day for a in report.anomalies}
    marked = {
        i
        for i in range(len(bars))
        if any(day in spikes for day, _ in days[i * per_bar : (i + 1) * per_bar])
    }

    lines = []
    for row in range(height - 1, -1, -1):
        cells = "".join(_cell(e, row, bar_width, slot, i in marked) for i, e in enumerate(eighths))
        label = labels[height - 1 - row]
        lines.append(f"{label.rjust(pad)} {'┤' if label else '│'}{cells}")
    axis = "".join("!" if slot == 1 and i in marked else "─" * slot for i in range(len(bars)))
    lines.append(f"{money(report, Decimal(0)).rjust(pad)} └{axis}")
    lines.append(" " * (pad + 2) + _x_labels([day for day, _ in bars], slot, columns))
    if per_bar > 1:
        note = f"each bar: {per_bar} days"
        lines.append(note.rjust(pad + 2 + len(note)) if pad + 2 + len(note) <= width else note)
    if marked:
        note = f"! spend above {report.anomalies[0].threshold}× the trailing 14-day median"
        lines.append(note.rjust(pad + 2 + len(note)) if pad + 2 + len(note) <= width else note)
    return [line[:width].ljust(width) for line in lines]


def _cell(eighths: int, row: int, bar_width: int, slot: int, marked: bool) -> str:
    """One bar's cells in one chart row, and its gap: "!" there at a marked bar's top."""
    block = BLOCKS[max(0, min(8, eighths - row * 8))] * bar_width
    if slot == 1:
        return block
    return block + ("!" if marked and row == max(0, (eighths - 1) // 8) else " ")


def _eighths(cost: Decimal, top: Decimal, height: int) -> int:
    if not top or cost <= 0:
        return 0
    # Any spend shows at least a sliver: a $0.001 day is not a day without calls.
    return max(1, int((cost / top * height * 8).to_integral_value(rounding=ROUND_HALF_UP)))


def _y_labels(report: Report, top: Decimal, height: int) -> list[str]:
    """Labels from the top row down: the maximum, and the middle when tall; each row is
    labelled with the value at its top edge (zero sits on the axis line below)."""
    labels = [""] * height
    labels[0] = money(report, top)
    if height >= 5:
        middle = height // 2
        labels[middle] = money(report, top * (height - middle) / height)
    return [*labels, money(report, Decimal(0))]


_STEPS = (1, 2, 3, 5, 7, 10, 14, 15, 20, 30, 50, 60, 90, 100, 120, 180, 365)


def _x_labels(starts: Sequence[date], slot: int, columns: int) -> str:
    """`Nov 1`-style labels under every n-th bar, never overlapping, within `columns`."""
    need = -(-7 // slot)  # bars per label: "Nov 30" plus a space
    step = next((s for s in _STEPS if s >= need), need)
    text = ""
    for i in range(0, len(starts), step):
        at = i * slot
        label = day_label(starts[i])
        if at < len(text) or at + len(label) > columns:
            continue
        text = text.ljust(at) + label
    return text
