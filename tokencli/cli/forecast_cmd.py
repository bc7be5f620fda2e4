"""`tokencli forecast`: where this month's spend is heading, and when each budget runs out."""

from typing import TYPE_CHECKING, Annotated

import typer

from .context import app_context
from .options import (
    JsonOpt,
    ModelFilterOpt,
    ProjectFilterOpt,
    ProviderFilterOpt,
    TagFilterOpt,
    TzOpt,
)

if TYPE_CHECKING:
    from decimal import Decimal

    from ..insights.outlook import BudgetOutlook, Forecast
    from .context import Streams

FORECAST_HELP = """Spend projected to the end of this month, and the day each budget runs out.

The projection follows the weekday pattern and recent trend of the last eight
weeks, and shrugs off one-off spikes; the 80% interval says how sure it is.
The linear burn (spend so far / days so far) is shown beside it. Budgets come
from [budgets.NAME] in the config; --budget adds one for this month.
"""


def register(app: typer.Typer) -> None:
    app.command("forecast", help=FORECAST_HELP)(forecast)


def forecast(
    ctx: typer.Context,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            "-b",
            help="Project each provider, model, project, prompt or tag:KEY apart"
            " (repeatable, or comma-separated).",
        ),
    ] = None,
    provider: ProviderFilterOpt = None,
    model: ModelFilterOpt = None,
    project: ProjectFilterOpt = None,
    tag: TagFilterOpt = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            metavar="AMOUNT",
            help="A limit for this month's spend, in [currency] report: when would it run out?",
        ),
    ] = None,
    tz: TzOpt = None,
    json_out: JsonOpt = False,
) -> None:
    from ..errors import UsageError
    from ..insights.model import TIME_DIMENSIONS
    from ..insights.outlook import build_forecast
    from ..insights.report import parse_by
    from ..ledger import Ledger
    from ..money import parse_amount
    from ..settings.loader import Budget
    from ..window import zone
    from .options import scope_from

    app_ctx = app_context(ctx)
    dims = parse_by(by or [])
    if any(d in TIME_DIMENSIONS for d in dims):
        raise UsageError(
            "forecast projects the month as a whole; --by takes no hour, day, week or month.",
            "Use 'tokencli report --by day' for spend per day so far.",
        )
    scope = scope_from(provider, model, project, tag)
    settings = app_ctx.settings
    budgets = list(settings.budgets.values())
    if budget is not None:
        try:
            amount = parse_amount(budget)
        except ValueError:
            amount = None
        from ..settings.schema import MAX_NUMBER

        if amount is not None and amount > MAX_NUMBER:
            raise UsageError(f"--budget {budget!r} is more than {MAX_NUMBER:,}.")
        if amount is None or amount <= 0:
            raise UsageError(
                f"--budget {budget!r} is not an amount above 0.",
                f"Give it in {settings.currencies.report}, e.g. --budget 50.",
            )
        budgets.append(
            Budget(
                "--budget",
                amount,
                settings.currencies.report,
                "month",
                scope,
            )
        )
    ledger = app_ctx.ledger(create=False) or Ledger.open_memory()
    result = build_forecast(
        ledger,
        now=app_ctx.now(),
        tz=zone(tz),
        currencies=settings.currencies,
        by=dims,
        flt=scope,
        budgets=budgets,
        # Budget periods are days, weeks and months in [defaults] timezone, as in `budget status`.
        budget_tz=zone(settings.defaults.timezone) if settings.defaults.timezone else None,
    )
    if result.unconverted:
        app_ctx.err(
            f"tokencli: no rate to {result.currency} for {', '.join(result.unconverted)}: "
            "those amounts are left out. Add them under [currency] rates in the config."
        )
    if json_out:
        from ..results import ForecastResult
        from .output import emit_result

        emit_result(app_ctx.streams, ForecastResult(result))
    else:
        print_forecast(app_ctx.streams, result)


_METHODS = {
    "weekday+trend": "weekday pattern and trend of the last 8 weeks",
    "trend": "level and trend (under two weeks of history: no weekday pattern yet)",
    "today only": "today's rate (no earlier day to go on)",
    "no history": "no spend recorded",
}


def print_forecast(streams: "Streams", result: "Forecast") -> None:
    from ..money import format_money
    from .output import Column, render_table

    def money(amount: "Decimal", currency: str = result.currency) -> str:
        return format_money(amount, currency)

    out = streams.stdout
    total = result.total
    out.write(
        f"tokencli forecast: {result.month} ({result.tz}), "
        f"day {result.day} of {result.days_in_month}\n\n"
    )
    lines = [
        ("spent so far", money(total.spent)),
        ("projected", f"{money(total.expected)}  (80%: {money(total.low)} – {money(total.high)})"),
        ("linear burn", money(total.linear)),
        ("method", _METHODS.get(total.method, total.method)),
    ]
    width = max(len(name) for name, _ in lines)
    for name, value in lines:
        out.write(f"  {name.ljust(width)}  {value}\n")
    if result.groups:
        out.write(f"\nBy {' × '.join(result.by)}\n")
        out.flush()
        columns = [Column(d.upper()) for d in result.by] + [
            Column(h, "right") for h in ("SPENT", "PROJECTED", "80% INTERVAL", "LINEAR BURN")
        ]
        rows = [
            [
                *(k or "—" for k in g.key),
                money(g.spent),
                money(g.expected),
                f"{money(g.low)} – {money(g.high)}",
                money(g.linear),
            ]
            for g in result.groups
        ]
        render_table(streams, columns, rows)
    if result.budgets:
        out.write("\nBudgets\n")
        out.flush()
        columns = [
            Column("BUDGET"),
            Column("SCOPE"),
            Column("LIMIT", "right"),
            Column("SPENT", "right"),
            Column("PROJECTED", "right"),
            Column("OUTLOOK"),
        ]
        rows = [
            [
                b.name,
                ", ".join(f"{k}={v}" for k, v in b.scope.items()) or "all",
                f"{money(b.amount, b.currency)}/{b.period}",
                money(b.spent, b.currency),
                money(b.expected, b.currency),
                budget_outlook_text(b),
            ]
            for b in result.budgets
        ]
        render_table(streams, columns, rows)
    out.flush()


def budget_outlook_text(b: "BudgetOutlook") -> str:
    if b.exceeded_on:
        return f"exceeded on {b.exceeded_on.isoformat()}"
    if b.runs_out:
        return f"runs out {b.runs_out.isoformat()} ({b.chance:.0%} chance this {b.period})"
    return f"holds ({b.chance:.0%} chance of running out this {b.period})"
