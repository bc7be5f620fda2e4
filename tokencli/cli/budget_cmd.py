"""`tokencli budget ...`: set, remove and list budgets; where each stands; a check for cron."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt

if TYPE_CHECKING:
    from collections.abc import Sequence
    from decimal import Decimal

    from ..alerts import Alert
    from ..insights.budgets import BudgetState
    from ..settings.model import Budget
    from .context import AppContext

HELP = "Limits on spend or tokens per day, week or month: set them, see them, check them."

app = typer.Typer(
    name="budget",
    help=HELP
    + """

Budgets live in config.toml as [budgets.NAME]; 'budget set' and 'budget rm' edit that
table alone and keep every other byte of the file. Periods are calendar days, weeks
(Monday first) and months in [defaults] timezone. 'budget check' exits 3 when a
threshold is crossed, for cron.""",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="budget")


def send_alerts(
    app_ctx: "AppContext",
    paced: "Sequence[BudgetState]" = (),
    anomalies: "Sequence[Alert]" = (),
) -> None:
    """Send reached thresholds, pace warnings and anomalies to the alert channels.

    Each alert's key (budget, threshold, period) fires once across every process
    and every run of this check; what a channel failed to take is retried later.
    """
    from ..alerts import budget_pace, raise_alerts
    from ..alerts.rules import budget_alerts
    from ..money import decimal_str

    ledger = app_ctx.ledger()
    assert ledger is not None  # create=True always opens
    try:
        alerts = budget_alerts(ledger, app_ctx.settings, app_ctx.now())
        alerts += [
            budget_pace(
                s.name,
                s.window.label,
                s.crosses_on.isoformat() if s.crosses_on else "",
                limit=decimal_str(s.limit) or "0",
                unit=s.unit,
            )
            for s in paced
        ]
        alerts += list(anomalies)
        if alerts:
            raise_alerts(ledger, app_ctx.settings, alerts)
    finally:
        ledger.close()


def amount_text(amount: "Decimal", unit: str) -> str:
    if unit == "tokens":
        return f"{int(amount):,} tokens"
    from ..money import format_money

    return format_money(amount, unit)


# ------------------------------------------------------------------ set / rm / list


@app.command("set")
def set_budget(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The budget's name, e.g. monthly.")],
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit",
            metavar="AMOUNT",
            help="The limit: money in --currency, or tokens with --tokens"
            " (kept if the budget exists).",
        ),
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(
            "--currency", metavar="CODE", help="Currency of the limit (default: [currency] report)."
        ),
    ] = None,
    tokens: Annotated[
        bool, typer.Option("--tokens", help="The limit is in tokens (input + output).")
    ] = False,
    period: Annotated[
        str | None,
        typer.Option("--period", metavar="PERIOD", help="day, week or month (default: month)."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only calls to this provider.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Only calls to this model (MODEL or PROVIDER:MODEL)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only calls of this project.")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="KEY=VALUE", help="Only calls with this tag (repeatable)."),
    ] = None,
    warn: Annotated[
        str | None,
        typer.Option(
            "--warn", metavar="PERCENTS", help="Thresholds that alert, e.g. 50,80,100 (default)."
        ),
    ] = None,
    block: Annotated[
        bool | None,
        typer.Option(
            "--block/--warn-only",
            help="Refuse calls that could cross the limit, or only warn (default).",
            show_default=False,
        ),
    ] = None,
    allow_unpriced: Annotated[
        bool | None,
        typer.Option(
            "--allow-unpriced/--refuse-unpriced",
            help="Let calls of models without a known price through a money budget.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create or change [budgets.NAME] in config.toml; other keys of the budget are kept."""
    from ..settings.editor import set_table

    if not name or name != name.strip() or not name.isprintable() or len(name) > 64:
        raise UsageError(
            f"Budget name {name!r} is not a name.",
            "Use up to 64 printable characters without leading or trailing spaces, e.g. monthly.",
        )
    app_ctx = app_context(ctx)
    settings = app_ctx.settings  # a config that does not load is never rewritten (exit 6)
    path = settings.paths.config
    table = _current_table(app_ctx, name)
    if limit is None and not table:
        raise UsageError(
            f"Budget {name!r} is new: give it a limit.",
            f"e.g. tokencli budget set {name} --limit 50.",
        )
    if tokens and currency:
        raise UsageError("--tokens and --currency exclude each other.", "Give one of them.")
    if limit is not None:
        value = _parse_limit(limit, tokens)
        # Money keeps its currency unless told; a limit in tokens has none.
        for key in ("amount", "currency") if tokens else ("tokens",):
            table.pop(key, None)
        table["tokens" if tokens else "amount"] = value
    elif tokens and "tokens" not in table:
        raise UsageError(f"Budget {name!r} is in money: give --limit with --tokens.", None)
    if currency is not None:
        if "tokens" in table:
            raise UsageError(
                f"Budget {name!r} counts tokens: --currency needs a --limit in money.", None
            )
        code = currency.strip().upper()
        report = settings.currencies.report
        if code != report and code not in settings.currencies.rates:
            raise UsageError(
                f"--currency {currency!r} has no rate into {report}.",
                f"Add it under [currency] rates first, e.g. rates = {{ {code} = 0.14 }}.",
            )
        table["currency"] = code
    if period is not None:
        if period not in ("day", "week", "month"):
            raise UsageError(f"--period {period!r} is not day, week or month.", None)
        table["period"] = period
    if model is not None:
        # PROVIDER:MODEL is kept as the two keys calls are recorded with.
        prefix, sep, rest = model.partition(":")
        if sep and rest and prefix in settings.providers:
            if provider is not None and provider != prefix:
                raise UsageError(
                    f"--model {model!r} names provider {prefix!r}, --provider {provider!r}.",
                    "Give one provider.",
                )
            provider, model = prefix, rest
    if provider is not None:
        if provider not in settings.providers:
            raise UsageError(
                f"--provider {provider!r} is not a known provider.",
                f"Known providers: {', '.join(sorted(settings.providers))}.",
            )
        table["provider"] = provider
    if model is not None:
        table["model"] = model
    if project is not None:
        table["project"] = project
    if tag:
        from .options import parse_tags

        table["tag"] = [f"{k}={v}" for k, v in parse_tags(tag).items()]
    if warn is not None:
        table["warn"] = _parse_warn(warn)
    if block is not None:
        table["block"] = block
    if allow_unpriced is not None:
        table["allow_unpriced"] = allow_unpriced
    _validate(app_ctx, ("budgets", name), table)
    set_table(path, ("budgets", name), table)
    app_ctx.err(f"tokencli: budget {name!r} saved in {path}.")


def _current_table(app_ctx: "AppContext", name: str) -> dict[str, Any]:
    """The budget's table as the file has it (empty for a new budget)."""
    from ..settings.loader import read_config_file

    doc, _ = read_config_file(app_ctx.settings.paths.config)
    table = doc.get("budgets", {}).get(name, {})
    return dict(table) if isinstance(table, dict) else {}


def _parse_limit(text: str, tokens: bool) -> Any:
    from decimal import Decimal

    from ..money import parse_amount

    try:
        value = parse_amount(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise UsageError(
            f"--limit {text!r} is not a number above 0.",
            "e.g. --limit 50, or --limit 2000000 --tokens.",
        )
    if tokens:
        if value != value.to_integral_value():
            raise UsageError(f"--limit {text!r} is not a whole number of tokens.", None)
        return int(value)
    if value == value.to_integral_value():
        return int(value)
    # TOML has no decimals: a float whose repr is the number typed (0.1 → 0.1).
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise UsageError(f"--limit {text!r} has more digits than a config number keeps.", None)
    return as_float


def _parse_warn(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip().removesuffix("%")
        if not (part.isascii() and part.isdigit()) or not 0 < int(part) <= 1000:
            raise UsageError(
                f"--warn {text!r} is not a list of percentages between 1 and 1000.",
                "e.g. --warn 50,80,100.",
            )
        out.append(int(part))
    return sorted(set(out))


def _validate(app_ctx: "AppContext", key_path: tuple[str, ...], table: dict[str, Any]) -> None:
    """The config as it would be after the edit must load, or nothing is written."""
    import tomllib

    from ..errors import ConfigError
    from ..settings.editor import splice_table
    from ..settings.loader import read_config_file, settings_from_doc

    settings = app_ctx.settings
    path = settings.paths.config
    _, text = read_config_file(path)
    edit = splice_table(text, key_path, table, path)
    try:
        settings_from_doc(
            tomllib.loads(edit.text), edit.text, settings.paths, settings.env, exists=True
        )
    except ConfigError as exc:
        raise ConfigError(f"Not saved ({path} is unchanged): {exc.message}", exc.hint) from None


@app.command("rm")
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The budget to remove.")],
) -> None:
    """Remove [budgets.NAME] from config.toml, keeping every other byte."""
    from ..settings.editor import remove_table

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    _known(settings.budgets, name)
    remove_table(settings.paths.config, ("budgets", name))
    app_ctx.err(f"tokencli: budget {name!r} removed from {settings.paths.config}.")


def _known(budgets: "dict[str, Budget]", name: str) -> None:
    if name not in budgets:
        known = ", ".join(sorted(budgets)) or "none yet"
        raise UsageError(
            f"No budget named {name!r}.",
            f"Known budgets: {known}. 'tokencli budget set NAME --limit N' makes one.",
        )


@app.command("list")
def list_budgets(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The budgets in config.toml: limit, period, scope, thresholds, and whether they block."""
    from .output import Column, emit_result, render_table

    app_ctx = app_context(ctx)
    budgets = sorted(app_ctx.settings.budgets.values(), key=lambda b: b.name)
    if json_out:
        from ..results import BudgetList

        emit_result(app_ctx.streams, BudgetList(budgets))
        return
    if not budgets:
        app_ctx.err("tokencli: no budgets yet. 'tokencli budget set NAME --limit 50' adds one.")
        return
    columns = [
        Column("BUDGET"),
        Column("LIMIT", "right"),
        Column("SCOPE"),
        Column("WARN AT"),
        Column("MODE"),
    ]
    rows = [
        [
            b.name,
            f"{_limit_text(b)}/{b.period}",
            scope_text(b),
            ", ".join(f"{w}%" for w in b.warn),
            "block" if b.block else "warn only",
        ]
        for b in budgets
    ]
    render_table(app_ctx.streams, columns, rows)


def _limit_text(b: "Budget") -> str:
    from decimal import Decimal

    if b.tokens is not None:
        return amount_text(Decimal(b.tokens), "tokens")
    assert b.amount is not None
    return amount_text(b.amount, b.currency)


def scope_text(b: "Budget") -> str:
    return ", ".join(f"{k}={v}" for k, v in b.scope.describe().items()) or "all"


# ------------------------------------------------------------------ status / check


def _states(app_ctx: "AppContext", name: str | None = None) -> "list[BudgetState]":
    from ..insights.budgets import budget_states
    from ..ledger import Ledger
    from ..window import zone

    settings = app_ctx.settings
    budgets = sorted(settings.budgets.values(), key=lambda b: b.name)
    if name is not None:
        _known(settings.budgets, name)
        budgets = [settings.budgets[name]]
    ledger = app_ctx.ledger(create=False) or Ledger.open_memory()
    states = budget_states(
        ledger,
        budgets,
        now=app_ctx.now(),
        tz=zone(settings.defaults.timezone),
        currencies=settings.currencies,
    )
    for state in states:
        if state.unconvertible:
            left = ", ".join(f"{n} in {c}" for c, n in sorted(state.unconvertible.items()))
            app_ctx.err(
                f"tokencli: budget {state.name!r}: calls with no rate into {state.unit} "
                f"are left out ({left}). Add them under [currency] rates in the config."
            )
    return states


@app.command("status")
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this budget.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Each budget now: spent, reserved, remaining, % used, and where the period is heading."""
    app_ctx = app_context(ctx)
    states = _states(app_ctx, name)
    if json_out:
        from ..results import BudgetStatusResult
        from .output import emit_result

        emit_result(app_ctx.streams, BudgetStatusResult(app_ctx.now(), states))
        return
    if not states:
        app_ctx.err("tokencli: no budgets yet. 'tokencli budget set NAME --limit 50' adds one.")
        return
    print_status(app_ctx, states)


def print_status(app_ctx: "AppContext", states: "list[BudgetState]") -> None:
    from .output import Column, render_table

    columns = [
        Column("BUDGET"),
        Column("SCOPE"),
        Column("LIMIT", "right"),
        Column("SPENT", "right"),
        Column("RESERVED", "right"),
        Column("REMAINING", "right"),
        Column("USED", "right"),
        Column("ENDS"),
        Column("PROJECTED (80%)", "right"),
        Column("CROSSES"),
    ]
    rows = []
    for s in states:
        projected = "—"
        if s.projected is not None and s.low is not None and s.high is not None:
            # The interval's ends in the same unit, without repeating "tokens".
            bare = s.unit == "tokens"
            projected = (
                f"{amount_text(s.projected, s.unit)} ({_bare(s.low) if bare else amount_text(s.low, s.unit)}"
                f" – {_bare(s.high) if bare else amount_text(s.high, s.unit)})"
            )
        rows.append(
            [
                s.name,
                scope_text(s.budget),
                f"{amount_text(s.limit, s.unit)}/{s.budget.period}",
                amount_text(s.spent, s.unit),
                amount_text(s.reserved, s.unit),
                amount_text(s.remaining, s.unit),
                f"{s.percent}%",
                s.last_day.isoformat(),
                projected,
                _crossing_text(s),
            ]
        )
    render_table(app_ctx.streams, columns, rows)


def _bare(tokens: "Decimal") -> str:
    return f"{int(tokens):,}"


def _crossing_text(s: "BudgetState") -> str:
    if s.exceeded_on is not None:
        return f"crossed {s.exceeded_on.isoformat()}"
    if s.crosses_on is not None:
        return s.crosses_on.isoformat()
    return "—"


@app.command("check")
def check(
    ctx: typer.Context,
    pace: Annotated[
        bool,
        typer.Option("--pace", help="A budget on pace to cross its limit this period counts too."),
    ] = False,
    notify: Annotated[
        bool, typer.Option("--notify", help="Send each crossed threshold to the alert channels.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """For cron: exit 3 when any budget's threshold is crossed, 0 otherwise."""
    from ..errors import ExitCode

    app_ctx = app_context(ctx)
    states = _states(app_ctx)
    flagged = [s for s in states if s.crossed or (pace and s.on_pace)]
    found = _anomalies(app_ctx)
    for s in flagged:
        what = []
        if s.crossed:
            what.append(f"{max(s.crossed)}% reached")
        if pace and s.on_pace:
            what.append(s.pace_text() or "")
        app_ctx.err(
            f"tokencli: budget {s.name!r}: {amount_text(s.spent, s.unit)} of "
            f"{amount_text(s.limit, s.unit)} for {s.window.label} ({s.percent}%), "
            f"{', '.join(what)}."
        )
    for alert in found:
        app_ctx.err(f"tokencli: anomaly: {alert.message}")
    if notify:
        paced = [s for s in states if pace and s.on_pace]
        send_alerts(app_ctx, paced, found)
    if json_out:
        from ..results import BudgetCheckResult
        from .output import emit_result

        emit_result(
            app_ctx.streams,
            BudgetCheckResult(app_ctx.now(), states, pace, [s.name for s in flagged], found),
        )
    if flagged or found:
        raise typer.Exit(int(ExitCode.LIMIT))


def _anomalies(app_ctx: "AppContext") -> "list[Alert]":
    """Today's day-level anomaly rules ([alerts] spike_factor, max_zscore)."""
    from ..alerts import anomalies

    return app_ctx.read_ledger(
        lambda ledger: anomalies(ledger, app_ctx.settings, app_ctx.now()), []
    )
