"""The one CSV writer: every CSV tokencli writes (`report --format csv`,
`ledger export --format csv`) goes through `CsvWriter`.

- Text cells a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
  `@`, tab or carriage return: OWASP's CSV-injection list) get a leading `'`,
  which spreadsheets hide, so the cell shows the text as it was. A text that
  already starts with `'` gets one too, so the escape can always be undone
  (`restore_text`): strip one leading `'` when there is one.
- Numbers stay numbers: an int or Decimal cell, or a `Number` (the exact text of
  a number, as money is written), is written as it is, so `-3.5` in a cost column
  is still -3.5 in a spreadsheet. A `Number` that is not a number is text.
- A cell holding a comma, a quote, a CR or a LF is quoted, so a value can never
  break a row (Python's csv module leaves a lone CR bare when rows end in LF).
- Rows end in LF, for pipes and `cut`; spreadsheets read them too.

`ledger import` reads JSON lines only, never CSV: CSV is for spreadsheets and
people, JSON lines are the backup format.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from decimal import Decimal

# OWASP's formula starters, and the escape's own mark so that it can be undone.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class Number(str):
    """A cell known to hold the exact text of a number (say `-3.5`): written as is."""

    __slots__ = ()


Cell = str | int | Decimal | None


def text_cell(value: str) -> str:
    """A text cell as written: formula-looking text neutralised (see the module doc)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def restore_text(cell: str) -> str:
    """The text a text cell of ours was written from (undoes `text_cell`)."""
    return cell[1:] if cell.startswith("'") else cell


def cell_text(value: Cell) -> str:
    """One cell's text before quoting: numbers as they are, text neutralised, None empty."""
    if value is None:
        return ""
    if type(value) is Number:
        return value if _NUMBER.fullmatch(value) else text_cell(value)
    if isinstance(value, str):
        return text_cell(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class CsvWriter:
    """Rows of cells to CSV lines (see the module doc)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        # CRLF as the writer's terminator makes it quote cells holding a CR or a LF;
        # each row's own CRLF is then cut to LF.
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, cells: Iterable[Cell]) -> str:
        """One row, with its LF."""
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._writer.writerow([cell_text(c) for c in cells])
        return buffer.getvalue()[:-2] + "\n"

    def text(self, rows: Iterable[Iterable[Cell]]) -> str:
        """Every row, as one string."""
        return "".join(self.line(row) for row in rows)
