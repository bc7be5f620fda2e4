"""The one CSV writer (`tokencli.csvout`): formula-looking text neutralised in every CSV
tokencli writes, numbers kept numbers, rows never broken; JSON lines round-trip any text."""

from __future__ import annotations

import csv
import io
import itertools
import json
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokencli.calls.usage import Usage
from tokencli.csvout import CsvWriter, Number, cell_text, restore_text, text_cell
from tokencli.ledger import Ledger
from tokencli.ledger.store import Call, format_ts

FORMULA = ("=", "+", "-", "@", "\t", "\r")
# Text a hostile import, flag or provider could put in a cell. No NUL: no door lets one
# into a label (arguments cannot hold it; `ledger import` refuses it, see test_import_refuses_nul).
# No lone surrogates: they are not text (arguments and imports refuse them, tested elsewhere).
hostile = st.text(
    alphabet=st.sampled_from(list("=+-@'\t\r\n\",; aZ1.\u2028é"))
    | st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
_ids = itertools.count()


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@given(st.lists(st.lists(hostile, min_size=1, max_size=5), min_size=1, max_size=5))
def test_any_text_makes_one_row_per_line_and_comes_back(rows):
    writer = CsvWriter()
    text = writer.text(rows)
    parsed = parse(text)
    assert len(parsed) == len(rows)  # a CR or LF in a value never breaks a row
    assert [[restore_text(c) for c in row] for row in parsed] == rows
    assert not any(c.startswith(FORMULA) for row in parsed for c in row)


@given(hostile)
def test_the_escape_is_undone_exactly(value):
    assert restore_text(text_cell(value)) == value
    assert not text_cell(value).startswith(FORMULA)


def test_numbers_stay_numbers_and_only_text_is_neutralised():
    assert cell_text(Number("-3.5")) == "-3.5"
    assert cell_text(Decimal("-3.5")) == "-3.5"
    assert cell_text(-12) == "-12"
    assert cell_text("-3.5") == "'-3.5"  # the same characters in a text column are text
    assert cell_text(Number("-1+cmd|' /C calc'!A0")) == "'-1+cmd|' /C calc'!A0"
    assert cell_text("'quoted'") == "''quoted'"
    assert cell_text(None) == ""
    assert CsvWriter().line(["a\rb", Number("1")]) == '"a\rb",1\n'


def _ledger_with(path: Path, projects: list[str], tags: list[str], costs: list[Decimal]) -> None:
    ledger = Ledger.open(path)
    assert ledger is not None
    now = format_ts(datetime.now(UTC))
    for project, tag, cost in zip(projects, tags, costs, strict=True):
        ledger.insert_call(
            Call(
                id=f"01CSV{next(_ids):021d}",
                ts=now,
                provider="p",
                model="m",
                status="ok",
                project=project,
                tags={"team": tag},
                usage=Usage(input_tokens=3, output_tokens=2),
                cost=cost,
                currency="USD",
            )
        )
    ledger.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(hostile.filter(lambda s: s.strip()), hostile),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.decimals(min_value=-5, max_value=5, places=2), min_size=4, max_size=4),
)
def test_no_cell_of_report_csv_starts_with_a_formula_character(cli, groups, costs):
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "l.db"
        _ledger_with(db, [p for p, _ in groups], [t for _, t in groups], costs[: len(groups)])
        result = cli("--db", str(db), "report", "--by", "project,tag:team", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    header, *rows = parse(result.stdout)
    assert len(rows) == len({(p, t) for p, t in groups})  # no row broken by a CR or LF
    cost = header.index("cost")
    for row in rows:
        for i, cell in enumerate(row):
            if i == cost:
                Decimal(cell)  # a number, even when negative
            else:
                assert not cell.startswith(FORMULA), (header[i], cell)
    assert {(restore_text(r[0]), restore_text(r[1])) for r in rows} == set(groups)


def test_a_negative_cost_stays_a_number_in_both_csvs(cli, home):
    _ledger_with(home / "ledger.db", ["-x"], ["=t"], [Decimal("-3.5")])
    export = parse(cli("ledger", "export", "--format", "csv").stdout)
    columns = export[0]
    row = dict(zip(columns, export[1], strict=True))
    assert row["cost"] == "-3.5" and row["project"] == "'-x"
    report = parse(cli("report", "--by", "project", "--format", "csv").stdout)
    row = dict(zip(report[0], report[1], strict=True))
    assert row["cost"] == "-3.5" and row["project"] == "'-x"


def test_a_carriage_return_never_breaks_a_ledger_export_row(cli, home):
    _ledger_with(home / "ledger.db", ["a\rb", "c\nd", "e\r\nf"], ["x", "y", "z"], [Decimal(1)] * 3)
    rows = parse(cli("ledger", "export", "--format", "csv").stdout)
    assert len(rows) == 4
    project = rows[0].index("project")
    assert sorted(r[project] for r in rows[1:]) == ["a\rb", "c\nd", "e\r\nf"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile, hostile, hostile)
def test_any_text_round_trips_export_then_import(cli, project, tag, response):
    """`ledger import` reads JSON lines (CSV is for spreadsheets): any text comes back exact."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, backup = Path(tmp) / "a.db", Path(tmp) / "b.db", Path(tmp) / "x.jsonl"
        ledger = Ledger.open(src)
        assert ledger is not None
        call = Call(
            id=f"01RT{next(_ids):022d}",
            ts=format_ts(datetime.now(UTC)),
            provider="p",
            model="m",
            status="ok",
            project=project,
            tags={"k": tag},
            response_text=response,
        )
        ledger.insert_call(call)
        ledger.close()
        assert cli("--db", str(src), "ledger", "export", "-o", str(backup)).exit_code == 0
        result = cli("--db", str(dst), "ledger", "import", str(backup))
        assert result.exit_code == 0, result.stderr
        back = Ledger.open(dst)
        assert back is not None
        got = back.get_call(call.id)
        back.close()
    assert (got.project, got.tags, got.response_text) == (project, {"k": tag}, response)


def test_import_refuses_nul_in_a_label(cli, home, tmp_path):
    """SQLite's text functions stop at a NUL: a tag holding one would be reported as another."""
    line = {
        "v": 1, "id": "01JZZZZZZZZZZZZZZZZZZZZZNUL", "ts": "2026-11-10T00:30:00.000000Z",
        "provider": "openai", "model": "gpt-4o-mini", "status": "ok", "host": "h", "pid": 1,
        "tags": {"team": "a\x00b"}, "response_text": "kept\x00as it came",
    }  # fmt: skip
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(line) + "\n", "utf-8")
    result = cli("ledger", "import", str(path))
    assert result.exit_code != 0
    assert 'has "tags" with a NUL character' in result.stderr
    del line["tags"]
    path.write_text(json.dumps(line) + "\n", "utf-8")
    assert cli("ledger", "import", str(path)).exit_code == 0  # a text may hold one
