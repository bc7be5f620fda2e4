"""The ledger: one SQLite file. This package is the only code that speaks SQL.

- `store`: opening (WAL, busy timeout, owner-only), migrations, writing and
  reading calls;
- `migrations`: the schema, as ordered append-only migrations.
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
