"""`tokencli run`: one prompt, streamed to stdout, recorded in the ledger."""

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CallFailed, UsageError
from .context import AppContext, Streams, app_context
from .options import (
    ForceOpt,
    JsonOpt,
    MaxTokensOpt,
    ModelOpt,
    PromptRefOpt,
    TemperatureOpt,
    VarOpt,
    VarsFileOpt,
    parse_tags,
)
from .output import emit_result

if TYPE_CHECKING:
    from ..calls.resolve import RunOptions
    from ..ledger import Call

RUN_HELP = """Run one prompt and record the call.

The prompt is the PROMPT argument, or text piped on stdin, or both: then PROMPT is
the instruction and stdin the material (sent as the material, a blank line, then
the instruction). Only the model's text goes to stdout.

--prompt NAME runs a saved prompt instead, its variables filled with --var KEY=VALUE
(--var text=- reads stdin); its saved model and parameters apply unless -m,
--max-tokens or --temperature say otherwise, and the call records its name and version.
"""


def register(app: typer.Typer) -> None:
    app.command("run", help=RUN_HELP)(run)


def run(
    ctx: typer.Context,
    prompt: Annotated[
        str | None,
        typer.Argument(help="The prompt (or the instruction, with stdin).", show_default=False),
    ] = None,
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("-s", "--system", help="System prompt.")] = None,
    prompt_ref: PromptRefOpt = None,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    project: Annotated[
        str | None, typer.Option("-p", "--project", help="Project to record the call under.")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag", help="KEY=VALUE label on the call (repeatable).", metavar="KEY=VALUE"
        ),
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer instead of streaming it.")
    ] = False,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
    usage: Annotated[
        bool,
        typer.Option(
            "-u",
            "--usage",
            help="Print tokens and cost on stderr (default when stderr is a terminal).",
        ),
    ] = False,
    price_as: Annotated[
        str | None,
        typer.Option(
            "--price-as",
            metavar="PROVIDER:MODEL",
            help="Price a mock or self-hosted call as this model would cost.",
        ),
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option(
            "--cache/--no-cache",
            help="Answer an identical earlier request from the ledger (default: the provider's cache setting).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show what would be sent, its tokens and input cost; call nothing."
        ),
    ] = False,
) -> None:
    from ..calls.resolve import RunOptions
    from .render import usage_line

    app_ctx = app_context(ctx)
    streams = app_ctx.streams
    if prompt_ref is None and (var or vars_file):
        raise UsageError(
            "--var and --vars-file fill a saved prompt's variables.", "Add --prompt NAME."
        )
    text = read_prompt(prompt, streams) if prompt_ref is None else ""
    options = RunOptions(
        prompt=text,
        model=model,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        stream=not no_stream,
        project=project,
        tags=parse_tags(tag or []),
        price_as=price_as,
        cache=cache,
        force=force,
    )
    if prompt_ref is not None:
        options = saved_prompt_options(app_ctx, options, prompt_ref, prompt, var, vars_file)
        text = options.prompt
    if dry_run:
        _dry_run(app_ctx, options, json_out)
        return
    printer = TextPrinter(streams, enabled=not json_out)
    engine = app_ctx.engine()
    try:
        try:
            result = engine.run(options, printer.write)
        except CallFailed as failed:
            printer.finish()
            _after_failure(app_ctx, failed.call, json_out, usage)
            raise
        except Exception:
            printer.finish()
            raise
        printer.finish()
        if json_out:
            from ..results import CallResult

            emit_result(streams, CallResult(result.call, text=result.text))
        if usage or streams.stderr_isatty:
            app_ctx.err(usage_line(result.call))
    finally:
        # Alerts go out after the answer is printed, within a short total timeout.
        if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
            app_ctx.deliver_alerts(engine)
        engine.close()


def saved_prompt_options(
    app_ctx: AppContext,
    options: "RunOptions",
    ref: str,
    prompt: str | None,
    var: list[str] | None,
    vars_file: str | None,
) -> "RunOptions":
    """`run --prompt`: the saved version rendered with the variables, recorded by name."""
    from pathlib import Path

    from ..prompts import apply_prompt, parse_vars, resolve_prompt

    if prompt is not None:
        raise UsageError(
            "A PROMPT argument and --prompt were both given.",
            "A saved prompt's text comes from its template: pass the text as a --var.",
        )
    if options.system is not None:
        raise UsageError(
            "--system and --prompt were both given.",
            "A saved prompt has its own system part; save a new version to change it.",
        )
    ledger = app_ctx.ledger(create=False)
    try:
        version = resolve_prompt(ledger, ref)
    finally:
        if ledger is not None:
            ledger.close()
    streams = app_ctx.streams
    variables = parse_vars(
        var or [],
        Path(vars_file) if vars_file else None,
        lambda: None if streams.stdin_isatty else _piped_text(streams),
    )
    filled, unused = apply_prompt(options, version, variables)
    for name in unused:
        app_ctx.err(f"tokencli: warning: {version.ref} does not use the variable {name!r}.")
    return filled


def _piped_text(streams: Streams) -> str | None:
    """Piped stdin as a variable's value, its final line end dropped; None when empty."""
    text = read_stdin_text(streams)
    return text.rstrip("\r\n") if text and text.strip() else None


def _dry_run(app_ctx: AppContext, options: "RunOptions", json_out: bool) -> None:
    """The request, counted and priced offline; no call, no ledger row."""
    from ..pricing.counting import dry_run
    from ..results import DryRunResult
    from .count_cmd import count_lines

    plan = dry_run(app_ctx.settings, options, when=app_ctx.clock.now())
    request, result = plan.request, plan.count
    for note in result.notes:
        app_ctx.err(f"tokencli: {note}")
    if json_out:
        prompt = (options.prompt_name, options.prompt_version) if options.prompt_name else None
        emit_result(app_ctx.streams, DryRunResult(plan, prompt))
        return

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    lines = [
        f"dry run: nothing was sent to {result.ref}"
        + (f" (alias {plan.alias})" if plan.alias else ""),
        f"max_tokens: {shown(request.max_tokens)} · temperature: {shown(request.temperature)}",
    ]
    if options.prompt_name:
        lines.append(f"saved prompt: {options.prompt_name}@{options.prompt_version}")
    if request.system:
        lines += ["--- system", request.system]
    lines += ["--- prompt", request.prompt_text, "---", *count_lines(result)]
    from ..safetext import visible

    out = app_ctx.streams.stdout
    out.write(visible("\n".join(lines), multiline=True) + "\n")
    out.flush()


def _after_failure(app_ctx: AppContext, call: "Call", json_out: bool, usage: bool) -> None:
    from .render import usage_line

    if json_out:
        from ..results import CallResult

        emit_result(app_ctx.streams, CallResult(call, text=call.response_text or ""))
    if usage or app_ctx.streams.stderr_isatty:
        app_ctx.err(usage_line(call))


class TextPrinter:
    """Writes the answer as it streams; ends it with a newline for the shell."""

    def __init__(self, streams: Streams, *, enabled: bool) -> None:
        self.out = streams.stdout
        self.enabled = enabled
        self.last = ""

    def write(self, text: str) -> None:
        if not self.enabled or not text:
            return
        self.out.write(text)
        self.out.flush()
        self.last = text[-1]

    def finish(self) -> None:
        if self.enabled and self.last and self.last != "\n":
            try:
                self.out.write("\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):
                pass
            self.last = "\n"


def read_prompt(prompt: str | None, streams: Streams) -> str:
    """PROMPT and/or piped stdin → the user message. Binary or empty input is refused."""
    material = None
    if not streams.stdin_isatty:
        material = read_stdin_text(streams)
    if prompt is not None and not prompt.strip():
        raise UsageError(
            "The prompt is empty.",
            "Give a non-empty PROMPT, or leave it out and pipe text on stdin.",
        )
    if material is not None and material.strip():
        return f"{material.rstrip()}\n\n{prompt}" if prompt else material
    if prompt:
        return prompt
    if material is not None:
        raise UsageError(
            "Stdin was empty and no PROMPT was given.",
            "Pipe some text, or pass the prompt as an argument.",
        )
    raise UsageError(
        "No prompt given.", 'Pass one as an argument (tokencli run "…") or pipe text on stdin.'
    )


def read_stdin_text(streams: Streams) -> str | None:
    stream = streams.stdin
    if stream is None or getattr(stream, "closed", False):
        return None
    buffer = getattr(stream, "buffer", None)
    try:
        data = (
            buffer.read()
            if buffer is not None
            else stream.read().encode("utf-8", "surrogateescape")
        )
    except (OSError, ValueError):
        return None
    if b"\x00" in data:
        raise UsageError(
            "Stdin holds binary data, not text.", "Pipe a text file, or convert it to text first."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            "Stdin is not UTF-8 text.", "Convert it first, e.g. with iconv -t UTF-8."
        ) from None
