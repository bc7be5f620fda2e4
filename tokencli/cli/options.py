"""Options used by several commands, defined once: the period and filter set among them.

Every command that takes a period or a filter (logs, report, forecast, ledger
export, ledger prune) declares it with these, so the flags, their help and
their grammar (tokencli.window) are the same everywhere.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..scope import Scope
    from ..window import Window

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Call even past a blocking budget's limit (the call records it was forced)."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("-m", "--model", help="PROVIDER:MODEL or an alias (default: [defaults] model)."),
]

# ------------------------------------------------------------------ saved prompts

PromptRefOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        metavar="NAME[@VERSION|@LABEL]",
        help="Run a saved prompt (see 'tokencli prompt'): its latest version, a version or a label.",
    ),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        metavar="KEY=VALUE",
        help="A variable for --prompt's template (repeatable); KEY=- reads stdin.",
    ),
]
VarsFileOpt = Annotated[
    str | None,
    typer.Option(
        "--vars-file",
        metavar="PATH",
        help="Variables for --prompt: a JSON object or KEY=VALUE lines (--var wins).",
    ),
]

MaxTokensOpt = Annotated[
    int | None, typer.Option("--max-tokens", min=1, help="Most tokens per answer.")
]


def finite(value: float | None) -> float | None:
    """A float option's check: nan passes every range (its comparisons are all false)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


TemperatureOpt = Annotated[
    float | None,
    typer.Option("--temperature", min=0.0, max=2.0, callback=finite, help="Sampling temperature."),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("-c", "--concurrency", min=1, max=64, help="Calls in flight at once.")
]

# ------------------------------------------------------------------ filters (a Scope)

ProviderFilterOpt = Annotated[str | None, typer.Option("--provider", help="Only this provider.")]
ModelFilterOpt = Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")]
ProjectFilterOpt = Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")]
PromptFilterOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt", help="Only calls of this prompt: NAME (every version) or NAME@VERSION."
    ),
]


class Status(StrEnum):
    pending = "pending"
    ok = "ok"
    error = "error"
    interrupted = "interrupted"
    blocked = "blocked"
    cached = "cached"


StatusFilterOpt = Annotated[
    Status | None, typer.Option("--status", help="Only calls with this status.")
]
TagFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag", help="Only calls with this KEY=VALUE tag (repeatable).", metavar="KEY=VALUE"
    ),
]

# ------------------------------------------------------------------ periods (a Window)

SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="From this date (YYYY-MM-DD, local), ISO time, or this long ago:"
        " 30min, 12h, 7d, 2w, 3mo, 1y.",
    ),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Up to this date or time (same forms as --since).")
]
MonthOpt = Annotated[
    str | None, typer.Option("--month", help="A calendar month, YYYY-MM (default: this month).")
]
LastOpt = Annotated[
    str | None,
    typer.Option(
        "--last",
        help="The last 30min, 24h, 7d (today and 6 days before), 4w, 3mo (this month and"
        " 2 before) or 1y.",
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz", help="Time zone for days and months (IANA name; default: this machine's)."
    ),
]
OlderThanOpt = Annotated[
    str,
    typer.Option(
        "--older-than",
        help="Delete calls older than this: 180d, 26w, 6mo or 1y (counted back from today,"
        " whole UTC days).",
    ),
]


def parse_tags(values: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--tag {value!r} is not KEY=VALUE.", "e.g. --tag client=acme.")
        tags[key] = val.strip()
    return tags


def scope_from(
    provider: str | None = None,
    model: str | None = None,
    project: str | None = None,
    tag: list[str] | None = None,
    *,
    prompt: str | None = None,
    status: Status | None = None,
) -> Scope:
    """The filter options as a Scope (a bad --tag or --prompt is a UsageError here)."""
    from ..scope import Scope

    scope = Scope(
        provider=provider,
        model=model,
        project=project,
        tags=tuple(parse_tags(tag or []).items()),
        prompt=prompt,
        status=status.value if status else None,
    )
    scope.prompt_parts  # noqa: B018 - checks NAME@VERSION before any query runs
    return scope


def window_from(
    now: datetime,
    *,
    tz: str | None,
    month: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
) -> Window:
    """The period options as a Window in --tz: this month when none is given."""
    from ..window import resolve_period, zone

    return resolve_period(now=now, tz=zone(tz), month=month, since=since, until=until, last=last)
