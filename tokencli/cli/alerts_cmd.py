"""`tokencli alerts list/test`: the alert history, and a sample through every channel."""

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ExitCode, UsageError
from .context import app_context
from .options import JsonOpt
from .output import Column, emit_result, render_table

if TYPE_CHECKING:
    from ..ledger.alerts import AlertRow

app = typer.Typer(
    name="alerts",
    help="See the alerts raised (each fires once) and test the channels they go to.",
    no_args_is_help=True,
)


@app.command("list")
def list_alerts(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("-n", "--limit", min=1, help="How many, newest first.")
    ] = 50,
    json_out: JsonOpt = False,
) -> None:
    """The alerts raised, newest first: one row per channel, with its delivery status."""
    from ..ledger.alerts import history

    app_ctx = app_context(ctx)
    rows: list[AlertRow] = app_ctx.read_ledger(lambda ledger: history(ledger, limit), [])
    if json_out:
        from ..results import AlertList

        emit_result(app_ctx.streams, AlertList(rows))
        return
    if not rows:
        app_ctx.err("tokencli: no alerts yet.")
        return
    render_table(
        app_ctx.streams,
        [
            Column("TIME"),
            Column("KIND"),
            Column("KEY"),
            Column("CHANNEL"),
            Column("STATUS"),
            Column("TRIES", "right"),
        ],
        [
            [
                r.ts[:19].replace("T", " "),
                r.kind,
                r.key,
                r.channel,
                r.status + (f": {r.last_error}" if r.status == "failed" and r.last_error else ""),
                str(r.attempts),
            ]
            for r in rows
        ],
    )


@app.command("test")
def test_alerts(
    ctx: typer.Context,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only the channel with this name.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a sample alert to each channel (or one) and say how each went.

    Exit 0 when every channel took it, 5 when one did not. Samples are not recorded.
    """
    import uuid

    from ..alerts import Alert
    from ..alerts.delivery import describe, send
    from ..alerts.dispatch import channels_of
    from ..results import AlertTest, ChannelOutcome

    app_ctx = app_context(ctx)
    channels = channels_of(app_ctx.settings)
    if channel is not None:
        channels = tuple(c for c in channels if c.name == channel)
        if not channels:
            known = ", ".join(c.name for c in channels_of(app_ctx.settings))
            raise UsageError(f"No alert channel is named {channel!r}.", f"Channels: {known}.")
    sample = Alert(
        kind="test",
        key=f"test:{uuid.uuid4().hex}",
        title="tokencli test alert",
        message="If you can read this, tokencli alerts reach this channel.",
        level="info",
        occurred_at=app_ctx.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    outcomes = []
    for c in channels:
        error = send(c, sample, delivery_id=uuid.uuid4().hex, stderr=app_ctx.streams.stderr)
        outcomes.append(ChannelOutcome(c.name, c.type, describe(c), error))
    failed = [o for o in outcomes if o.error is not None]
    if json_out:
        emit_result(app_ctx.streams, AlertTest(outcomes))
    else:
        render_table(
            app_ctx.streams,
            [Column("CHANNEL"), Column("TARGET"), Column("RESULT")],
            [
                [o.name, o.target, "ok" if o.error is None else f"failed: {o.error}"]
                for o in outcomes
            ],
        )
    if failed:
        app_ctx.err(f"tokencli: {len(failed)} of {len(outcomes)} channels failed.")
        raise typer.Exit(int(ExitCode.UNAVAILABLE))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerts")
