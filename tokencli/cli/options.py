"""Options used by several commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ModelOpt = Annotated[
    str | None,
    typer.Option("-m", "--model", help="PROVIDER:MODEL or an alias (default: [defaults] model)."),
]
ProviderFilterOpt = Annotated[str | None, typer.Option("--provider", help="Only this provider.")]
ModelFilterOpt = Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")]
ProjectFilterOpt = Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="From this date (YYYY-MM-DD, ISO time) or this long ago (30m, 12h, 7d, 2w)."
    ),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Before this date or time (same forms as --since).")
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
