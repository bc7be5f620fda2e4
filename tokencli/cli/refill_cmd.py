"""`tokencli refill ...`: top-ups and grants recorded, balances live and from the ledger,
runway, and a check for cron."""

from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from .context import app_context
from .options import JsonOpt

if TYPE_CHECKING:
    from ..alerts import Alert
    from ..insights.balances import Status
    from ..insights.refills import Runway
    from ..ledger import Ledger
    from .context import AppContext

HELP = "Prepaid credit: record top-ups and grants, see balances and runway, check them."

app = typer.Typer(
    name="refill",
    help=HELP
    + """

'refill add' records a top-up or a free grant; the ledger's balance is what was added
minus what tokencli metered since (grants used first; an expired grant takes its unused
part). 'refill status' adds the live balance of providers that publish one (DeepSeek,
Moonshot, SiliconFlow, OpenRouter, Novita), the drift and the runway; 'refill check'
exits 3 when a balance is below a threshold, 5 when one could not be read, for cron.""",
    no_args_is_help=True,
)

ProviderOpt = Annotated[str | None, typer.Option("--provider", help="Only this provider.")]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Ask no provider: the ledger's figures only.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", min=0.1, max=60, help="How long each provider may take."
    ),
]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="refill")


def _zone(app_ctx: "AppContext") -> "tzinfo":
    from ..window import zone

    return zone(app_ctx.settings.defaults.timezone)


def _open(app_ctx: "AppContext") -> "Ledger":
    ledger = app_ctx.ledger()
    assert ledger is not None  # create=True always opens
    return ledger


# ------------------------------------------------------------------ add / list / rm


@app.command("add")
def add(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="The provider topped up, e.g. deepseek.")],
    amount: Annotated[
        str, typer.Argument(help="How much: money in --currency, or tokens with --tokens.")
    ],
    currency: Annotated[
        str | None,
        typer.Option(
            "--currency", metavar="CODE", help="Currency of AMOUNT (default: the provider's)."
        ),
    ] = None,
    tokens: Annotated[
        bool, typer.Option("--tokens", help="AMOUNT is tokens (e.g. 1M), not money.")
    ] = False,
    grant: Annotated[
        bool, typer.Option("--grant", help="A free grant: used before paid credit.")
    ] = False,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires", metavar="DATE", help="The grant's last day (YYYY-MM-DD); needs --grant."
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note to keep with it.")] = None,
) -> None:
    """Record a top-up or a free grant; calls refused for credit may go again at once."""
    from ..ids import new_id
    from ..ledger import circuits
    from ..ledger.refills import TOKENS, Refill
    from ..ledger.refills import add as insert

    app_ctx = app_context(ctx)
    settings = app_ctx.settings
    config = settings.provider(provider)  # unknown provider → exit 6 with the list
    if tokens and currency:
        raise UsageError("--tokens and --currency exclude each other.", "Give one of them.")
    value = _amount(amount, tokens)
    unit = TOKENS if tokens else _currency(app_ctx, currency, config.currency)
    now = app_ctx.now()
    until = None
    if expires is not None:
        if not grant:
            raise UsageError(
                "--expires is for grants.", "Add --grant, or leave --expires out for a top-up."
            )
        until = _expiry(expires, _zone(app_ctx))
        if until <= now:
            app_ctx.err(
                f"tokencli: warning: --expires {expires} is in the past; the grant is recorded"
                " as already expired and adds nothing to the balance."
            )
    if note is not None and (len(note) > 500 or not note.isprintable()):
        raise UsageError("--note must be printable text of up to 500 characters.", None)
    refill = Refill(
        new_id(int(now.timestamp() * 1000)), now, provider, unit, value, grant, until, note
    )
    ledger = _open(app_ctx)
    try:
        insert(ledger, refill)
        cleared = circuits.reset(ledger, provider)
    finally:
        ledger.close()
    from ..insights.balances import money_text

    what = "grant" if grant else "top-up"
    app_ctx.err(
        f"tokencli: recorded a {what} of {money_text(value, unit)} for {provider} ({refill.id})."
    )
    if cleared:
        app_ctx.err(f"tokencli: {provider} is no longer set aside; calls go to it again.")


def _amount(text: str, tokens: bool) -> Decimal:
    from ..insights.balances import parse_tokens
    from ..money import parse_amount

    if tokens:
        value = parse_tokens(text)
        if value is None or value <= 0:
            raise UsageError(
                f"AMOUNT {text!r} is not a whole number of tokens above 0.", "e.g. 1000000 or 1M."
            )
        return value
    try:
        value = parse_amount(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise UsageError(f"AMOUNT {text!r} is not a number above 0.", "e.g. 50 or 12.5.")
    if value != value.quantize(Decimal("1e-12")):
        raise UsageError(f"AMOUNT {text!r} has more than 12 decimals.", None)
    return value


def _currency(app_ctx: "AppContext", given: str | None, default: str) -> str:
    if given is None:
        return default
    code = given.strip().upper()
    currencies = app_ctx.settings.currencies
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise UsageError(f"--currency {given!r} is not a currency code.", "e.g. CNY or USD.")
    from ..money import CURRENCY_SYMBOLS

    known = {default, currencies.report, *currencies.rates, *CURRENCY_SYMBOLS}
    if code not in known:
        raise UsageError(
            f"--currency {code} is not a currency tokencli knows and has no rate.",
            f"Add it under [currency] rates first, e.g. rates = {{ {code} = 0.14 }}.",
        )
    return code


def _expiry(text: str, tz: "tzinfo") -> "datetime":
    """The grant's last day: it expires at the local midnight that ends it."""
    from datetime import date, timedelta

    from ..window import local_midnight

    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--expires {text!r} is not a date.", "e.g. --expires 2026-12-31."
        ) from None
    return local_midnight(day + timedelta(days=1), tz)


@app.command("list")
def list_refills(
    ctx: typer.Context, provider: ProviderOpt = None, json_out: JsonOpt = False
) -> None:
    """The top-ups and grants recorded, oldest first."""
    from ..insights.balances import money_text
    from ..ledger.refills import Refill, refills
    from .output import Column, emit_result, render_table

    app_ctx = app_context(ctx)
    rows: list[Refill] = app_ctx.read_ledger(lambda ledger: refills(ledger, provider), [])
    if json_out:
        from ..results import RefillList

        emit_result(app_ctx.streams, RefillList(rows))
        return
    if not rows:
        app_ctx.err("tokencli: no refills yet. 'tokencli refill add deepseek 50' records one.")
        return
    tz = _zone(app_ctx)
    render_table(
        app_ctx.streams,
        [
            Column("ID"),
            Column("ADDED"),
            Column("PROVIDER"),
            Column("AMOUNT", "right"),
            Column("KIND"),
            Column("LAST DAY"),
            Column("NOTE"),
        ],
        [
            [
                r.id,
                f"{r.ts.astimezone(tz):%Y-%m-%d %H:%M}",
                r.provider,
                money_text(r.amount, r.unit),
                "grant" if r.grant else "top-up",
                _last_day(r.expires, tz) if r.expires else "",
                r.note or "",
            ]
            for r in rows
        ],
    )


def _last_day(expires: datetime, tz: tzinfo) -> str:
    """A grant's last day as the user gave it (`--expires 2027-01-31`), not the midnight after."""
    local = expires.astimezone(tz)
    if local.time() == time(0):
        return f"{local - timedelta(days=1):%Y-%m-%d}"
    return f"{local:%Y-%m-%d %H:%M}"


@app.command("rm")
def remove(
    ctx: typer.Context,
    refill_id: Annotated[str, typer.Argument(metavar="ID", help="The refill's id (or a prefix).")],
) -> None:
    """Remove a refill recorded by mistake."""
    from ..ledger.refills import find
    from ..ledger.refills import remove as delete

    app_ctx = app_context(ctx)
    prefix = refill_id.strip()
    if len(prefix) < 4:
        raise UsageError(f"ID {refill_id!r} is too short.", "Give at least 4 characters of it.")
    ledger = app_ctx.ledger(create=False)
    found = find(ledger, prefix) if ledger is not None else []
    try:
        if not found:
            raise UsageError(
                f"No refill has the id {refill_id!r}.", "'tokencli refill list' shows them."
            )
        if len(found) > 1:
            raise UsageError(f"ID {refill_id!r} names {len(found)} refills.", "Give more of it.")
        assert ledger is not None
        delete(ledger, found[0].id)
    finally:
        if ledger is not None:
            ledger.close()
    app_ctx.err(f"tokencli: refill {found[0].id} removed.")


# ------------------------------------------------------------------ status / check


def _status(app_ctx: "AppContext", provider: str | None, offline: bool, timeout: float) -> "Status":
    from ..insights.balances import build_status

    if provider is not None:
        app_ctx.settings.provider(provider)  # unknown provider → exit 6
    ledger = _open(app_ctx)
    try:
        status = build_status(
            ledger,
            app_ctx.settings,
            app_ctx.now(),
            _zone(app_ctx),
            provider=provider,
            live=not offline,
            timeout=timeout,
        )
    finally:
        ledger.close()
    if status.offline:
        app_ctx.err(
            "tokencli: no provider could be reached; the figures are the ledger's,"
            " from the refills recorded."
        )
    told: set[str] = set()
    for row in status.rows:
        if row.error is not None and row.provider not in told:
            told.add(row.provider)
            fallback = "; the ledger's figure stands in" if row.ledger is not None else ""
            app_ctx.err(
                f"tokencli: {row.provider}: live balance unavailable: {row.error}{fallback}."
            )
    return status


def _report_outside(app_ctx: "AppContext", status: "Status", notify: bool) -> None:
    from ..insights.balances import outside_alert, outside_sentence

    tz = _zone(app_ctx)
    for o in status.outside:
        app_ctx.err(f"tokencli: {outside_sentence(o, status.as_of, tz)}")
    if status.outside:
        _raise(app_ctx, [outside_alert(o, status.as_of, tz) for o in status.outside], notify)


def _raise(app_ctx: "AppContext", alerts: "list[Alert]", notify: bool) -> None:
    """Record `alerts` (each key once); deliver them through the channels with --notify."""
    from ..alerts.dispatch import deliver_pending, enqueue

    ledger = _open(app_ctx)
    try:
        enqueue(ledger, app_ctx.settings, alerts)
        if notify:
            deliver_pending(ledger, app_ctx.settings, stderr=app_ctx.streams.stderr)
    finally:
        ledger.close()


@app.command("status")
def status(
    ctx: typer.Context,
    provider: ProviderOpt = None,
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 5.0,
    json_out: JsonOpt = False,
) -> None:
    """Per provider: the ledger's balance, the live one, the drift and the runway."""
    from ..insights.balances import money_text
    from .output import Column, emit_result, render_table

    app_ctx = app_context(ctx)
    found = _status(app_ctx, provider, offline, timeout)
    _report_outside(app_ctx, found, notify=False)
    if json_out:
        from ..results import RefillStatusResult

        emit_result(app_ctx.streams, RefillStatusResult(found))
        return
    if not found.rows:
        app_ctx.err(
            "tokencli: no refills recorded and no provider with a balance endpoint has a key."
            " 'tokencli refill add deepseek 50' records a top-up."
        )
        return

    def runway_text(r: "Runway | None") -> str:
        if r is None:
            return "—"
        if r.runs_out is None:
            return f"beyond {RUNWAY_LIMIT} days"
        span = f" ({r.early or '…'} – {r.late or 'later'})" if r.early != r.late else ""
        return f"{r.runs_out}{span}"

    from ..insights.refills import RUNWAY_DAYS as RUNWAY_LIMIT

    rows = []
    for row in found.rows:
        ledger_text = money_text(row.ledger.balance, row.unit) if row.ledger else "—"
        if row.live is not None and row.live.balance is not None:
            live_text = money_text(row.live.balance, row.unit)
        elif row.error is not None:
            live_text = "unavailable"
        else:
            live_text = "—"
        drift = row.drift
        rows.append(
            [
                row.provider,
                ledger_text,
                live_text,
                "—" if drift is None else money_text(drift, row.unit),
                runway_text(row.runway),
            ]
        )
    render_table(
        app_ctx.streams,
        [
            Column("PROVIDER"),
            Column("LEDGER", "right"),
            Column("LIVE", "right"),
            Column("DRIFT", "right"),
            Column("RUNS OUT (80%)"),
        ],
        rows,
    )


@app.command("check")
def check(
    ctx: typer.Context,
    threshold: Annotated[
        str | None,
        typer.Option(
            "--threshold",
            metavar="AMOUNT",
            help="50CNY, 20USD, 1M (tokens) or 7d (days of runway).",
        ),
    ] = None,
    provider: ProviderOpt = None,
    notify: Annotated[
        bool, typer.Option("--notify", help="Send each balance below to the alert channels.")
    ] = False,
    offline: OfflineOpt = False,
    timeout: TimeoutOpt = 5.0,
    print_cron: Annotated[
        bool, typer.Option("--print-cron", help="Print a crontab line that runs this check.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """For cron: exit 3 when a balance is below the threshold, 5 when one can't be read."""
    from ..errors import ExitCode
    from ..insights.balances import below_alert, judge, parse_threshold, topup_sentence

    app_ctx = app_context(ctx)
    if print_cron:
        print(_cron_line(app_ctx, threshold, provider), file=app_ctx.streams.stdout)
        return
    if threshold is None:
        raise UsageError("--threshold is needed.", "e.g. --threshold 50CNY or --threshold 7d.")
    limit = parse_threshold(threshold)
    found = _status(app_ctx, provider, offline, timeout)
    _report_outside(app_ctx, found, notify)
    today = found.as_of.astimezone(_zone(app_ctx)).date()
    findings, unreadable = judge(found.rows, limit, app_ctx.settings, today)
    below = [f for f in findings if f.below]
    for f in below:
        app_ctx.err(f"tokencli: {topup_sentence(f, limit, today)}")
    for row in unreadable:
        app_ctx.err(f"tokencli: {row.provider}: no balance to check ({row.error or 'no rate'}).")
    if below and notify:
        _raise(app_ctx, [below_alert(f, limit, today) for f in below], notify)
    if json_out:
        from ..results import RefillCheckResult

        emit = RefillCheckResult(found, limit.text, findings, [r.provider for r in unreadable])
        from .output import emit_result

        emit_result(app_ctx.streams, emit)
    if below:
        raise typer.Exit(int(ExitCode.LIMIT))
    if unreadable:
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


def _cron_line(app_ctx: "AppContext", threshold: str | None, provider: str | None) -> str:
    """Every six hours, this tokencli by its absolute path, with this TOKENCLI_HOME."""
    import shlex
    import shutil
    import sys
    from pathlib import Path

    from ..insights.balances import parse_threshold

    limit = parse_threshold(threshold).text if threshold else "7d"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    exe = Path(argv0).resolve() if argv0 and Path(argv0).name.startswith("tokencli") else None
    found = shutil.which("tokencli")
    if exe is not None and exe.is_file():
        command = [str(exe)]
    elif found:
        command = [str(Path(found).resolve())]
    else:
        command = [str(Path(sys.executable).resolve()), "-m", "tokencli"]
    command += ["refill", "check", "--threshold", limit, "--notify"]
    if provider:
        command += ["--provider", provider]
    env = ""
    home = app_ctx.env.get("TOKENCLI_HOME")
    if home:
        env = f"TOKENCLI_HOME={shlex.quote(str(Path(home).resolve()))} "
    return f"0 */6 * * * {env}{shlex.join(command)}"
