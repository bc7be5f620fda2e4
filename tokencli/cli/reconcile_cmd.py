"""`tokencli reconcile`: the ledger's cost per day and model against the provider's books."""

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt, MonthOpt

if TYPE_CHECKING:
    from ..insights.reconcile import Reconciliation
    from .context import AppContext

HELP = "Check the ledger's cost per day and model against each provider's own accounting."


def register(root: typer.Typer) -> None:
    root.command(
        "reconcile",
        help=HELP
        + """

OpenAI and Anthropic: their organization cost and usage APIs, with an admin key
(OPENAI_ADMIN_KEY, or 'tokencli keys set openai-admin'; the same for anthropic).
Prepaid providers (DeepSeek, Moonshot, SiliconFlow, OpenRouter, Novita): what the
balance fell between the snapshots 'refill status' keeps. Days (UTC, as providers
bill) and models whose difference is over --tolerance are flagged with the likely
cause. Exit 5 when a provider's accounting could not be read.""",
    )(reconcile)


def reconcile(
    ctx: typer.Context,
    month: MonthOpt = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            metavar="PERCENT",
            min=0,
            max=100,
            help="Differences up to this share pass.",
        ),
    ] = 5.0,
    json_out: JsonOpt = False,
) -> None:
    from ..errors import ConfigError, ExitCode
    from ..insights.reconcile import month_bounds
    from ..insights.reconcile import reconcile as run
    from ..ledger import Ledger
    from ..ledger.reconcile import providers_in
    from ..window import parse_month

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    now = app_ctx.now()
    first = parse_month(month) if month else now.date().replace(day=1)
    if first > now.date():
        raise UsageError(f"--month {month} has not begun.", "Give this month or an earlier one.")
    if provider is not None:
        settings.provider(provider)  # unknown provider → exit 6
    ledger = app_ctx.ledger(create=False) or Ledger.open_memory()
    try:
        start, end = month_bounds(first, now)
        names = [provider] if provider else providers_in(ledger, start, end)
        found = run(
            ledger,
            settings,
            first,
            now,
            provider=provider,
            tolerance=Decimal(repr(tolerance)) / 100,
            names=names,
        )
    finally:
        ledger.close()
    for source in found.sources:
        if source.status == "no key" and provider is not None:
            raise ConfigError(f"reconcile {source.provider}: {source.reason}.", None)
        if source.reason:
            state = "" if source.status == "ok" else f"{source.status}: "
            app_ctx.err(f"tokencli: {source.provider}: {state}{source.reason}.")
    if json_out:
        from ..results import ReconcileResult
        from .output import emit_result

        emit_result(app_ctx.streams, ReconcileResult(found))
    else:
        _print(app_ctx, found)
    if any(s.status == "unavailable" for s in found.sources):
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


def _print(app_ctx: "AppContext", found: "Reconciliation") -> None:
    from ..insights.balances import money_text
    from .output import Column, render_table

    lines = [line for s in found.sources for line in s.lines]
    if not lines:
        app_ctx.err(f"tokencli: nothing to reconcile for {found.month}.")
        return
    render_table(
        app_ctx.streams,
        [
            Column("PROVIDER"),
            Column("DAY"),
            Column("MODEL"),
            Column("LEDGER", "right"),
            Column("BILLED", "right"),
            Column("DIFFERENCE", "right"),
            Column("LIKELY CAUSE"),
        ],
        [
            [
                line.provider,
                line.day.isoformat() if line.day else found.month,
                line.model or "(all)",
                money_text(line.ledger, line.currency),
                money_text(line.billed, line.currency),
                money_text(line.difference, line.currency),
                line.cause or "",
            ]
            for line in lines
        ],
    )
    flagged = sum(1 for line in lines if line.flagged)
    app_ctx.err(
        f"tokencli: {flagged} of {len(lines)} lines differ by more than {found.tolerance * 100:g}%."
    )
