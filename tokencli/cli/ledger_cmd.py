"""`tokencli ledger export|import|prune`: the ledger as files, and audit retention."""

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError
from .context import app_context
from .options import (
    JsonOpt,
    LastOpt,
    ModelFilterOpt,
    MonthOpt,
    OlderThanOpt,
    ProjectFilterOpt,
    PromptFilterOpt,
    ProviderFilterOpt,
    SinceOpt,
    StatusFilterOpt,
    TagFilterOpt,
    TzOpt,
    UntilOpt,
    scope_from,
    window_from,
)

if TYPE_CHECKING:
    from ..window import Window
    from .context import AppContext

app = typer.Typer(
    name="ledger",
    help="Export, import and prune the ledger's calls.",
    no_args_is_help=True,
)


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{n:,} calls"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    prometheus = "prometheus"


class Progress:
    """A count that rewrites one line on stderr, only when stderr is a terminal."""

    def __init__(self, app_ctx: "AppContext", verb: str, *, show: bool = True) -> None:
        self.stream = app_ctx.streams.stderr
        self.enabled = show and app_ctx.streams.stderr_isatty
        self.verb = verb
        self.shown = False

    def __call__(self, n: int) -> None:
        if self.enabled:
            self.stream.write(f"\rtokencli: {self.verb} {n:,} calls…")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            "-f",
            help="jsonl (a backup 'ledger import' reads), csv, or prometheus (all-time"
            " counters for node_exporter's textfile collector).",
        ),
    ] = ExportFormat.jsonl,
    month: MonthOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    last: LastOpt = None,
    tz: TzOpt = None,
    provider: ProviderFilterOpt = None,
    model: ModelFilterOpt = None,
    project: ProjectFilterOpt = None,
    prompt: PromptFilterOpt = None,
    status: StatusFilterOpt = None,
    tag: TagFilterOpt = None,
    text: Annotated[
        bool | None,
        typer.Option(
            "--text/--no-text",
            help="Include system, prompt and response texts (default: in jsonl, not in csv).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (replaced whole, never half-written); a name ending"
            " in .gz is compressed.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Write calls as JSON lines or CSV (every call unless a period or filter says), or
    Prometheus counters.

    Periods and filters are the same as report's; calls still in flight are left out.
    """
    app_ctx = app_context(ctx)
    ledger = app_ctx.ledger(create=False)
    if fmt is ExportFormat.prometheus:
        chosen = [
            o
            for o, v in (
                ("--month", month),
                ("--since", since),
                ("--until", until),
                ("--last", last),
                ("--tz", tz),
                ("--provider", provider),
                ("--model", model),
                ("--project", project),
                ("--prompt", prompt),
                ("--status", status),
                ("--tag", tag),
                ("--text", text),
            )
            if v
        ]
        if chosen:
            raise UsageError(
                f"--format prometheus writes all-time counters; {chosen[0]} does not apply to it.",
                "Leave it out, or export jsonl or csv for a period.",
            )
        from ..ledger.exchange import export_prometheus

        export_prometheus(ledger, now=app_ctx.now(), output=output, stdout=app_ctx.streams.stdout)
        return
    window = _window(app_ctx, month, since, until, last, tz)
    scope = scope_from(provider, model, project, tag, prompt=prompt, status=status)
    with_text = text if text is not None else fmt is ExportFormat.jsonl
    from ..ledger.exchange import export_calls

    # Progress on a terminal only when the calls go to a file, not between them on screen.
    progress = Progress(app_ctx, "exported", show=output is not None)
    n = export_calls(
        ledger,
        scope,
        window,
        fmt=fmt.value,
        with_text=with_text,
        output=output,
        stdout=app_ctx.streams.stdout,
        progress=progress if progress.enabled else None,
    )
    progress.done()
    if output is not None:
        app_ctx.err(f"tokencli: exported {_calls(n)} to {output}")


def _window(
    app_ctx: "AppContext",
    month: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    tz: str | None,
) -> "Window | None":
    """report's period options as a Window; None (every call) when none is given."""
    if all(v is None for v in (month, since, until, last)):
        return None
    return window_from(app_ctx.now(), tz=tz, month=month, since=since, until=until, last=last)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="What 'ledger export' wrote (JSON lines, gzipped or not), or - for stdin.",
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Add the calls in FILE that this ledger does not hold yet.

    Ids are global, so calls already here (or pruned from here) are skipped, never
    counted twice: importing the same file again changes nothing.
    """
    from ..ledger.exchange import import_source, open_import
    from ..ledger.store import ImportStopped

    app_ctx = app_context(ctx)
    source = open_import(file, app_ctx.streams.stdin)  # before the ledger: a typo creates nothing
    name = source.name
    ledger = app_ctx.ledger()
    assert ledger is not None
    progress = Progress(app_ctx, "read")
    try:
        counts = import_source(ledger, source, progress=lambda c: progress(sum(c)))
    except ImportStopped as stopped:
        # What came before the failure is in the ledger: say how much, then why it stopped.
        progress.done()
        error = stopped.error
        if isinstance(error, UsageError):
            raise UsageError(
                f"{error.message} Stopped there ({_summary(stopped.counts, name)}).", error.hint
            ) from None
        app_ctx.err(f"tokencli: {_summary(stopped.counts, name)} before it stopped.")
        raise error from None  # its own exit code (130 for Ctrl-C or SIGTERM)
    progress.done()
    if json_out:
        from ..results import ImportResult
        from .output import emit_result

        emit_result(app_ctx.streams, ImportResult(*counts))
    app_ctx.err(f"tokencli: {_summary(counts, name)}.")


def _summary(counts: Any, name: str) -> str:
    return (
        f"imported {_calls(counts.inserted)} from {name}"
        + (f"; {counts.skipped:,} already in the ledger" if counts.skipped else "")
        + (f"; {counts.pruned:,} pruned from it before, left out" if counts.pruned else "")
    )


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: OlderThanOpt,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for cron).")
    ] = False,
    vacuum: Annotated[
        bool,
        typer.Option("--vacuum", help="Then shrink the file (rewrites it; takes a moment)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete old calls (audit retention) while reports keep their totals.

    Hourly, daily and monthly totals stay, so reports and Prometheus counters for
    pruned months do not change; the calls' rows, texts and tags go. Calls still in
    flight are never deleted. Importing a backup afterwards does not bring them back.
    """
    from ..ledger import format_ts
    from ..ledger.retention import prunable
    from ..ledger.retention import prune as prune_calls
    from ..ledger.retention import vacuum as vacuum_file
    from ..window import retention_cutoff

    app_ctx = app_context(ctx)
    cutoff = format_ts(retention_cutoff(older_than, app_ctx.now()))
    ledger = app_ctx.ledger(create=False)
    plan = None if ledger is None else prunable(ledger, cutoff)
    n = plan.calls if plan else 0
    before = f"recorded before {cutoff[:10]} (UTC)"
    if dry_run or n == 0:
        _prune_result(app_ctx, json_out, cutoff, plan, deleted=0, dry_run=dry_run)
        if not json_out:
            app_ctx.err(
                f"tokencli: {_calls(n)} {before} would be deleted (dry run)."
                if dry_run and n
                else f"tokencli: no calls {before}; nothing to prune."
            )
        return
    assert ledger is not None and plan is not None
    if not yes:
        _confirm(app_ctx, n, before)
    progress = Progress(app_ctx, "deleted")
    done = prune_calls(ledger, cutoff, progress=progress)
    progress.done()
    if vacuum:
        vacuum_file(ledger)
    _prune_result(app_ctx, json_out, cutoff, done, deleted=done.calls, dry_run=False)
    if not json_out:
        app_ctx.err(
            f"tokencli: deleted {_calls(done.calls)} {before}; their totals stay in reports."
            + (f" {done.pending_kept:,} still in flight were kept." if done.pending_kept else "")
        )


def _confirm(app_ctx: "AppContext", n: int, before: str) -> None:
    streams = app_ctx.streams
    if not streams.stdin_isatty:
        raise UsageError(
            f"Pruning would delete {_calls(n)} {before} and there is no terminal to confirm it.",
            "Add --yes to prune without asking (or --dry-run to see what would go).",
        )
    streams.stderr.write(f"Delete {_calls(n)} {before}? Their totals stay in reports. [y/N] ")
    streams.stderr.flush()
    answer = streams.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("Nothing deleted.")


def _prune_result(
    app_ctx: "AppContext",
    json_out: bool,
    cutoff: str,
    plan: Any,
    *,
    deleted: int,
    dry_run: bool,
) -> None:
    if not json_out:
        return
    from ..results import PruneResult
    from .output import emit_result

    emit_result(app_ctx.streams, PruneResult(cutoff, dry_run, plan, deleted))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ledger")
