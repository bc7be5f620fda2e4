"""The tokencli command line: the Typer app and its one error boundary.

Only `cli/` imports typer and rich. Commands parse, call the core, render.
"""

import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from .. import __version__
from ..errors import CallFailed, ExitCode, Interrupted, OutputError, ReaderGone, TokencliError
from .context import AppContext, Streams

HELP = """One interface for every AI model; every call's tokens and money in a local ledger.

Start with:  tokencli run -m mock:echo "hello"   then   tokencli logs
"""

# Command modules avoid `from __future__ import annotations`: typer would eval every
# string annotation of every command on each start.
# Each command module registers itself. Typer builds every registered command's
# parameters on each run (~1 ms per command), so main() registers only the
# command being run; the root --help lists commands from their summaries alone.
# name → (module, summary: the first paragraph of the command's help; a test
# keeps the two equal, and the root help identical to the full tree's).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("tokencli.cli.run_cmd", "Run one prompt and record the call."),
    "batch": (
        "tokencli.cli.batch_cmd",
        "Run every prompt in FILE and write results as JSON lines.",
    ),
    "logs": (
        "tokencli.cli.logs_cmd",
        "Recent calls from the ledger (newest first); 'logs show ID' for one call.",
    ),
    "ledger": ("tokencli.cli.ledger_cmd", "Export, import and prune the ledger's calls."),
    "models": (
        "tokencli.cli.models_cmd",
        "Known models with prices per million tokens and the source of each price.",
    ),
    "report": (
        "tokencli.cli.report_cmd",
        "Totals of calls, tokens and spend for a period, grouped as asked.",
    ),
    "forecast": (
        "tokencli.cli.forecast_cmd",
        "Spend projected to the end of this month, and the day each budget runs out.",
    ),
    "budget": (
        "tokencli.cli.budget_cmd",
        "Limits on spend or tokens per day, week or month: set them, see them, check them.",
    ),
    "refill": (
        "tokencli.cli.refill_cmd",
        "Prepaid credit: record top-ups and grants, see balances and runway, check them.",
    ),
    "reconcile": (
        "tokencli.cli.reconcile_cmd",
        "Check the ledger's cost per day and model against each provider's own accounting.",
    ),
    "compare": (
        "tokencli.cli.compare_cmd",
        "Compare prompts across models: tokens, cost and answers, side by side.",
    ),
    "count": (
        "tokencli.cli.count_cmd",
        "Count the input tokens of a text for a model, offline, and price them.",
    ),
    "prompt": (
        "tokencli.cli.prompt_cmd",
        "Save, version, label and share prompts: every version immutable, labels move.",
    ),
    "alerts": (
        "tokencli.cli.alerts_cmd",
        "See the alerts raised (each fires once) and test the channels they go to.",
    ),
    "serve": (
        "tokencli.cli.serve_cmd",
        "Run a local gateway that AI tools point their base URL at; every request is metered.",
    ),
    "config": ("tokencli.cli.config_cmd", "Set up tokencli and see where each setting comes from."),
    "keys": (
        "tokencli.cli.keys_cmd",
        "Store API keys in an owner-only file (environment variables win over it).",
    ),
    "completion": (
        "tokencli.cli.completion_cmd",
        "Print the shell completion script for bash, zsh or fish.",
    ),
}
GROUPS = {
    "logs",
    "ledger",
    "config",
    "keys",
    "prompt",
    "compare",
    "budget",
    "alerts",
    "refill",
    "serve",
}
_VALUE_OPTIONS = ("--config", "--db")
_HELP_ONLY: tuple[list[str], ...] = ([], ["--help"], ["-h"])


def _new_app() -> typer.Typer:
    app = typer.Typer(
        name="tokencli",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help renders in ~70 ms; rich help would double tokencli's start-up.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    app.callback()(root)
    return app


def build_app(only: str | None = None) -> typer.Typer:
    """The command tree: every command, or only the one named (with the root options)."""
    app = _new_app()
    for name, (module, _) in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(app)
    return app


def summary_app() -> typer.Typer:
    """Just enough of the tree for the root help: each command's name and summary."""
    app = _new_app()

    def stub() -> None:
        pass

    for name, (_, summary) in COMMANDS.items():
        if name in GROUPS:
            group = typer.Typer(name=name, help=summary)
            group.command("-", hidden=True)(stub)
            app.add_typer(group, name=name)
        else:
            app.command(name, help=summary)(stub)
    return app


def command_name(args: Sequence[str]) -> str | None:
    """The command an argument list runs, if it is a known one."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUE_OPTIONS:
            i += 2
        elif arg.startswith(tuple(f"{o}=" for o in _VALUE_OPTIONS)):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg if arg in COMMANDS else None
    return None


def _version(value: bool) -> None:
    if value:
        print(f"tokencli {__version__}")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Config file (overrides TOKENCLI_HOME and TOKENCLI_CONFIG).",
            metavar="PATH",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Ledger file (overrides TOKENCLI_HOME and TOKENCLI_DB).", metavar="PATH"
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    base = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    base.config_flag, base.db_flag = config, db
    ctx.obj = base


_STOPPED_BY = {
    "SIGTERM": "Terminated by SIGTERM.",
    "SIGHUP": "Stopped by SIGHUP: the terminal closed.",
}


def _on_stop_signal(signum: int, _frame: object) -> None:
    # Like Ctrl-C: the call in flight keeps its partial text and tokens (see calls.signals).
    raise Interrupted(_STOPPED_BY.get(signal.Signals(signum).name, "Terminated."))


def _handle_stop_signals() -> dict[int, object]:
    """SIGTERM and SIGHUP raise Interrupted (one ignored from the start, as under
    nohup, stays ignored); what was there before, to put back."""
    previous: dict[int, object] = {}
    for name in _STOPPED_BY:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _on_stop_signal)
    return previous


def main(argv: Sequence[str] | None = None, streams: Streams | None = None) -> None:
    """Entry point: run the app, turn every failure into one line and an exit code."""
    system = streams is None
    streams = streams or Streams.system()
    context = AppContext(streams=streams)
    args = list(sys.argv[1:] if argv is None else argv)
    real_stdout = sys.stdout
    if system:  # click's help and messages go through the same guarded stdout
        sys.stdout = streams.stdout
    try:
        code = _invoke(args, context)
        try:
            streams.stdout.flush()
        except (OSError, ValueError, TokencliError):
            _silence_stdout()
    finally:
        sys.stdout = real_stdout
    sys.exit(code)


def _invoke(args: list[str], context: AppContext) -> int:
    streams = context.streams
    previous = _handle_stop_signals() if _main_thread() else {}
    try:
        code = _run_app(args, context)
        streams.stdout.flush()  # a full device fails here, under the handlers below
        return code
    except TokencliError as exc:
        if isinstance(exc, Interrupted) and exc.quiet:
            _silence_stdout()
        else:
            if isinstance(exc, OutputError):  # the interpreter's last flush would fail again
                _silence_stdout()
            _report(streams, exc.message, exc.hint)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _report(streams, "Interrupted.", None)
        return int(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:  # click's usage errors
        return _usage_error(streams, exc)
    except BrokenPipeError as exc:
        # The reader went away (`| head`; 141, as SIGPIPE would) or stdout was closed
        # (`>&-`; 130): nothing more to say to it.
        _silence_stdout()
        return int(ExitCode.BROKEN_PIPE if isinstance(exc, ReaderGone) else ExitCode.INTERRUPTED)
    except Exception as exc:
        failure = _ledger_failure(exc, context)
        if failure is not None:
            _report(streams, failure.message, failure.hint)
            return int(failure.exit_code)
        if os.environ.get("TOKENCLI_DEBUG"):
            raise
        from ..redact import redact

        _report(
            streams,
            f"Internal error: {type(exc).__name__}: {redact(str(exc))[:300]}.",
            "This is a bug in tokencli; run with TOKENCLI_DEBUG=1 for a traceback and report it.",
        )
        return int(ExitCode.BUG)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _run_app(args: list[str], context: AppContext) -> int:
    _check_text(args)
    app = summary_app() if args in _HELP_ONLY else build_app(command_name(args))
    try:
        result = app(args=args, prog_name="tokencli", standalone_mode=False, obj=context)
    except CallFailed as failed:
        # The call is recorded (and shown, with --json); report what ended it.
        raise failed.error from None
    return result if isinstance(result, int) else 0


def _check_text(args: list[str]) -> None:
    """Arguments that are not UTF-8 arrive with lone surrogates (Python's surrogateescape):
    nothing can store, send or print them, so they are refused here, once."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            from ..errors import UsageError
            from ..safetext import visible

            raise UsageError(
                f"The argument '{visible(arg)}' is not valid UTF-8 text.",
                "Pass text and paths in UTF-8.",
            ) from None


def _ledger_failure(exc: Exception, context: AppContext) -> TokencliError | None:
    """A SQLite error that escaped the ledger's own handling (a damaged page met by a
    read) as the ledger's sentence and exit 6; None for anything else."""
    if type(exc).__module__ != "sqlite3":
        return None
    from ..ledger.store import ledger_failure

    try:
        path = context.settings.paths.db
    except Exception:
        return None
    return ledger_failure(path, exc)  # type: ignore[arg-type]


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _usage_error(streams: Streams, exc: typer.TyperException) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        streams.stdout.write(exc.format_message() + "\n")
        return 0
    command = ctx.command_path if ctx is not None else "tokencli"
    message = exc.format_message().strip().rstrip(".")
    _report(streams, f"{message}.", f"See '{command} --help'.")
    return int(getattr(exc, "exit_code", ExitCode.USAGE) or ExitCode.USAGE)


def _report(streams: Streams, message: str, hint: str | None) -> None:
    from ..redact import redact
    from ..safetext import visible

    text = f"tokencli: {message}" + (f" {hint}" if hint else "")
    try:
        print(visible(redact(text)), file=streams.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed, or its terminal hung up
        pass


def _silence_stdout() -> None:
    # Point stdout at devnull so the interpreter's final flush cannot fail again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # AttributeError: stdout was closed (None)
        pass
