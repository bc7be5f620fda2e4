"""`tokencli report`: where the money went, for a period, grouped as asked."""

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .context import app_context
from .options import (
    LastOpt,
    ModelFilterOpt,
    MonthOpt,
    ProjectFilterOpt,
    PromptFilterOpt,
    ProviderFilterOpt,
    SinceOpt,
    TagFilterOpt,
    TzOpt,
    UntilOpt,
)

if TYPE_CHECKING:
    from ..insights.model import Report
    from .context import AppContext

REPORT_HELP = """Totals of calls, tokens and spend for a period, grouped as asked.

The period is this month unless --month, --last or --since/--until names another;
days and months are local (--tz). Spend is converted to [currency] report with the
configured rates; cached answers count as savings, not spend. --format html writes
one self-contained file with charts, good to mail at month end.
"""


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


def register(app: typer.Typer) -> None:
    app.command("report", help=REPORT_HELP)(report)


def report(
    ctx: typer.Context,
    month: MonthOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    tz: TzOpt = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            "-b",
            help="Group by provider, model, project, prompt, tag:KEY, hour, day, week or month"
            " (repeatable, or comma-separated).",
        ),
    ] = None,
    provider: ProviderFilterOpt = None,
    model: ModelFilterOpt = None,
    project: ProjectFilterOpt = None,
    prompt: PromptFilterOpt = None,
    tag: TagFilterOpt = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", "-f", help="Output format (default: table).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    chart: Annotated[bool, typer.Option("--chart", help="Add a chart of daily spend.")] = False,
    top: Annotated[
        int, typer.Option("--top", min=0, help="How many of the most expensive calls to list.")
    ] = 5,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file instead of stdout.", dir_okay=False
        ),
    ] = None,
) -> None:
    from ..errors import UsageError
    from ..insights.report import build_report, parse_by
    from ..window import resolve_period, zone
    from .options import scope_from

    app_ctx = app_context(ctx)
    if json_out and fmt not in (None, Format.json):
        raise UsageError(f"--json and --format {fmt.value if fmt else ''} disagree; give one.")
    chosen = Format.json if json_out else (fmt or Format.table)
    zone_ = zone(tz)
    now = app_ctx.now()
    period = resolve_period(now=now, tz=zone_, month=month, since=since, until=until, last=last)
    dims = parse_by(by or [])
    flt = scope_from(provider, model, project, tag, prompt=prompt)
    settings = app_ctx.settings
    from ..ledger import Ledger

    # No ledger yet: an empty report, from an empty ledger in memory.
    ledger = app_ctx.ledger(create=False) or Ledger.open_memory()
    result = build_report(
        ledger,
        period,
        zone_,
        by=dims,
        flt=flt,
        currencies=settings.currencies,
        top=top,
        now=now,
        budgets=sorted(settings.budgets.values(), key=lambda b: b.name),
        budget_tz=zone(settings.defaults.timezone),
        spike_factor=settings.alerts.rules.spike_factor,
    )
    if result.unconverted:
        app_ctx.err(
            f"tokencli: no rate to {result.currency} for {', '.join(result.unconverted)}: "
            "those amounts are left out. Add them under [currency] rates in the config."
        )
    text = _render(result, chosen, chart, app_ctx, to_file=output is not None)
    if text is None:
        return
    if output is None:
        app_ctx.streams.stdout.write(text)
        app_ctx.streams.stdout.flush()
        return
    from ..outpath import write_output

    write_output(output, text)
    app_ctx.err(f"tokencli: wrote {output}")


def _render(
    result: "Report", chosen: Format, chart: bool, app_ctx: "AppContext", *, to_file: bool
) -> str | None:
    from ..insights import formats

    if chosen is Format.json:
        from ..results import ReportResult
        from .output import json_text

        return json_text(ReportResult(result))
    if chosen is Format.csv:
        return formats.to_csv(result)
    if chosen is Format.markdown:
        return formats.to_markdown(result)
    if chosen is Format.html:
        from ..insights.html import to_html

        return to_html(result)
    from .report_table import print_report

    if to_file:  # the plain table, as a pipe would get it
        import dataclasses
        import io

        buffer = io.StringIO()
        print_report(
            dataclasses.replace(app_ctx.streams, stdout=buffer, stdout_isatty=False),
            result,
            chart=chart,
        )
        return buffer.getvalue()
    print_report(app_ctx.streams, result, chart=chart)
    return None
