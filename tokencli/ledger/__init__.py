"""The ledger: one SQLite file. This package is the only code that speaks SQL.

Its connection never leaves the package: the rest of tokencli calls the
`Ledger`'s methods and the functions here, which take a `Ledger`.

- `store`: opening (WAL, busy timeout, owner-only), writing and reading calls;
- `migrations`: the schema, as ordered append-only migrations;
- `rollups`: the hourly, daily and monthly totals kept beside the calls;
- `reads` and `report_queries`: what reports and forecasts read (`LedgerReader`);
- `exchange`, `file_formats`, `transfer`, `staging`: export and import as files;
- `retention`: pruning old calls; `ratelimits`: the shared rate-limit state.
- `recovery`: the journal of finished calls a full disk kept out of the ledger.

A new table (top-ups, balance snapshots, alerts, prompt versions, ...) gets its
own small module here, beside these: its migration in `migrations`, its reads
and writes as functions taking a `Ledger` (as `retention` and `ratelimits` do).
"""

from .store import (
    BUSY_TIMEOUT_S,
    CALL_COLUMNS,
    RESULT_COLUMNS,
    STATUSES,
    Call,
    Ledger,
    format_ts,
    host_name,
    parse_ts,
    pid_alive,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "CALL_COLUMNS",
    "RESULT_COLUMNS",
    "STATUSES",
    "Call",
    "Ledger",
    "format_ts",
    "host_name",
    "parse_ts",
    "pid_alive",
]
