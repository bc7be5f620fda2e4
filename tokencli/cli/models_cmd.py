"""`tokencli models`: known models, their prices per 1M tokens, and where each price comes from."""

from typing import Annotated

import typer

from .context import app_context
from .options import JsonOpt, ProviderFilterOpt
from .output import Column, emit_result, render_table

MODELS_HELP = """Known models with prices per million tokens and the source of each price.

Prices come from the bundled genai-prices table (USD) and, for providers that bill
in yuan (currency = "CNY"), the bundled yuan price list with each price's official
page and the date it was read; [prices] in the config overrides both. SEARCH filters
by a part of the model name. Calls are priced at their own timestamp, so dated
changes, off-peak hours and long-context tiers apply to them.
"""


def register(app: typer.Typer) -> None:
    app.command("models", help=MODELS_HELP)(models)


def models(
    ctx: typer.Context,
    search: Annotated[
        str | None, typer.Argument(help="Only models whose name contains this.", show_default=False)
    ] = None,
    provider: ProviderFilterOpt = None,
    all_tables: Annotated[
        bool,
        typer.Option("--all", help="Also list price-table providers tokencli has no preset for."),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Rebuild the cached price index now.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    from ..errors import UsageError
    from ..money import decimal_str
    from ..pricing.index import list_models

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    today = app_ctx.now().date()
    rows = list_models(
        settings,
        include_all=all_tables or bool(provider and provider not in settings.providers),
        refresh=refresh,
        today=today,
    )
    if provider:
        rows = [r for r in rows if r.provider == provider]
        if not rows and provider not in settings.providers:
            raise UsageError(
                f"Unknown provider {provider!r}.",
                f"Known providers: {', '.join(sorted(settings.providers))}.",
            )
    if search:
        needle = search.lower()
        rows = [r for r in rows if needle in r.model.lower()]

    stale = min((r.read for r in rows if r.read and "stale" in r.notes), default=None)
    if stale is not None:
        from ..pricing.cny import stale_message

        app_ctx.err(f"tokencli: {stale_message(stale, (today - stale).days)}")
    if json_out:
        from ..results import ModelList

        emit_result(app_ctx.streams, ModelList(rows))
        return
    if not rows:
        app_ctx.err("tokencli: no models match.")
        return

    def price(value: object, currency: str) -> str:
        from decimal import Decimal

        if value is None:
            return "-"
        assert isinstance(value, Decimal)
        symbol = {"USD": "$", "CNY": "¥", "EUR": "€"}.get(currency, "")
        text = decimal_str(value) or "0"
        return f"{symbol}{text}" if symbol else f"{text} {currency}"

    columns = [
        Column("PROVIDER:MODEL"),
        Column("INPUT/1M", "right"),
        Column("OUTPUT/1M", "right"),
        Column("CACHED/1M", "right"),
        Column("CONTEXT", "right"),
        Column("SOURCE"),
        Column("NOTES"),
    ]
    table = [
        [
            f"{r.provider}:{r.model}",
            price(r.input, r.currency),
            price(r.output, r.currency),
            price(r.cached_input, r.currency),
            f"{r.context_window:,}" if r.context_window else "-",
            r.source,
            r.notes,
        ]
        for r in rows
    ]
    render_table(app_ctx.streams, columns, table)
