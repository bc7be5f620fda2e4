"""`tokencli batch FILE`: many prompts, concurrently, resumable."""

import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from ..errors import UsageError
from .context import AppContext, app_context
from .options import ConcurrencyOpt, ForceOpt, MaxTokensOpt, ModelOpt, PromptRefOpt, TemperatureOpt

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..calls.batch import BatchItem, BatchSummary, ItemResult
    from ..prompts import PromptVersion

HELP = """Run every prompt in FILE and write results as JSON lines.

FILE holds JSON lines ({"id": "a1", "prompt": "...", "model": "...", "system": "...",
"max_tokens": 200, "temperature": 0.2, "tags": {...}, "project": "..."}) or one prompt per
line; '-' reads stdin. Options give the defaults for every item. Results go to stdout or
--output as they finish, one JSON object per item. Running the same batch again (same file,
same options) skips the items already answered instead of paying twice, and reports them
with "skipped": true. Exit code: 0 when every item succeeded, else that of the first failed
item; 130 when interrupted.

--prompt NAME[@VERSION|@LABEL] runs a saved prompt for every item: each JSON line gives its
variables as {"id": "a1", "vars": {"topic": "..."}} (a plain line fills the template's only
variable), and every call records the prompt's name and version.
"""


def register(app: typer.Typer) -> None:
    app.command("batch", help=HELP)(batch)


def batch(
    ctx: typer.Context,
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="JSON lines or one prompt per line; '-' for stdin."),
    ],
    model: ModelOpt = None,
    system: Annotated[
        str | None, typer.Option("-s", "--system", help="System prompt for every item.")
    ] = None,
    prompt_ref: PromptRefOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    project: Annotated[
        str | None, typer.Option("-p", "--project", help="Project to record the calls under.")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="KEY=VALUE", help="Label every call (repeatable)."),
    ] = None,
    concurrency: ConcurrencyOpt = 4,
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", metavar="PATH", help="Write results here instead of stdout."
        ),
    ] = None,
    batch_id: Annotated[
        str | None,
        typer.Option(
            "--batch-id", help="Name the batch (default: derived from the file and options)."
        ),
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Answer identical requests from the ledger.",
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
) -> None:
    from ..calls.batch import BatchRunner, batch_id_for, parse_items
    from ..calls.engine import RunOptions
    from .options import parse_tags

    app_ctx = app_context(ctx)
    content = _read_input(file, app_ctx)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"{file} is not UTF-8 text.", "Convert it first, e.g. with iconv -t UTF-8."
        ) from None
    defaults = RunOptions(
        prompt="",
        model=model,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        project=project,
        tags=parse_tags(tag or []),
        cache=cache,
        force=force,
    )
    saved = None
    if prompt_ref is not None:
        saved = _saved_prompt(app_ctx, prompt_ref, system)
        defaults.prompt_name, defaults.prompt_version = saved.name, saved.version
    items = parse_items(text, defaults, saved)
    bid = batch_id or batch_id_for(content, defaults)
    _warn_unused(app_ctx, items)

    sink, close = _open_output(output, app_ctx)
    progress = Progress(app_ctx, len(items), bid)
    lock = threading.Lock()

    from ..outpath import reported

    def on_result(result: "ItemResult") -> None:
        # A full disk or device under -o is one sentence (exit 2), not an internal error.
        with lock, reported(output) if output else contextlib.nullcontext():
            sink.write(json.dumps(result.as_json(), ensure_ascii=False) + "\n")
            sink.flush()
            progress.advance(result)

    engine = app_ctx.engine()
    engine.notify = progress.note
    try:
        with progress:
            summary = BatchRunner(
                engine, items, bid, concurrency=concurrency, on_result=on_result
            ).run()
    finally:
        close()
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            app_ctx.deliver_alerts(engine)  # the results are written: alerts now, briefly
        engine.close()
    _report(app_ctx, summary)
    raise typer.Exit(summary.exit_code)


def _saved_prompt(app_ctx: AppContext, ref: str, system: str | None) -> "PromptVersion":
    from ..prompts import resolve_prompt

    if system is not None:
        raise UsageError(
            "--system and --prompt were both given.",
            "A saved prompt has its own system part; save a new version to change it.",
        )
    ledger = app_ctx.ledger(create=False)
    try:
        return resolve_prompt(ledger, ref)
    finally:
        if ledger is not None:
            ledger.close()


def _warn_unused(app_ctx: AppContext, items: "list[BatchItem]") -> None:
    """One warning per variable the saved prompt does not use, naming its first line."""
    lines: dict[str, list[int]] = {}
    for item in items:
        for name in item.unused:
            lines.setdefault(name, []).append(item.line)
    for name, numbers in lines.items():
        more = f" and {len(numbers) - 1} more" if len(numbers) > 1 else ""
        app_ctx.err(
            f"tokencli: warning: the saved prompt does not use the variable {name!r}"
            f" (line {numbers[0]}{more})."
        )


# The largest prompts file read (all its items are held at once); a longer input
# (an endless pipe, /dev/zero) is refused, not read whole.
MAX_BATCH_BYTES = 256 * 2**20


def _read_input(file: str, app_ctx: AppContext) -> bytes:
    data = _read_bounded(file, app_ctx)
    if len(data) > MAX_BATCH_BYTES:
        raise UsageError(
            f"{'stdin' if file == '-' else file} is larger than {MAX_BATCH_BYTES // 2**20} MiB.",
            "Split the prompts into smaller files.",
        )
    return data


def _read_bounded(file: str, app_ctx: AppContext) -> bytes:
    if file == "-":
        stream = app_ctx.streams.stdin
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            return bytes(buffer.read(MAX_BATCH_BYTES + 1))
        return str(stream.read(MAX_BATCH_BYTES + 1)).encode()
    try:
        with Path(file).open("rb") as handle:
            return handle.read(MAX_BATCH_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"No such file: {file}.", "Check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{file} is a directory.", "Give a file of prompts.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {file}: {exc.strerror}.", None) from None


def _open_output(output: str | None, app_ctx: AppContext) -> "tuple[TextIO, Callable[[], None]]":
    if output is None:
        return app_ctx.streams.stdout, lambda: None
    from ..outpath import plan_output

    plan_output(Path(output), append=True)  # a directory, or a path that cannot be read: refused
    try:
        handle = open(output, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise UsageError(f"Cannot write {output}: {exc.strerror}.", None) from None

    def close() -> None:
        with contextlib.suppress(OSError):  # a write that failed was reported already
            handle.close()

    return handle, close


class Progress:
    """A progress bar on a terminal's stderr; silence in a pipe (the summary still prints)."""

    def __init__(self, app_ctx: AppContext, total: int, batch_id: str) -> None:
        self.app_ctx = app_ctx
        self.total = total
        self.batch_id = batch_id
        self.failed = 0
        self._progress: Any = None
        self._task: Any = None
        if app_ctx.streams.stderr_isatty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=app_ctx.streams.stderr),
                transient=True,
            )

    def __enter__(self) -> "Progress":
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("batch", total=self.total, failed=0)
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, result: "ItemResult") -> None:
        self.failed += 0 if result.ok else 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=1, failed=self.failed)

    def note(self, message: str) -> None:
        if self._progress is not None:
            from ..safetext import visible

            self._progress.console.print(
                visible(f"tokencli: {message}"), markup=False, highlight=False
            )
        else:
            self.app_ctx.err(f"tokencli: {message}")


def _report(app_ctx: AppContext, summary: "BatchSummary") -> None:
    from ..money import format_money

    ok = sum(1 for r in summary.results if r.ok and not r.skipped)
    failed = summary.failed
    spent = (
        ", ".join(
            format_money(amount, currency)
            for currency, amount in summary.cost_by_currency().items()
        )
        or "nothing"
    )
    parts = [f"{ok} done"]
    if summary.skipped:
        parts.append(f"{summary.skipped} skipped (answered before)")
    if failed:
        parts.append(f"{len(failed)} failed")
    left = summary.total - len(summary.results)
    if left:
        parts.append(f"{left} not started")
    state = "interrupted" if summary.interrupted else "finished"
    app_ctx.err(
        f"tokencli: batch {summary.batch_id} {state}: {', '.join(parts)} of {summary.total}; spent {spent}."
    )
    for result in failed[:20]:
        app_ctx.err(f"tokencli:   line {result.item.line} ({result.item.key}): {result.error}")
    if len(failed) > 20:
        app_ctx.err(
            f"tokencli:   … and {len(failed) - 20} more (see the error objects in the output)."
        )
    if failed or summary.interrupted:
        app_ctx.err(
            "tokencli: run the same command again to retry what is left; answered items are skipped."
        )
