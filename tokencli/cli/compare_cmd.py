"""`tokencli compare`: prompts × models side by side, offline or live; saved, listed, shown."""

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import ExitCode, UsageError
from .context import AppContext, app_context
from .options import ConcurrencyOpt, ForceOpt, JsonOpt, MaxTokensOpt, TemperatureOpt

if TYPE_CHECKING:
    from ..ledger.comparisons import SavedComparison
    from ..prompts import PromptVersion

HELP = """Compare prompts across models: tokens, cost and answers, side by side.

'compare A B [C…] -m MODEL [-m MODEL…]' is short for 'compare run …' (write 'compare run'
when the first column is the word run, list or show). 'compare list' and 'compare show ID'
redisplay saved comparisons.
"""

RUN_HELP = """Compare prompts across models: tokens, cost and answers, side by side.

Each column is '@FILE' or the path of a file (its text), NAME or NAME@VERSION (a saved
prompt version), or else the text itself. {{name}} in a text is a variable (--var,
--vars-file); an --input file's text fills {{input}}, or is appended after a blank line.

Offline (the default): the input tokens of every column on every model's own tokenizer
(estimated, and marked ~, where there is none), the difference against the first column,
and the cost of 1,000 runs: input exactly, output from the ledger's history of that prompt
version or model (else --max-tokens, else assumed). No call is made; --exact asks
Anthropic's and Gemini's free count-tokens endpoints instead of estimating.

Live (--live or --runs N): every column on every model for every input, N times each,
concurrently within rate limits; each call is an ordinary ledger row tagged compare=ID.
Shows tokens, cost and latency (mean ± sd), the answers side by side, and the difference
against the first column with a 95% interval. Above [defaults] compare_confirm_above
(default $0.10 projected) it asks first, or needs --yes without a terminal. Ctrl-C keeps
what finished; 'compare --resume ID' runs the rest.
"""


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"


FormatOpt = Annotated[
    Format | None, typer.Option("--format", "-f", help="Output format (default: text).")
]


class DefaultRunGroup(TyperGroup):
    """`compare A B …` runs `compare run A B …`: the first word is a column, not a sub-command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="compare",
    help=HELP,
    cls=DefaultRunGroup,
    no_args_is_help=True,
    subcommand_metavar="[run] COLUMN... -m MODEL | list | show ID",
)


@app.command("run", help=RUN_HELP)
def run(
    ctx: typer.Context,
    columns: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="COLUMN...",
            help="Two or more: a text, @FILE, a path, or NAME[@VERSION].",
            show_default=False,
        ),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "-m",
            "--model",
            help="PROVIDER:MODEL or an alias (repeatable; default: [defaults] model).",
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live/--offline", help="Make the calls, or only count (default).")
    ] = False,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="Count Anthropic and Gemini models with their free count-tokens endpoints.",
        ),
    ] = False,
    runs: Annotated[
        int | None,
        typer.Option("--runs", min=1, max=1000, help="Runs of each cell (implies --live)."),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", metavar="KEY=VALUE", help="A template variable (repeatable)."),
    ] = None,
    vars_file: Annotated[
        Path | None,
        typer.Option(
            "--vars-file", metavar="PATH", help="JSON lines: one input's variables per line."
        ),
    ] = None,
    input_files: Annotated[
        list[Path] | None,
        typer.Option("--input", metavar="FILE", help="An input text, as {{input}} (repeatable)."),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option("-s", "--system", help="System prompt for text and file columns."),
    ] = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    concurrency: ConcurrencyOpt = 4,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Run without asking, whatever it is projected to cost."),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="ID", help="Run what a live comparison has left."),
    ] = None,
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    from ..compare.columns import build_inputs, parse_var, parse_vars_file, resolve_columns
    from ..compare.core import Spec

    app_ctx = app_context(ctx)
    chosen = _format(fmt, json_out)
    settings = app_ctx.settings
    if resume is not None:
        if columns:
            raise UsageError(
                "--resume takes the columns from the saved comparison.",
                "Drop the COLUMN arguments.",
            )
        _resume(app_ctx, resume, concurrency, yes, chosen, exact, force=force)
        return
    refs = list(columns or [])
    cols = resolve_columns(refs, lookup=lambda ref: _prompt_version(app_ctx, ref))
    if system is not None:
        from dataclasses import replace

        cols = [c if c.kind == "prompt" else replace(c, system=system) for c in cols]
    variables = dict(parse_var(v) for v in var or [])
    lines = parse_vars_file(_read(vars_file), str(vars_file)) if vars_file else []
    files = [(str(f), _read(f)) for f in input_files or []]
    model_list = list(dict.fromkeys(models or []))
    if not model_list:
        saved_models = [c.model for c in cols if c.model]
        model_list = list(dict.fromkeys(saved_models)) or [settings.defaults.model]
    spec = Spec(
        columns=cols,
        models=model_list,
        inputs=build_inputs(variables, lines, files),
        runs=runs or 1,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    unused = spec.unused_variables()
    if unused:
        app_ctx.err(f"tokencli: no column uses {', '.join(sorted(unused))}.")
    is_live = live or runs is not None
    _compare(app_ctx, spec, None, is_live, concurrency, yes, chosen, exact=exact, force=force)


def _compare(
    app_ctx: AppContext,
    spec: "Any",
    resume_of: "SavedComparison | None",
    is_live: bool,
    concurrency: int,
    yes: bool,
    chosen: Format,
    *,
    exact: bool = False,
    force: bool = False,
) -> None:
    from ..compare.core import (
        EndpointCounter,
        estimate,
        offline_results,
        projected_cost,
        resolve_models,
    )
    from ..ids import new_id
    from ..ledger import format_ts
    from ..ledger.comparisons import SavedComparison, save

    settings = app_ctx.settings
    targets = resolve_models(settings, spec.models)
    now = app_ctx.now()
    history = app_ctx.ledger(create=False)
    counter = EndpointCounter(settings) if exact else None
    try:
        estimates = estimate(settings, spec, targets, history, now, counter)
    finally:
        if counter is not None:
            counter.close()
        if history is not None:
            history.close()
    notes = sorted({n for e in estimates for n in e.notes})
    for note in notes:
        app_ctx.err(f"tokencli: {note}")
    compare_id = resume_of.id if resume_of else new_id()
    ts = resume_of.ts if resume_of else format_ts(now)
    ledger = app_ctx.ledger()
    assert ledger is not None
    try:
        if not is_live:
            saved = SavedComparison(
                compare_id,
                ts,
                "offline",
                "complete",
                spec.as_json(),
                offline_results(spec, estimates, currencies=app_ctx.settings.currencies),
            )
            save(ledger, saved)
            _render(app_ctx, saved, chosen)
            return
        projected, known = projected_cost(spec, estimates, app_ctx.settings.currencies)
        total = len(spec.plan())
        left = total
        if resume_of is not None:  # only what is left is paid for again
            left -= len(_answered(ledger, compare_id))
            projected = projected * left / total
        _confirm(app_ctx, left, estimates, projected, known, yes)
        # Saved before the first call, so even a killed run can be resumed.
        previous = resume_of.results if resume_of else None
        save(
            ledger,
            SavedComparison(compare_id, ts, "live", "interrupted", spec.as_json(), previous),
        )
    finally:
        ledger.close()
    _run_live(app_ctx, spec, estimates, compare_id, ts, concurrency, chosen, force=force)


def _answered(ledger: "Any", compare_id: str) -> set[str]:
    from ..ledger.comparisons import item_calls

    calls = item_calls(ledger, compare_id)
    return {k for k, c in calls.items() if c.status in ("ok", "cached")}


def _confirm(
    app_ctx: AppContext, runs: int, estimates: "Any", projected: "Any", known: bool, yes: bool
) -> None:
    from ..money import format_money

    currency = app_ctx.settings.currencies.report  # compare_confirm_above is in it too
    amount = format_money(projected, currency)
    about = f"{runs} calls, projected {amount}" + ("" if known else " (some models unpriced)")
    limit = app_ctx.settings.defaults.compare_confirm_above
    if yes or projected <= limit:
        app_ctx.err(f"tokencli: comparing: {about}.")
        return
    threshold = format_money(limit, currency)
    if not app_ctx.streams.stdin_isatty:
        raise UsageError(
            f"This comparison makes {about}, above compare_confirm_above ({threshold}).",
            "Pass --yes to run it, or fewer --runs, inputs or models.",
        )
    app_ctx.streams.stderr.write(f"tokencli: this comparison makes {about}. Run it? [y/N] ")
    app_ctx.streams.stderr.flush()
    answer = app_ctx.streams.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        app_ctx.err("tokencli: nothing was run.")
        raise typer.Exit(int(ExitCode.USAGE))


def _run_live(
    app_ctx: AppContext,
    spec: "Any",
    estimates: "Any",
    compare_id: str,
    ts: str,
    concurrency: int,
    chosen: Format,
    *,
    force: bool = False,
) -> None:
    from ..compare.core import LiveRunner, RunDone, live_results
    from ..ledger.comparisons import SavedComparison, item_calls, save

    ledger = app_ctx.ledger()
    assert ledger is not None
    try:
        answered = _answered(ledger, compare_id)
    finally:
        ledger.close()
    failures: list[RunDone] = []

    def on_done(done: RunDone) -> None:
        if done.error is not None:
            failures.append(done)

    engine = app_ctx.engine()
    try:
        interrupted = LiveRunner(
            engine, spec, compare_id, concurrency=concurrency, on_done=on_done, force=force
        ).run(answered)
    finally:
        engine.close()
    ledger = app_ctx.ledger()
    assert ledger is not None
    try:
        calls = item_calls(ledger, compare_id)
        results = live_results(spec, estimates, calls, currencies=app_ctx.settings.currencies)
        done = all(k in calls and calls[k].status in ("ok", "cached") for k, *_ in spec.plan())
        status = "complete" if done else "interrupted" if interrupted else "failed"
        saved = SavedComparison(compare_id, ts, "live", status, spec.as_json(), results)
        save(ledger, saved)
    finally:
        ledger.close()
    _render(app_ctx, saved, chosen)
    for failure in failures[:10]:
        app_ctx.err(f"tokencli: run {failure.key} failed: {failure.error}")
    if status != "complete":
        app_ctx.err(
            f"tokencli: comparison {compare_id} is {status}; "
            f"'tokencli compare --resume {compare_id}' runs what is left."
        )
        raise typer.Exit(
            int(ExitCode.INTERRUPTED) if interrupted else (failures[0].exit_code if failures else 5)
        )


def _resume(
    app_ctx: AppContext,
    ref: str,
    concurrency: int,
    yes: bool,
    chosen: Format,
    exact: bool,
    *,
    force: bool = False,
) -> None:
    from ..compare.core import Spec

    saved = _saved(app_ctx, ref)
    if saved.mode != "live":
        raise UsageError(
            f"Comparison {saved.id} was offline: there is nothing to resume.",
            "Run it again with --live.",
        )
    spec = Spec.from_json(saved.spec)
    _compare(app_ctx, spec, saved, True, concurrency, yes, chosen, exact=exact, force=force)


def _read(path: Path | str) -> str:
    from ..compare.columns import _read_text

    return _read_text(str(path))


def _format(fmt: Format | None, json_out: bool) -> Format:
    if json_out and fmt not in (None, Format.json):
        raise UsageError(f"--json and --format {fmt.value if fmt else ''} disagree; give one.")
    return Format.json if json_out else (fmt or Format.text)


def _render(app_ctx: AppContext, saved: "SavedComparison", chosen: Format) -> None:
    from ..compare import render

    if chosen is Format.json:
        from ..results import ComparisonResult
        from .output import emit_result

        emit_result(app_ctx.streams, ComparisonResult(saved))
        return
    text = {
        Format.text: render.to_text,
        Format.markdown: render.to_markdown,
        Format.html: render.to_html,
    }[chosen](saved)
    app_ctx.streams.stdout.write(text)
    app_ctx.streams.stdout.flush()


@app.command("list")
def list_(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many to show.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """Saved comparisons, newest first."""
    from ..ledger.comparisons import recent

    app_ctx = app_context(ctx)
    found: list[SavedComparison] = app_ctx.read_ledger(lambda ledger: recent(ledger, n), [])
    if json_out:
        from ..results import ComparisonList
        from .output import emit_result

        emit_result(app_ctx.streams, ComparisonList(found))
        return
    out = app_ctx.streams.stdout
    if not found:
        out.write('No comparisons yet. Try: tokencli compare "Say hi." "Greet me." -m mock:echo\n')
        out.flush()
        return
    rows = [
        [
            s.id,
            s.ts[:16].replace("T", " "),
            s.mode,
            s.status,
            " | ".join(
                c["ref"] if len(c["ref"]) <= 24 else c["ref"][:23] + "…" for c in s.spec["columns"]
            ),
            ", ".join(s.spec["models"]),
        ]
        for s in found
    ]
    from ..compare.render import _columns

    header = ["id", "when (UTC)", "mode", "status", "columns", "models"]
    for line in _columns(header, rows, left=len(header)):
        out.write(line + "\n")
    out.flush()


@app.command("show")
def show(
    ctx: typer.Context,
    compare_id: Annotated[
        str, typer.Argument(metavar="ID", help="A comparison id (or its first characters).")
    ],
    fmt: FormatOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a saved comparison again: its table and answers (--format markdown or html too)."""
    app_ctx = app_context(ctx)
    chosen = _format(fmt, json_out)
    _render(app_ctx, _saved(app_ctx, compare_id), chosen)


def _saved(app_ctx: AppContext, ref: str) -> "SavedComparison":
    """The saved comparison `ref` names (an unknown one is a usage error)."""
    from ..ledger.comparisons import get

    ledger = app_ctx.ledger(create=False)
    if ledger is None:
        raise UsageError(f"No comparison with id {ref!r}.", "The ledger is empty.")
    try:
        return get(ledger, ref)
    finally:
        ledger.close()


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="compare")


def _prompt_version(app_ctx: AppContext, ref: str) -> "PromptVersion":
    """A saved prompt version for a `NAME[@VERSION|@LABEL]` column."""
    from ..prompts import resolve_prompt

    return resolve_prompt(app_ctx.ledger(create=False), ref)
