"""`tokencli count`: offline token count and input-cost estimate for a text and a model."""

from typing import TYPE_CHECKING, Annotated

import typer

from .context import AppContext, app_context
from .options import JsonOpt, ModelOpt
from .output import emit_result

if TYPE_CHECKING:
    from ..pricing.counting import TokenCount

COUNT_HELP = """Count the input tokens of a text for a model, offline, and price them.

TEXT is the argument, or text piped on stdin, or both (as with run). It is counted
as the chat run would send: the system prompt and TEXT as a user message, with the
model's chat format. Local models use their own tokenizer and chat template (no torch
needed), OpenAI models their real encoding; others get an estimate, labelled as such.
"""


def register(app: typer.Typer) -> None:
    app.command("count", help=COUNT_HELP)(count)


def count(
    ctx: typer.Context,
    text: Annotated[
        str | None,
        typer.Argument(help="The text (or the instruction, with stdin).", show_default=False),
    ] = None,
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("-s", "--system", help="System prompt.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Count the text alone, without the chat format.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    from ..pricing.counting import count_text
    from .run_cmd import read_prompt

    app_ctx = app_context(ctx)
    body = read_prompt(text, app_ctx.streams)
    result = count_text(
        app_ctx.settings, model, body, system=system, raw=raw, when=app_ctx.clock.now()
    )
    render_count(app_ctx, result, json_out)


def count_lines(result: "TokenCount") -> list[str]:
    from ..money import format_money

    label = "estimated" if result.usage_source == "estimated" else "counted"
    cost = format_money(result.cost.amount, result.cost.currency)
    return [
        f"{result.input_tokens:,} input tokens for {result.ref} ({label}: {result.method})",
        f"input cost {cost} ({result.cost.source})",
    ]


def render_count(app_ctx: AppContext, result: "TokenCount", json_out: bool) -> None:
    for note in result.notes:
        app_ctx.err(f"tokencli: {note}")
    if json_out:
        from ..results import CountResult

        emit_result(app_ctx.streams, CountResult(result))
        return
    from ..safetext import visible

    out = app_ctx.streams.stdout
    for line in count_lines(result):
        out.write(visible(line) + "\n")
    out.flush()
