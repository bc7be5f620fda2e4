"""Rendering: one table model shown as a rich table on a terminal, as plain
aligned text in a pipe, and JSON with --json. Data to stdout, the rest to stderr."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .context import Streams

if TYPE_CHECKING:
    from ..results import Result


@dataclass(frozen=True)
class Column:
    header: str
    justify: str = "left"  # left | right


def json_text(result: Result) -> str:
    """The one JSON rendering of a --json document."""
    import json

    return json.dumps(result.document(), ensure_ascii=False, indent=2, default=_json_default) + "\n"


def emit_result(streams: Streams, result: Result) -> None:
    streams.stdout.write(json_text(result))
    streams.stdout.flush()


def _json_default(value: Any) -> Any:
    # Results hold JSON values already; this keeps a stray Decimal or datetime
    # (say, in a provider's `extra`) from failing the whole document.
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def render_table(
    streams: Streams,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
) -> None:
    # Every cell can hold a value from a flag, an import or a provider: control
    # characters are shown escaped (and, on a terminal, never read as rich markup).
    from ..safetext import visible

    columns = [Column(visible(c.header), c.justify) for c in columns]
    rows = [[visible(cell) for cell in row] for row in rows]
    if streams.stdout_isatty:
        _rich_table(streams, columns, rows, title and visible(title))
    else:
        _plain_table(streams, columns, rows)


def _plain_table(
    streams: Streams, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    """Aligned columns, two spaces apart: readable, and easy for awk and cut."""
    widths = [len(c.header) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (cell, col) in enumerate(zip(cells, columns, strict=True)):
            last = i == len(columns) - 1
            if col.justify == "right":
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if last else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    write = streams.stdout.write
    write(line([c.header for c in columns]) + "\n")
    for row in rows:
        write(line(row) + "\n")
    streams.stdout.flush()


def _rich_table(
    streams: Streams, columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Text, not markup: a project named "[bold red]x[/]" prints as those characters.
    table = Table(
        title=Text(title) if title else None, box=None, header_style="bold", pad_edge=False
    )
    for col in columns:
        table.add_column(Text(col.header), justify=col.justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console(file=streams.stdout).print(table)


def local_time(ts: str) -> str:
    """Ledger UTC text → local `YYYY-MM-DD HH:MM:SS`."""
    from ..ledger import parse_ts

    return parse_ts(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def count(n: int) -> str:
    return f"{n:,}"


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"
