"""`tokencli.ledger.exchange` without the CLI: export and import as library calls.

Ledgers are built through the ledger's own write paths; every expectation is
computed from the `Call` objects or written out by hand (see test_ledger_io.py
for the same behaviour through the command line).
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.test_ledger_io import call, make_ledger, snapshot, varied_calls
from tokencli.errors import UsageError
from tokencli.insights.outlook import build_forecast
from tokencli.insights.report import build_report
from tokencli.ledger import Ledger, staging
from tokencli.ledger import exchange as ex
from tokencli.ledger.file_formats import prometheus_text
from tokencli.ledger.retention import prune
from tokencli.ledger.store import ImportCounts, ImportStopped
from tokencli.scope import Scope
from tokencli.settings.loader import Currencies
from tokencli.window import resolve_period

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def opened(path: Path) -> Ledger:
    ledger = Ledger.open(path)
    assert ledger is not None
    return ledger


def three_calls() -> list:
    return [
        call(f"01JX{i:022d}", f"2026-01-0{i}T10:00:00.000000Z", cost=Decimal(i), currency="USD")
        for i in (1, 2, 3)
    ]


def export_to(ledger: Ledger | None, output: Path | None, **kw: object) -> tuple[int, str]:
    stdout = io.StringIO()
    kw.setdefault("fmt", "jsonl")
    kw.setdefault("with_text", True)
    n = ex.export_calls(ledger, Scope(), None, output=output, stdout=stdout, **kw)  # type: ignore[arg-type]
    return n, stdout.getvalue()


def import_from(ledger: Ledger, file: str, stdin: object = None, **kw: object) -> ImportCounts:
    return ex.import_source(ledger, ex.open_import(file, stdin or io.StringIO()), **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ export


@pytest.mark.parametrize("name", ["backup.jsonl", "backup.jsonl.gz"])
def test_a_file_export_round_trips_through_import(tmp_path, name):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    calls = varied_calls()
    make_ledger(source, calls)
    output = tmp_path / name
    ledger = opened(source)
    n, printed = export_to(ledger, output)
    assert printed == ""
    finished = sum(c.status != "pending" for c in calls)
    assert n == finished
    assert output.stat().st_mode & 0o777 == 0o600
    raw = output.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")  # gzip chosen by the name alone
    into = opened(target)
    assert import_from(into, str(output)) == ImportCounts(finished, 0, 0)
    assert snapshot(target) == snapshot(source)
    # Again: every id is already there, so nothing is parsed or written.
    assert import_from(into, str(output)) == ImportCounts(0, finished, 0)


def test_export_to_stdout_and_the_count_it_reports(monkeypatch):
    monkeypatch.setattr(ex, "PROGRESS_EVERY", 2)
    ledger = Ledger.open_memory()
    ledger.import_calls([*three_calls(), call("01JX9", "2026-01-09T00:00:00.000000Z")])
    heard: list[int] = []
    n, printed = export_to(ledger, None, progress=heard.append)
    assert n == 4
    assert heard == [2, 4]
    assert [json.loads(line)["id"] for line in printed.splitlines()] == [
        "01JX0000000000000000000001",
        "01JX0000000000000000000002",
        "01JX0000000000000000000003",
        "01JX9",
    ]


def test_export_without_a_ledger_writes_no_calls(tmp_path):
    assert export_to(None, None) == (0, "")
    n, _ = export_to(None, None, fmt="csv", with_text=False)
    assert n == 0
    output = tmp_path / "m.prom"
    ex.export_prometheus(None, now=NOW, output=output, stdout=io.StringIO())
    assert output.read_text() == prometheus_text([], now=NOW)
    assert output.stat().st_mode & 0o777 == 0o644


def test_write_text_sets_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        ex.write_text(tmp_path / "open.prom", iter(["x\n"]), stdout=io.StringIO(), mode=0o644)
    finally:
        os.umask(old)
    old = os.umask(0)
    try:
        ex.write_text(tmp_path / "own.jsonl", iter(["y\n"]), stdout=io.StringIO(), mode=0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "open.prom").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "own.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    output = tmp_path / "backup.jsonl"
    output.write_text("the old backup\n")

    def chunks() -> Iterator[str]:
        yield "a new line\n" * 200_000  # past the first flush to the temporary file
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.write_text(output, chunks(), stdout=io.StringIO(), mode=0o600)
    assert output.read_text() == "the old backup\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.jsonl"]


def test_an_unwritable_output_is_a_usage_error(tmp_path):
    output = tmp_path / "missing" / "backup.jsonl"
    with pytest.raises(UsageError) as caught:
        ex.write_text(output, iter(["x"]), stdout=io.StringIO(), mode=0o600)
    assert caught.value.message == f"Cannot write {output}: No such file or directory."
    assert caught.value.hint == "Check the --output path."


# ------------------------------------------------------------------ import


def test_import_from_stdin_text_or_bytes(tmp_path):
    source = Ledger.open_memory()
    source.import_calls(three_calls())
    _, text = export_to(source, None)
    for stdin in (io.StringIO(text), io.TextIOWrapper(io.BytesIO(text.encode()))):
        into = opened(tmp_path / f"{id(stdin)}.db")
        opened_source = ex.open_import("-", stdin)
        assert (opened_source.name, opened_source.big) == ("stdin", False)
        assert ex.import_source(into, opened_source) == ImportCounts(3, 0, 0)


def test_known_lines_are_counted_without_being_parsed(tmp_path):
    ledger = opened(tmp_path / "l.db")
    ledger.import_calls(three_calls())
    prune(ledger, "2026-01-02T00:00:00.000000Z")  # the first call goes
    backup = tmp_path / "b.jsonl"
    backup.write_text(
        # Broken after the id: it would not parse, but its id is all the reader needs.
        '{"v":1,"id":"01JX0000000000000000000001", not json\n'
        '{"v":1,"id":"01JX0000000000000000000002", not json either\n'
        "\n"
    )
    assert import_from(ledger, str(backup)) == ImportCounts(0, 1, 1)


def test_a_bad_line_stops_after_the_calls_before_it(tmp_path):
    source = Ledger.open_memory()
    source.import_calls(three_calls())
    _, text = export_to(source, None)
    lines = text.splitlines(keepends=True)
    backup = tmp_path / "b.jsonl"
    backup.write_text(lines[0] + lines[1] + "{oops\n" + lines[2])
    ledger = opened(tmp_path / "l.db")
    with pytest.raises(ImportStopped) as caught:
        import_from(ledger, str(backup))
    assert caught.value.counts == ImportCounts(2, 0, 0)
    error = caught.value.error
    assert isinstance(error, UsageError)
    assert error.message.startswith(f"{backup} line 3 ")
    assert error.hint == (
        "Fix or remove that line and import again: calls already imported are skipped."
    )
    assert ledger.count_calls() == 2


def test_unreadable_input_is_a_usage_error_with_its_line(tmp_path):
    with pytest.raises(UsageError) as caught:
        ex.open_import(str(tmp_path / "nope.jsonl"), io.StringIO())
    assert (
        caught.value.message == f"Cannot read {tmp_path / 'nope.jsonl'}: No such file or directory."
    )

    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b"\n\n caf\xe9\n")
    with pytest.raises(ImportStopped) as stopped:
        import_from(opened(tmp_path / "a.db"), str(latin))
    assert stopped.value.error.message == f"{latin} line 3 is not UTF-8 text."

    cut = tmp_path / "cut.jsonl.gz"
    whole = gzip.compress(b" \n" * 100_000)  # blank lines: read, never parsed
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImportStopped) as stopped:
        import_from(opened(tmp_path / "b.db"), str(cut))
    assert stopped.value.error.message.startswith(f"Cannot read {cut} after line ")
    assert stopped.value.error.hint == "The file is damaged or cut short; export it again."


@pytest.mark.skipif(not staging.CAN_FORK, reason="this OS cannot fork")
def test_a_big_file_is_read_in_a_second_process(tmp_path, monkeypatch):
    used = []
    real = staging.staged_chunks

    def counted(*args, **kwargs):
        used.append(1)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(ex, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(ex, "IMPORT_CHUNK", 5)
    monkeypatch.setattr(staging, "staged_chunks", counted)
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    calls = varied_calls()
    make_ledger(source, calls)
    output = tmp_path / "backup.jsonl"
    export_to(opened(source), output)
    assert ex.open_import(str(output), io.StringIO()).big
    finished = sum(c.status != "pending" for c in calls)
    into = opened(target)
    progress: list[ImportCounts] = []
    assert import_from(into, str(output), progress=progress.append) == ImportCounts(finished, 0, 0)
    assert used
    assert progress[-1] == ImportCounts(finished, 0, 0)
    assert snapshot(target) == snapshot(source)


# ------------------------------------------------------------------ reads


def test_reports_and_forecasts_read_an_empty_ledger_in_memory():
    empty = Ledger.open_memory()
    tz = UTC
    period = resolve_period(now=NOW, tz=tz, month="2026-02")
    report = build_report(empty, period, tz, by=("day", "provider"), now=NOW)
    assert (report.totals.calls, report.totals.cost, report.groups) == (0, Decimal(0), [])
    assert (report.top_calls, report.models, report.busiest_hours) == ([], [], [])
    assert report.pruned_until is None
    forecast = build_forecast(empty, now=NOW, tz=tz, currencies=Currencies(), by=("model",))
    assert (forecast.total.spent, forecast.total.expected, forecast.groups) == (
        Decimal(0),
        Decimal(0),
        [],
    )
