"""The report's formats: each one parses, carries the model's exact figures and escapes
what users typed. Reports are built by hand, so these tests need no ledger."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from tokencli.insights.display import filled_daily
from tokencli.insights.formats import (
    BLOCKS,
    csv_header,
    daily_chart,
    md_escape,
    report_to_dict,
    to_csv,
    to_markdown,
)
from tokencli.insights.html import to_html
from tokencli.insights.model import (
    Group,
    HourStat,
    ModelStats,
    Period,
    Report,
    TopCall,
    Totals,
)
from tokencli.insights.svg import nice_ceiling

NOVEMBER = Period(
    datetime(2026, 10, 31, 23, tzinfo=UTC),
    datetime(2026, 11, 30, 23, tzinfo=UTC),
    "2026-11",
    "Europe/Berlin",
)
OCTOBER = Period(
    datetime(2026, 9, 30, 22, tzinfo=UTC),
    datetime(2026, 10, 31, 23, tzinfo=UTC),
    "2026-10",
    "Europe/Berlin",
)
SCRIPT = "<script>alert('x')</script>"


def totals(calls: int, cost: str, **extra: object) -> Totals:
    base: dict[str, object] = {
        "calls": calls,
        "ok": calls - 2,
        "errors": 1,
        "blocked": 0,
        "cached": 1,
        "input_tokens": calls * 1200,
        "cached_input_tokens": calls * 100,
        "output_tokens": calls * 340,
        "cost": Decimal(cost),
        "savings": Decimal("0.0031"),
        "duration_ms": calls * 900,
    }
    base.update(extra)
    return Totals(**base)  # type: ignore[arg-type]


def november(by: tuple[str, ...] = ("provider",), project: str = "blog") -> Report:
    """A month as the builder would report it: three providers, a previous month, a busy day."""
    groups = {
        ("provider",): [
            Group(("openai",), totals(40, "3.141592653589"), Decimal("2.5")),
            Group(("anthropic",), totals(25, "1.000000000001"), Decimal("0")),
            Group(("deepseek",), totals(12, "0.000450"), None),
        ],
        ("provider", "day"): [
            Group(("openai", "2026-11-01"), totals(3, "0.2"), None),
            Group(("openai", "2026-11-02"), totals(4, "0.33"), Decimal("0.1")),
            Group(("deepseek", "2026-11-02"), totals(1, "0.000001"), None),
        ],
        ("project",): [Group((project,), totals(77, "4.142043"), Decimal("3"))],
        (): [],
    }[by]
    daily = [(date(2026, 11, 1) + timedelta(days=i), Decimal(i % 5) / 7) for i in range(20)]
    daily[13] = (daily[13][0], Decimal("9.87654321"))  # the busiest day
    return Report(
        period=NOVEMBER,
        currency="USD",
        by=by,
        totals=totals(77, "4.142043", unpriced_calls=2),
        groups=groups,
        previous_period=OCTOBER,
        previous=totals(50, "3.0"),
        daily=daily,
        top_calls=[
            TopCall(
                "01JCALL1",
                "2026-11-14T09:12:03.250000Z",
                "openai",
                "gpt-4o",
                project,
                "ok",
                9000,
                1200,
                Decimal("0.0345"),
                5321,
            ),
            TopCall(
                "01JCALL2",
                "2026-11-03T22:01:00.000000Z",
                "anthropic",
                "claude|sonnet",
                None,
                "error",
                100,
                0,
                Decimal("0.0003"),
                None,
            ),
        ],
        models=[
            ModelStats(
                "openai",
                "gpt-4o",
                40,
                48000,
                13600,
                Decimal("3.141592653589"),
                Decimal("0.05100"),
                850,
                2100,
                4000,
            ),
            ModelStats(
                "deepseek",
                "deepseek-chat",
                12,
                14400,
                4080,
                Decimal("0.000450"),
                None,
                None,
                None,
                None,
            ),
        ],
        busiest_hours=[
            HourStat(9, 30, Decimal("1.5")),
            HourStat(14, 22, Decimal("0.75")),
            HourStat(23, 1, Decimal("0.001")),
        ],
        unconverted=[],
        generated_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    )


def empty() -> Report:
    return Report(period=NOVEMBER, currency="EUR", by=(), totals=Totals())


# --- JSON -------------------------------------------------------------------------------


def test_json_carries_the_models_exact_figures():
    report = november()
    doc = json.loads(json.dumps(report_to_dict(report), indent=2))
    assert doc["version"] == 1
    assert doc["period"] == {
        "start": "2026-10-31T23:00:00+00:00",
        "end": "2026-11-30T23:00:00+00:00",
        "label": "2026-11",
        "tz": "Europe/Berlin",
    }
    assert datetime.fromisoformat(doc["previous_period"]["start"]) == OCTOBER.start
    assert Decimal(doc["totals"]["cost"]) == report.totals.cost
    assert Decimal(doc["totals"]["price_per_1k"]) == report.totals.price_per_1k
    assert doc["totals"]["total_tokens"] == report.totals.total_tokens
    assert Decimal(doc["change"]) == report.change
    assert Decimal(doc["previous"]["cost"]) == Decimal("3")
    first = doc["groups"][0]
    assert first["key"] == {"provider": "openai"}
    assert Decimal(first["totals"]["cost"]) == Decimal("3.141592653589")
    assert Decimal(first["change"]) == report.groups[0].change
    # A zero or missing previous cost has no change to speak of.
    assert [g["change"] for g in doc["groups"][1:]] == [None, None]
    assert [g["previous_cost"] for g in doc["groups"][1:]] == ["0", None]
    assert [(d["date"], Decimal(d["cost"])) for d in doc["daily"]] == [
        (day.isoformat(), cost) for day, cost in report.daily
    ]
    assert doc["top_calls"][1]["project"] is None and doc["top_calls"][1]["duration_ms"] is None
    assert Decimal(doc["top_calls"][0]["cost"]) == Decimal("0.0345")
    assert doc["models"][1]["price_per_1k"] is None and doc["models"][0]["p99_ms"] == 4000
    assert doc["busiest_hours"][0] == {"hour": 9, "calls": 30, "cost": "1.5"}
    assert doc["generated_at"] == "2026-12-01T08:00:00+00:00"


def test_json_never_holds_a_float():
    def walk(value: object) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(json.dumps(report_to_dict(november()))))


def test_json_of_an_empty_report_and_two_dimensions():
    doc = report_to_dict(empty())
    assert doc["groups"] == [] and doc["previous"] is None and doc["change"] is None
    assert doc["totals"]["cost"] == "0" and doc["totals"]["price_per_1k"] is None
    doc = report_to_dict(november(("provider", "day")))
    assert doc["groups"][2]["key"] == {"provider": "deepseek", "day": "2026-11-02"}
    assert doc["groups"][2]["totals"]["cost"] == "0.000001"  # no exponent form


# --- CSV --------------------------------------------------------------------------------

FIGURES = [
    "calls", "ok", "errors", "input_tokens", "cached_input_tokens", "output_tokens",
    "total_tokens", "cost", "savings", "currency", "previous_cost", "change",
]  # fmt: skip


def test_csv_rows_are_the_groups_with_exact_values():
    report = november(("provider", "day"))
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert list(rows[0].keys()) == ["provider", "day", *FIGURES] == csv_header(report)
    assert [(r["provider"], r["day"]) for r in rows] == [g.key for g in report.groups]
    for row, group in zip(rows, report.groups, strict=True):
        assert int(row["calls"]) == group.totals.calls
        assert int(row["total_tokens"]) == group.totals.total_tokens
        assert Decimal(row["cost"]) == group.totals.cost
        assert Decimal(row["savings"]) == group.totals.savings
        assert row["currency"] == "USD"
    assert rows[0]["previous_cost"] == "" and rows[0]["change"] == ""
    assert Decimal(rows[1]["change"]) == Decimal("2.3")
    assert rows[2]["cost"] == "0.000001"


def test_csv_without_by_is_one_row_of_totals():
    report = november(())
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert len(rows) == 1 and list(rows[0]) == FIGURES
    assert Decimal(rows[0]["cost"]) == Decimal("4.142043")
    assert Decimal(rows[0]["previous_cost"]) == Decimal("3")
    assert Decimal(rows[0]["change"]) == report.change
    rows = list(csv.DictReader(io.StringIO(to_csv(empty()))))
    assert rows[0]["calls"] == "0" and rows[0]["cost"] == "0" and rows[0]["change"] == ""


def test_csv_quotes_what_needs_quoting():
    awkward = 'a, "quoted"\nproject'
    rows = list(csv.DictReader(io.StringIO(to_csv(november(("project",), project=awkward)))))
    assert rows[0]["project"] == awkward


# --- Markdown ---------------------------------------------------------------------------


def table_cells(line: str) -> list[str]:
    """A GFM table row's cells: split on pipes that are not backslash-escaped."""
    assert line.startswith("|") and line.endswith("|"), line
    return re.split(r"(?<!\\)\|", line[1:-1])


def tables(markdown: str) -> list[list[str]]:
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def test_markdown_tables_have_consistent_columns():
    text = to_markdown(november(("provider", "day"), project=SCRIPT))
    found = tables(text)
    assert len(found) == 4  # breakdown, models, top calls, busiest hours
    for table in found:
        widths = {len(table_cells(line)) for line in table}
        assert len(widths) == 1, table
        assert re.fullmatch(r"\|(-{3}:?\|)+", table[1]), table[1]
    assert found[0][0].startswith("| provider | day | calls |")
    assert "claude\\|sonnet" in text  # the pipe in a model name does not split its cell
    assert "<script>" not in text and "\\<script\\>" in text


def test_markdown_headline_and_sections():
    report = november()
    report.unconverted = ["CNY", "JPY"]
    text = to_markdown(report)
    assert text.startswith("# tokencli report: 2026-11\n")
    assert "2026-11-01 00:00 → 2026-12-01 00:00 Europe/Berlin" in text
    assert "- **Spend:** $4.14" in text
    assert "+38.1% (previous: $3.00)" in text  # 4.142043 / 3 - 1
    assert "CNY, JPY have no rate to USD" in text
    assert "2 calls have no known price" in text
    # The busiest hours come first.
    assert text.index("| 09:00 | 30 |") < text.index("| 14:00 | 22 |")
    assert "| deepseek:deepseek-chat | 12 | 18,480 | $0.000450 | — | — | — | — |" in text


def test_markdown_of_an_empty_report_has_no_empty_tables():
    text = to_markdown(empty())
    assert tables(text) == [] and "**Spend:** €0.00" in text and "Change" not in text


def test_md_escape_keeps_text_literal_and_on_one_line():
    assert md_escape("a|b*c_d`e\\f\ng") == "a\\|b\\*c\\_d\\`e\\\\f g"


# --- HTML -------------------------------------------------------------------------------

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Nesting(HTMLParser):
    """Fails on any non-void element closed out of order or left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def well_formed(document: str) -> Nesting:
    parser = Nesting()
    parser.feed(document)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    return parser


def svgs(document: str) -> list[ET.Element]:
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg\b.*?</svg>", document, re.S)]


def assert_self_contained(document: str) -> None:
    assert "<script" not in document.lower()
    for attr in re.findall(r"\b(?:src|href|action)\s*=\s*[\"']?([^\"' >]*)", document, re.I):
        raise AssertionError(f"a reference in a self-contained file: {attr}")
    without_ns = document.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_ns and "https://" not in without_ns
    assert "url(" not in document and "@import" not in document


@pytest.mark.parametrize(
    "report",
    [
        november(),
        november(("provider", "day")),
        november(("project",), project=SCRIPT),
        empty(),
        november(()),
    ],
    ids=["provider", "provider-day", "script-project", "empty", "no-by"],
)
def test_html_is_well_formed_and_self_contained(report):
    document = to_html(report)
    assert document.startswith('<!DOCTYPE html>\n<html lang="en">')
    well_formed(document)
    assert_self_contained(document)
    charts = svgs(document)
    assert charts and all(c.tag == "{http://www.w3.org/2000/svg}svg" for c in charts)


def test_html_escapes_user_strings():
    document = to_html(november(("project",), project=SCRIPT))
    assert SCRIPT not in document
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in document
    text = "".join(well_formed(document).text)
    assert SCRIPT in text  # shown to the reader as typed
    # In the chart too, where it is a label and a tooltip.
    labels = [el.text for chart in svgs(document) for el in chart.iter() if el.text]
    assert any(SCRIPT[:27] in label for label in labels)


def test_html_has_the_three_charts_and_the_tables():
    document = to_html(november())
    charts = svgs(document)
    assert [c.get("aria-label") for c in charts] == [
        "Spend per day",
        "Spend by provider",
        "Calls per hour of the day",
    ]
    ns = "{http://www.w3.org/2000/svg}"
    daily, by_provider, hours = charts
    day_bars = daily.findall(f"{ns}rect")
    assert len(day_bars) == 20
    heights = [float(bar.get("height", "0")) for bar in day_bars]
    assert heights.index(max(heights)) == 13  # the busiest day
    assert "2026-11-14: $9.88" in (day_bars[13].findtext(f"{ns}title") or "")
    assert len(hours.findall(f"{ns}rect")) == 24
    names = [t.text for t in by_provider.iter(f"{ns}text")]
    assert names[:2] == ["openai", "$3.14"]
    assert "Most expensive calls" in document and "01JCALL1" in document
    assert "claude|sonnet" in document and "+38.1%" in document


def test_html_breakdown_chart_groups_the_tail_as_other():
    report = november(("project",))
    report.groups = [Group((f"p{i:02d}",), totals(1, str(i + 1)), None) for i in range(14)]
    by_project = svgs(to_html(report))[1]
    names = [t.text for t in by_project.iter("{http://www.w3.org/2000/svg}text")][::2]
    assert names[0] == "p13" and names[-1] == "other (4)" and len(names) == 11
    # The four smallest: 1 + 2 + 3 + 4.
    assert [t.text for t in by_project.iter("{http://www.w3.org/2000/svg}text")][-1] == "$10.00"


@pytest.mark.parametrize(
    "daily",
    [
        [],
        [(date(2026, 11, 5), Decimal(0)), (date(2026, 11, 6), Decimal(0))],
        [(date(2026, 11, 5), Decimal("0.000000000001"))],
        [
            (date(2025, 1, 1) + timedelta(days=i), Decimal(i) * Decimal("12345.678"))
            for i in range(366)
        ],
        [(date(2026, 11, 1), Decimal("0.0001")), (date(2026, 11, 2), Decimal("9999999.99"))],
    ],
    ids=["none", "all-zero", "one-tiny-day", "366-days", "tiny-and-huge"],
)
def test_charts_cope_with_edge_data(daily):
    report = november()
    report.daily = daily
    document = to_html(report)
    well_formed(document)
    chart = svgs(document)[0]
    bars = chart.findall("{http://www.w3.org/2000/svg}rect")
    positive = [cost for _, cost in daily if cost > 0]
    if not positive:
        assert "No spend in this period." in ET.tostring(chart, encoding="unicode")
    else:
        assert len(bars) == len(filled_daily(report))
        for bar in bars:
            x, w = float(bar.get("x", "")), float(bar.get("width", ""))
            assert x >= 0 and x + w <= 720 and float(bar.get("height", "")) >= 0
    lines = daily_chart(report, width=60, height=6)
    assert all(len(line) == 60 for line in lines)


def test_nice_ceiling_is_round_and_not_below():
    for value in ("0.000123", "0.5", "1", "7.3", "1234567.89"):
        top, ticks = nice_ceiling(Decimal(value))
        assert top >= Decimal(value) and top.normalize().as_tuple().digits[0] in (1, 2, 5)
        assert ticks in (4, 5)


# --- terminal chart ---------------------------------------------------------------------


def bar_heights(lines: list[str], height: int, pad: int) -> list[int]:
    """Eighths of a cell per plot column, read back from the chart's rows."""
    plot = [line[pad + 2 :] for line in lines[:height]]
    return [sum(BLOCKS.index(row[col]) for row in plot) for col in range(len(plot[0]))]


@pytest.mark.parametrize("width,height", [(72, 8), (40, 4), (30, 1)])
def test_daily_chart_is_width_bounded_with_the_tallest_bar_on_the_max_day(width, height):
    report = november()
    lines = daily_chart(report, width=width, height=height)
    assert all(len(line) == width for line in lines)
    assert len(lines) == height + 2
    pad = lines[0].index("┤") - 1
    assert lines[0].startswith("$9.88".rjust(pad))  # the top label is the maximum
    assert lines[height].startswith("$0.00".rjust(pad) + " └")
    heights = bar_heights(lines, height, pad)
    assert max(heights) == height * 8
    slot = (len(lines[height].rstrip()) - pad - 2) // 20  # 20 days, same cells each
    tallest = [col for col, h in enumerate(heights) if h == max(heights)]
    assert {col // slot for col in tallest} == {13}
    assert "Nov 1" in lines[-1]


def test_daily_chart_sums_days_when_they_outnumber_columns_and_is_deterministic():
    report = november()
    report.daily = [(date(2025, 1, 1) + timedelta(days=i), Decimal(1)) for i in range(366)]
    report.daily[200] = (report.daily[200][0], Decimal(50))
    lines = daily_chart(report, width=50, height=5)
    assert lines == daily_chart(report, width=50, height=5)
    assert all(len(line) == 50 for line in lines) and len(lines) == 5 + 3
    assert lines[-1].strip() == "each bar: 9 days"
    pad = lines[0].index("┤") - 1
    heights = bar_heights(lines, 5, pad)
    assert heights.index(max(heights)) == 200 // 9
    assert lines[0].startswith("$58.00".rjust(pad))  # 8 ordinary days and the 50


def test_daily_chart_edge_cases():
    assert daily_chart(empty(), width=30) == ["No spend to chart in this period.".ljust(30)[:30]]
    report = empty()
    report.daily = [(date(2026, 11, 2), Decimal(0))]
    lines = daily_chart(report, width=30, height=3)
    assert all(len(line) == 30 for line in lines)
    assert not any(ch in "".join(lines) for ch in BLOCKS[1:])  # nothing spent, nothing drawn
    report.daily = [(date(2026, 11, 2), Decimal("0.000004"))]
    lines = daily_chart(report, width=30, height=3)
    assert "█" in lines[0] and "€0.00000400" in lines[0]
    report.daily = [(date(2026, 1, 1) + timedelta(days=i), Decimal(1)) for i in range(40)]
    lines = daily_chart(report, width=20, height=1)  # the narrowest: 13 columns for 40 days
    assert all(len(line) == 20 for line in lines) and lines[-1].strip() == "each bar: 4 days"
    assert lines[0].rstrip() == "€4.00 ┤██████████"
    with pytest.raises(ValueError):
        daily_chart(report, width=19)


def test_unconverted_currencies_are_named_in_every_format():
    report = november()
    report.unconverted = ["CNY", "JPY"]
    assert report_to_dict(report)["unconverted"] == ["CNY", "JPY"]
    note = "Amounts in CNY, JPY have no rate to USD and are not in the spend."
    assert note in to_markdown(report)
    assert f'<p class="warn">{note}</p>' in to_html(report)
    assert "Amounts in" not in to_html(november())


def test_without_a_previous_period_there_is_no_change_anywhere():
    report = november(())
    report.previous_period, report.previous = None, None
    doc = report_to_dict(report)
    assert doc["previous_period"] is None and doc["previous"] is None and doc["change"] is None
    row = next(csv.DictReader(io.StringIO(to_csv(report))))
    assert row["previous_cost"] == "" and row["change"] == ""
    assert "Change" not in to_markdown(report)
    document = to_html(report)
    well_formed(document)
    assert "no previous period" in document and "+38.1%" not in document
