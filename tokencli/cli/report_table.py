"""The report on a terminal (rich tables) or in a pipe (plain aligned columns)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .output import Column, render_table

if TYPE_CHECKING:
    from ..insights.model import Report
    from .context import Streams


def print_report(streams: "Streams", report: "Report", *, chart: bool = False) -> None:
    from ..insights import display
    from ..safetext import visible

    out = streams.stdout
    out.write(
        visible(f"tokencli report: {report.period.label} ({display.period_text(report.period)})")
        + "\n\n"
    )
    width = max(len(name) for name, _ in display.headline(report))
    for name, value in display.headline(report):
        out.write(f"  {name.ljust(width)}  {visible(value)}\n")
    for note in display.warnings(report):
        out.write(f"  ! {visible(note)}\n")
    if chart:
        from ..insights.formats import daily_chart

        out.write("\nDaily spend\n")
        for line in daily_chart(report, width=min(100, max(40, _width(streams) - 2))):
            out.write(f"{line.rstrip()}\n")
    sections: list[tuple[str, Sequence[str], list[list[str]], int]] = []
    if report.by:
        sections.append(
            (
                f"By {display.by_title(report)}",
                display.breakdown_header(report),
                display.breakdown_rows(report),
                len(report.by),
            )
        )
    sections += [
        ("Budgets", display.BUDGET_HEADER, display.budget_rows(report), 4),
        ("Anomalies", display.ANOMALY_HEADER, display.anomaly_rows(report), 1),
        ("Models", display.MODEL_HEADER, display.model_rows(report), 1),
        ("Most expensive calls", display.CALL_HEADER, display.call_rows(report), 5),
        ("Busiest hours", display.HOUR_HEADER, display.hour_rows(report), 1),
    ]
    for title, header, rows, text_columns in sections:
        if not rows:
            continue
        out.write(f"\n{visible(title)}\n")
        out.flush()
        columns = [
            Column(h.upper(), "left" if i < text_columns else "right") for i, h in enumerate(header)
        ]
        render_table(streams, columns, rows)
    out.flush()


def _width(streams: "Streams") -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns if streams.stdout_isatty else 80
