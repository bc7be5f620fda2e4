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
    from collections.abc import Iterator

    from ..window import Window
    from .context import AppContext

app = typer.Typer(
    name="ledger",
    help="Export, import and prune the ledger's calls.",
    no_args_is_help=True,
)

PROGRESS_EVERY = 20_000
# Files this big are read and checked in a second process while this one writes.
PARALLEL_FROM_BYTES = 4 << 20
IMPORT_CHUNK = 20_000  # calls per transaction


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
        self.n = 0  # what `count` let through

    def __call__(self, n: int) -> None:
        if self.enabled:
            self.stream.write(f"\rtokencli: {self.verb} {n:,} calls…")
            self.stream.flush()
            self.shown = True

    def count(self, rows: "Iterator[Any]") -> "Iterator[Any]":
        """Pass `rows` through, counting them and showing the count now and then."""
        for row in rows:
            self.n += 1
            if self.enabled and self.n % PROGRESS_EVERY == 0:
                self(self.n)
            yield row

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
        from ..ledger.file_formats import prometheus_text
        from ..ledger.transfer import model_totals

        totals = model_totals(ledger.conn) if ledger else []
        _write(app_ctx, output, iter([prometheus_text(totals, now=app_ctx.now())]), mode=0o644)
        return
    window = _window(app_ctx, month, since, until, last, tz)
    scope = scope_from(provider, model, project, tag, prompt=prompt, status=status)
    with_text = text if text is not None else fmt is ExportFormat.jsonl
    from ..ledger.file_formats import csv_rows, encode_jsonl
    from ..ledger.transfer import export_rows

    # Progress on a terminal only when the calls go to a file, not between them on screen.
    progress = Progress(app_ctx, "exported", show=output is not None)
    rows = progress.count(
        export_rows(
            ledger.conn,
            scope,
            since=window.start if window else None,
            until=window.end if window else None,
            with_text=with_text,
        )
        if ledger
        else iter(())
    )
    lines = (
        (encode_jsonl(row) + "\n" for row in rows)
        if fmt is ExportFormat.jsonl
        else csv_rows(rows, with_text=with_text)
    )
    _write(app_ctx, output, lines, mode=0o600)
    progress.done()
    if output is not None:
        app_ctx.err(f"tokencli: exported {_calls(progress.n)} to {output}")


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


def _write(
    app_ctx: "AppContext", output: Path | None, chunks: "Iterator[str]", *, mode: int
) -> None:
    """Stream text to stdout, or to a file through a temporary name renamed at the end."""
    if output is None:
        out = app_ctx.streams.stdout
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return
    import os

    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # the umask must not loosen an owner-only backup
        with open(fd, "wb") as raw:
            if output.name.endswith(".gz"):
                import gzip

                with gzip.GzipFile(filename=output.name[:-3], mode="wb", fileobj=raw) as zipped:
                    _copy(chunks, zipped)
            else:
                _copy(chunks, raw)
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(
            f"Cannot write {output}: {exc.strerror}.", "Check the --output path."
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _copy(chunks: "Iterator[str]", sink: Any) -> None:
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size > 1 << 20:
            sink.write("".join(pending).encode("utf-8"))
            pending, size = [], 0
    sink.write("".join(pending).encode("utf-8"))


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
    from ..ledger.file_formats import FormatError, decode_jsonl
    from ..ledger.store import ImportStopped

    app_ctx = app_context(ctx)
    name = "stdin" if file == "-" else file
    lines = _lines(app_ctx, file)

    def parsed(batch: "list[tuple[int, str]]") -> "Iterator[Any]":
        for number, line in batch:
            try:
                yield decode_jsonl(line)
            except FormatError as exc:
                raise UsageError(
                    f"{name} line {number} {exc}.",
                    "Fix or remove that line and import again: calls already imported are skipped.",
                ) from None

    def rows() -> "Iterator[Any]":
        # Lines of calls the ledger already holds are counted, not parsed: importing
        # the same backup again (or another machine's whole ledger daily) reads ids only.
        known = _KnownIds(db_path)
        batch: list[tuple[int, str]] = []
        for number, line in lines:
            if line.strip():
                batch.append((number, line))
                if len(batch) >= 2000:
                    yield from known.skip(batch, parsed)
                    batch = []
        yield from known.skip(batch, parsed)
        known.close()

    ledger = app_ctx.ledger()
    assert ledger is not None
    db_path = ledger.path
    progress = Progress(app_ctx, "read")
    try:
        counts = ledger.import_rows(
            rows(),
            chunk=IMPORT_CHUNK,
            progress=lambda c: progress(sum(c)),
            parallel=_big_file(file),
        )
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
        from .output import emit_json

        emit_json(app_ctx.streams, counts._asdict())
    app_ctx.err(f"tokencli: {_summary(counts, name)}.")


class _KnownIds:
    """Reads which exported ids a ledger has, on a read-only connection of its own
    (opened where the rows are read: in the reader process when there is one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: Any = None

    def skip(self, batch: "list[tuple[int, str]]", parsed: Any) -> "Iterator[Any]":
        from ..ledger.file_formats import EXPORTED_ID
        from ..ledger.store import Known
        from ..ledger.transfer import known_ids

        if not batch:
            return
        if self.conn is None:
            import sqlite3

            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
        ids = [match.group(1) if (match := EXPORTED_ID.match(line)) else None for _, line in batch]
        present, pruned = known_ids(self.conn, [i for i in ids if i is not None])
        if not present and not pruned:
            yield from parsed(batch)
            return
        for (number, line), call_id in zip(batch, ids, strict=True):
            if call_id in present:
                yield Known(present=1)
            elif call_id in pruned:
                yield Known(pruned=1)
            else:
                yield from parsed([(number, line)])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _summary(counts: Any, name: str) -> str:
    return (
        f"imported {_calls(counts.inserted)} from {name}"
        + (f"; {counts.skipped:,} already in the ledger" if counts.skipped else "")
        + (f"; {counts.pruned:,} pruned from it before, left out" if counts.pruned else "")
    )


def _big_file(file: str) -> bool:
    """Whether reading FILE is worth a second process (see ledger.staging)."""
    import os

    try:
        return file != "-" and os.stat(file).st_size >= PARALLEL_FROM_BYTES
    except OSError:
        return False


def _lines(app_ctx: "AppContext", file: str) -> "Iterator[tuple[int, str]]":
    """Numbered text lines of FILE (or stdin), gunzipped when it is gzip."""
    if file == "-":
        stream: Any = app_ctx.streams.stdin
        source: Any = getattr(stream, "buffer", stream)
    else:
        try:
            source = open(file, "rb")  # noqa: SIM115 - closed by the generator below
        except OSError as exc:
            raise UsageError(
                f"Cannot read {file}: {exc.strerror}.", "Give the path of a 'ledger export' file."
            ) from None
        if source.peek(2)[:2] == b"\x1f\x8b":
            import gzip

            source = gzip.GzipFile(fileobj=source, mode="rb")
    return _decoded(source, "stdin" if file == "-" else file)


def _decoded(source: Any, name: str) -> "Iterator[tuple[int, str]]":
    import gzip
    import zlib

    number = 0
    try:
        for number, raw in enumerate(source, 1):
            if isinstance(raw, str):
                yield number, raw
                continue
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(
                    f"{name} line {number} is not UTF-8 text.",
                    "Give the JSON lines file that 'ledger export' wrote.",
                ) from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UsageError(
            f"Cannot read {name} after line {number}: {exc}.",
            "The file is damaged or cut short; export it again.",
        ) from None
    finally:
        if hasattr(source, "close") and name != "stdin":
            source.close()


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
    from .output import emit_json

    emit_json(
        app_ctx.streams,
        {
            "cutoff": cutoff,
            "dry_run": dry_run,
            "would_delete" if dry_run else "deleted": plan.calls if dry_run and plan else deleted,
            "oldest": plan.first_ts if plan else None,
            "newest": plan.last_ts if plan else None,
            "pending_kept": plan.pending_kept if plan else 0,
        },
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ledger")
