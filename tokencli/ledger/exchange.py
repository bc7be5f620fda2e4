"""The ledger as files: `ledger export` and `ledger import` without the command line.

- Export streams the finished calls as JSON lines or CSV (or all-time
  Prometheus counters) to a text stream, or to a path as `outpath` writes
  one (a regular file under a temporary name renamed over the target at the
  end, so a reader never sees half a backup; a device or FIFO in place); a
  name ending in `.gz` is compressed. Backups are
  owner-only (0600), Prometheus counters world-readable (0644).
- Import reads a file or stdin (gzip or not: the magic bytes decide), UTF-8
  and numbered by line for messages, and hands rows to `Ledger.import_rows`
  in chunks. Lines of calls the ledger already holds (or pruned) are only
  counted: their ids are looked up in batches on a read-only connection of
  the reader's own, so importing the same backup again reads ids, not calls.
  A big file is read in a second process while this one writes (`staging`).

Progress is a callback the caller passes (a count of calls); every message
for a person is the caller's, except those of the errors raised here, which
are `UsageError`s with a hint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import sqlite3

    from ..scope import Scope
    from ..window import Window
    from .store import ImportCounts, Ledger

PROGRESS_EVERY = 20_000  # exported calls between two progress reports
# Files this big are read and checked in a second process while this one writes.
PARALLEL_FROM_BYTES = 4 << 20
IMPORT_CHUNK = 20_000  # calls per transaction
_ID_BATCH = 2000  # lines whose ids are looked up at once


# ------------------------------------------------------------------ export


def export_calls(
    ledger: Ledger | None,
    scope: Scope,
    window: Window | None,
    *,
    fmt: str,
    with_text: bool,
    output: Path | None,
    stdout: IO[str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the finished calls in `scope` and `window` (None: all time) as `fmt`
    ("jsonl" or "csv"); how many there were.

    `progress` hears the count every `PROGRESS_EVERY` calls. No ledger: no calls.
    """
    from .file_formats import csv_rows, encode_jsonl
    from .transfer import export_rows

    counted = _Counted(progress)
    since, until = (window.start, window.end) if window else (None, None)
    rows = counted(
        export_rows(ledger._conn, scope, since=since, until=until, with_text=with_text)
        if ledger
        else iter(())
    )
    lines = (
        (encode_jsonl(row) + "\n" for row in rows)
        if fmt == "jsonl"
        else csv_rows(rows, with_text=with_text)
    )
    write_text(output, lines, stdout=stdout, mode=0o600)
    return counted.n


def export_prometheus(
    ledger: Ledger | None, *, now: datetime, output: Path | None, stdout: IO[str]
) -> None:
    """All-time counters per provider and model, in Prometheus' text format."""
    from .file_formats import prometheus_text
    from .transfer import model_totals

    totals = model_totals(ledger._conn) if ledger else []
    write_text(output, iter([prometheus_text(totals, now=now)]), stdout=stdout, mode=0o644)


class _Counted:
    """Pass rows through, counting them and reporting the count now and then."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.n = 0

    def __call__(self, rows: Iterator[Any]) -> Iterator[Any]:
        for row in rows:
            self.n += 1
            if self.progress is not None and self.n % PROGRESS_EVERY == 0:
                self.progress(self.n)
            yield row


def write_text(output: Path | None, chunks: Iterator[str], *, stdout: IO[str], mode: int) -> None:
    """Stream text to `stdout`, or to `output` as `outpath.open_output` writes a path
    (a regular file through a temporary name renamed at the end; a device or FIFO in
    place; a directory refused).

    A new or replaced file gets `mode` whatever the umask; a name ending in .gz is gzipped.
    """
    if output is None:
        for chunk in chunks:
            stdout.write(chunk)
        stdout.flush()
        return
    from ..outpath import open_output

    with open_output(output, mode=mode) as raw:
        if output.name.endswith(".gz"):
            import gzip

            with gzip.GzipFile(filename=output.name[:-3], mode="wb", fileobj=raw) as zipped:
                _copy(chunks, zipped)
        else:
            _copy(chunks, raw)


def _copy(chunks: Iterator[str], sink: Any) -> None:
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size > 1 << 20:
            sink.write("".join(pending).encode("utf-8"))
            pending, size = [], 0
    sink.write("".join(pending).encode("utf-8"))


# ------------------------------------------------------------------ import


@dataclass
class ImportSource:
    """An opened import: its numbered text lines, and what messages call it."""

    name: str  # "stdin", or the path as given
    lines: Iterator[tuple[int, str]]
    big: bool  # worth reading in a second process


def open_import(file: str, stdin: IO[Any]) -> ImportSource:
    """FILE (or stdin for "-") as numbered text lines, gunzipped when it is gzip.

    A file that cannot be opened is a UsageError now; one that turns out not
    to be UTF-8, or damaged, is one when its lines are read.
    """
    if file == "-":
        source: Any = getattr(stdin, "buffer", stdin)
    else:
        try:
            source = open(file, "rb")  # noqa: SIM115 - closed by the generator below
        except OSError as exc:
            raise UsageError(
                f"Cannot read {file}: {exc.strerror}.", "Give the path of a 'ledger export' file."
            ) from None
        if source.peek(2)[:2] == b"\x1f\x8b":
            import gzip

            source = gzip.GzipFile(fileobj=source, mode="rb")
    name = "stdin" if file == "-" else file
    return ImportSource(name, _decoded(source, name), _big_file(file))


def _big_file(file: str) -> bool:
    """Whether reading FILE is worth a second process (see `staging`)."""
    try:
        return file != "-" and os.stat(file).st_size >= PARALLEL_FROM_BYTES
    except OSError:
        return False


# The longest line an import reads (a call with its prompt and answer texts); a longer
# one (a file without newlines, /dev/zero, a decompression bomb) is refused, not read whole.
MAX_IMPORT_LINE = 64 * 2**20


def _lines(source: Any, name: str) -> Iterator[Any]:
    """The source's lines, each read with a bound."""
    number = 0
    while True:
        raw = source.readline(MAX_IMPORT_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_IMPORT_LINE:
            raise UsageError(
                f"{name} line {number} is longer than {MAX_IMPORT_LINE // 2**20} MiB.",
                "Give the JSON lines file that 'ledger export' wrote.",
            )
        yield raw


def _decoded(source: Any, name: str) -> Iterator[tuple[int, str]]:
    import gzip
    import zlib

    number = 0
    try:
        for number, raw in enumerate(_lines(source, name), 1):
            if isinstance(raw, str):
                yield number, raw
                continue
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError(
                    f"{name} line {number} is not UTF-8 text.",
                    "Give the JSON lines file that 'ledger export' wrote.",
                ) from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UsageError(
            f"Cannot read {name} after line {number}: {exc}.",
            "The file is damaged or cut short; export it again.",
        ) from None
    finally:
        if hasattr(source, "close") and name != "stdin":
            source.close()


def import_source(
    ledger: Ledger,
    source: ImportSource,
    *,
    progress: Callable[[ImportCounts], None] | None = None,
) -> ImportCounts:
    """Add the calls of `source` that the ledger does not hold yet (see `Ledger.import_rows`).

    A bad line stops the import after the calls before it: `ImportStopped`,
    with the counts so far and a UsageError that names the line.
    """
    from .file_formats import FormatError, decode_jsonl

    name = source.name

    def parsed(batch: list[tuple[int, str]]) -> Iterator[Any]:
        for number, line in batch:
            try:
                yield decode_jsonl(line)
            except FormatError as exc:
                raise UsageError(
                    f"{name} line {number} {exc}.",
                    "Fix or remove that line and import again: calls already imported are skipped.",
                ) from None

    def rows() -> Iterator[Any]:
        # Lines of calls the ledger already holds are counted, not parsed: importing
        # the same backup again (or another machine's whole ledger daily) reads ids only.
        known = _KnownIds(ledger.path)
        batch: list[tuple[int, str]] = []
        for number, line in source.lines:
            if line.strip():
                batch.append((number, line))
                if len(batch) >= _ID_BATCH:
                    yield from known.skip(batch, parsed)
                    batch = []
        yield from known.skip(batch, parsed)
        known.close()

    return ledger.import_rows(rows(), chunk=IMPORT_CHUNK, progress=progress, parallel=source.big)


class _KnownIds:
    """Reads which exported ids a ledger has, on a read-only connection of its own
    (opened where the rows are read: in the reader process when there is one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def skip(
        self,
        batch: list[tuple[int, str]],
        parsed: Callable[[list[tuple[int, str]]], Iterator[Any]],
    ) -> Iterator[Any]:
        from .file_formats import EXPORTED_ID
        from .store import Known
        from .transfer import known_ids

        if not batch:
            return
        if self.conn is None:
            import sqlite3

            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
        ids = [match.group(1) if (match := EXPORTED_ID.match(line)) else None for _, line in batch]
        present, pruned = known_ids(self.conn, [i for i in ids if i is not None])
        if not present and not pruned:
            yield from parsed(batch)
            return
        for (number, line), call_id in zip(batch, ids, strict=True):
            if call_id in present:
                yield Known(present=1)
            elif call_id in pruned:
                yield Known(pruned=1)
            else:
                yield from parsed([(number, line)])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
