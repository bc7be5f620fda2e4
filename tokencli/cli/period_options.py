"""The period and filter options of report-like commands (report, forecast, ledger export)."""

from typing import Annotated

import typer

MonthOpt = Annotated[
    str | None, typer.Option("--month", help="A calendar month, YYYY-MM (default: this month).")
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since", help="From this date (YYYY-MM-DD, local), ISO time or duration ago (7d)."
    ),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Up to this date or time (same forms as --since).")
]
LastOpt = Annotated[
    str | None,
    typer.Option("--last", help="The last 24h, 7d (today and 6 days before), 4w or 3mo."),
]
TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz", help="Time zone for days and months (IANA name; default: this machine's)."
    ),
]
TagFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tag", help="Only calls with this KEY=VALUE tag (repeatable).", metavar="KEY=VALUE"
    ),
]
