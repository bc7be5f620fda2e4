"""`tokencli logs`: recent calls, filtered; `tokencli logs show ID`: one call whole."""

from typing import Annotated

import typer

from ..errors import UsageError
from .context import app_context
from .options import (
    JsonOpt,
    ModelFilterOpt,
    ProjectFilterOpt,
    PromptFilterOpt,
    ProviderFilterOpt,
    SinceOpt,
    StatusFilterOpt,
    TagFilterOpt,
    TzOpt,
    UntilOpt,
)
from .output import Column, count, duration, emit_result, local_time, render_table

app = typer.Typer(
    name="logs",
    help="Recent calls from the ledger (newest first); 'logs show ID' for one call.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
def logs(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many calls to show.")] = 20,
    provider: ProviderFilterOpt = None,
    model: ModelFilterOpt = None,
    project: ProjectFilterOpt = None,
    prompt: PromptFilterOpt = None,
    status: StatusFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    tz: TzOpt = None,
    tag: TagFilterOpt = None,
    json_out: JsonOpt = False,
    text: Annotated[
        bool, typer.Option("--text", help="Include prompt and response text in --json output.")
    ] = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from .options import scope_from

    app_ctx = app_context(ctx)
    scope = scope_from(provider, model, project, tag, prompt=prompt, status=status)
    start = end = None
    if since or until or tz:  # the zone (and the tz database) only when a date needs it
        from ..window import parse_point, zone

        now, zone_ = app_ctx.now(), zone(tz)
        start = parse_point(since, now, zone_, option="--since") if since else None
        end = parse_point(until, now, zone_, option="--until") if until else None
    ledger = app_ctx.ledger(create=False)
    calls = (
        ledger.list_calls(scope, since=start, until=end, limit=n, with_text=text) if ledger else []
    )
    if json_out:
        from ..results import CallList

        emit_result(app_ctx.streams, CallList(calls, with_text=text))
        return
    if not calls:
        app_ctx.err(
            "tokencli: no calls recorded yet."
            if ledger is None or not ledger.count_calls()
            else "tokencli: no calls match."
        )
        return
    from ..money import format_money

    columns = [
        Column("ID"),
        Column("TIME"),
        Column("MODEL"),
        Column("PROJECT"),
        Column("STATUS"),
        Column("IN", "right"),
        Column("OUT", "right"),
        Column("COST", "right"),
        Column("TIME TAKEN", "right"),
    ]
    rows = [
        [
            c.id,
            local_time(c.ts),
            f"{c.provider}:{c.model}",
            c.project or "-",
            c.status,
            count(c.usage.input_tokens) + ("~" if c.usage.source == "estimated" else ""),
            count(c.usage.output_tokens) + ("~" if c.usage.source == "estimated" else ""),
            format_money(c.cost, c.currency),
            duration(c.duration_ms),
        ]
        for c in calls
    ]
    render_table(app_ctx.streams, columns, rows)


@app.command("show")
def show(
    ctx: typer.Context,
    call_id: Annotated[
        str, typer.Argument(metavar="ID", help="A call id (or its first characters).")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Show one call: usage, cost, timing, error, and its texts."""
    from ..money import format_money
    from ..results import CallResult

    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    if ledger is None:
        raise UsageError(
            f"No call with id {call_id!r}: the ledger is empty.", "Run something first."
        )
    call = ledger.get_call(call_id)
    if json_out:
        emit_result(app_ctx.streams, CallResult(call, with_text=True))
        return
    u = call.usage
    lines = [
        ("id", call.id),
        ("time", f"{local_time(call.ts)} (UTC {call.ts})"),
        (
            "model",
            f"{call.provider}:{call.model}"
            + (
                f" (as {call.response_model})"
                if call.response_model and call.response_model != call.model
                else ""
            ),
        ),
        ("alias", call.alias or "-"),
        ("project", call.project or "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in call.tags.items()) or "-"),
        (
            "status",
            call.status
            + (f" ({call.error_kind}: {call.error_message})" if call.error_kind else ""),
        ),
        (
            "tokens",
            f"{u.input_tokens:,} in ({u.cached_input_tokens:,} cached, {u.cache_write_tokens:,} cache write), "
            f"{u.output_tokens:,} out ({u.reasoning_tokens:,} reasoning), {u.total_tokens:,} total [{u.source}]",
        ),
        ("cost", f"{format_money(call.cost, call.currency)} ({call.price_source or 'no price'})"),
        ("duration", f"{duration(call.duration_ms)}, first token after {duration(call.ttft_ms)}"),
        ("finish", call.finish_reason or "-"),
        ("request id", call.request_id or "-"),
        ("host", call.host),
    ]
    if call.params:
        lines.append(("params", ", ".join(f"{k}={v}" for k, v in call.params.items())))
    if call.extra:
        lines.append(("extra", ", ".join(f"{k}={v}" for k, v in call.extra.items())))
    from ..safetext import visible

    out = app_ctx.streams.stdout
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        out.write(f"{key.ljust(width)}  {visible(value)}\n")
    for title, body in (
        ("system", call.system_text),
        ("prompt", call.prompt_text),
        ("response", call.response_text),
    ):
        if body:  # its own lines kept, every other control character escaped
            out.write(f"\n--- {title} ---\n{visible(body.rstrip(), multiline=True)}\n")
    out.flush()


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="logs")
