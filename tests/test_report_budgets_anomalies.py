"""`report` in every format: the budgets of the period with their state, and its spike days
(listed, and marked on the daily charts). CSV has no sections, so it stays as it was."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.test_json_contract import check, declared
from tokencli.alerts.rules import spike_median
from tokencli.calls.usage import Usage
from tokencli.ids import new_id
from tokencli.insights.formats import daily_chart, report_to_dict
from tokencli.insights.report import build_report
from tokencli.ledger import Call, Ledger, format_ts
from tokencli.settings.loader import Currencies
from tokencli.window import resolve_period

NOW = "2026-12-05T12:00:00Z"
CONFIG = """\
[currency]
report = "USD"

[alerts]
spike_factor = 4

[budgets.monthly]
amount = 50
period = "month"
block = true

[budgets.volume]
tokens = 1000
period = "day"
provider = "openai"
"""
# 14 quiet days of history, then November: $1 a day, $3.50 on the 10th (under 4 × the
# median), $5 on the 18th (above it: the one spike).
SPEND = {
    **{date(2026, 10, 17) + timedelta(days=i): Decimal(1) for i in range(45)},
    date(2026, 11, 10): Decimal("3.5"),
    date(2026, 11, 18): Decimal(5),
}


def _calls() -> list[Call]:
    calls = []
    for day, cost in SPEND.items():
        when = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        calls.append(
            Call(
                id=new_id(int(when.timestamp() * 1000)),
                ts=format_ts(when),
                provider="openai",
                model="gpt-4o-mini",
                status="ok",
                host="elsewhere",
                usage=Usage(input_tokens=100, output_tokens=50),
                cost=cost,
                currency="USD",
                duration_ms=500,
            )
        )
    return calls


def _seed(home: Path, config: str = CONFIG) -> None:
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    ledger.import_calls(_calls())
    ledger.close()
    write_config(home, config)


@pytest.fixture
def november(cli, home, monkeypatch):
    _seed(home)
    monkeypatch.setenv("TOKENCLI_NOW", NOW)

    def run(*args: str) -> str:
        result = cli("report", "--month", "2026-11", "--tz", "UTC", *args)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    return run


def test_spike_median_is_the_rule_budget_check_uses():
    ones = [Decimal(1)] * 14
    assert spike_median(ones, Decimal(5), Decimal(4)) == 1
    assert spike_median(ones, Decimal(4), Decimal(4)) is None  # above, not at
    assert spike_median([Decimal(0)] * 13 + [Decimal(2)], Decimal(7), Decimal(3)) == 2
    assert spike_median([Decimal(0)] * 14, Decimal(7), Decimal(3)) is None  # no history
    assert spike_median(ones, Decimal(0), Decimal(3)) is None
    assert spike_median(ones, Decimal(9), Decimal(0)) is None  # the rule is off


def test_json_lists_the_spike_day_and_the_budgets_as_the_month_left_them(november):
    doc = json.loads(november("--json"))
    assert check(doc, declared()["tokencli.report/1"]) == []
    assert doc["anomalies"] == [
        {"date": "2026-11-18", "cost": "5", "median": "1", "factor": "5", "threshold": "4"}
    ]
    assert doc["budgets"] == [
        {
            "name": "monthly",
            "scope": "all",
            "period": "month",
            "window": "2026-11",
            "unit": "USD",
            "limit": "50",
            "spent": "36.5",  # 28 × $1 + $3.50 + $5
            "percent": "73",
            "crossed": [50],
            "block": True,
        },
        {
            "name": "volume",
            "scope": "provider=openai",
            "period": "day",
            "window": "2026-11-30",  # the last day of the period, not today
            "unit": "tokens",
            "limit": "1000",
            "spent": "150",
            "percent": "15",
            "crossed": [],
            "block": False,
        },
    ]


def test_table_markdown_and_html_list_both_sections(november):
    table = november("--chart")
    assert "\nBudgets\n" in table and "\nAnomalies\n" in table
    row = next(line for line in table.splitlines() if line.startswith("2026-11-18"))
    assert row.split() == ["2026-11-18", "$5.00", "$1.00", "5.0×"]
    assert "monthly (blocks)" in table and "$36.50" in table and "73.0%" in table
    # The chart marks the spike's bar, and says what the mark means.
    chart = table[table.index("Daily spend") : table.index("\nBudgets")]
    assert chart.count("!") == 2 and "! spend above 4× the trailing 14-day median" in chart

    markdown = november("--format", "markdown")
    assert "## Budgets" in markdown and "## Anomalies" in markdown
    assert "| 2026-11-18 | $5.00 | $1.00 | 5.0× |" in markdown
    assert (
        "| volume | provider=openai | 1,000 tokens / day | 2026-11-30 | 150 tokens | 15.0% | — |"
        in (markdown)
    )

    html = november("--format", "html")
    assert "<h2>Budgets</h2>" in html and "<h2>Anomalies</h2>" in html
    svg = ET.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    rects = [
        r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{*}title") is not None
    ]
    spiked = [r for r in rects if r.get("fill") == "#d1242f"]
    assert len(rects) == 30 and len(spiked) == 1
    assert spiked[0].findtext("{*}title") == (
        "2026-11-18: $5.00 (spike: above 4× the 14-day median, $1.00)"
    )


def test_csv_has_no_sections_and_stays_as_it_was(november):
    assert november("--format", "csv").splitlines()[0].startswith("calls,ok,errors")


def test_no_budgets_and_no_spikes_mean_no_sections(cli, home, monkeypatch):
    _seed(home, '[currency]\nreport = "USD"\n[alerts]\nspike_factor = 6\n')
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("report", "--month", "2026-11", "--tz", "UTC", "--json")
    doc = json.loads(result.stdout)
    assert doc["budgets"] == [] and doc["anomalies"] == []
    for args in (("--chart",), ("--format", "markdown"), ("--format", "html")):
        text = cli("report", "--month", "2026-11", "--tz", "UTC", *args).stdout
        assert "Budgets" not in text and "Anomalies" not in text and "#d1242f" not in text
    assert "!" not in cli("report", "--month", "2026-11", "--tz", "UTC", "--chart").stdout


def test_a_budget_whose_window_misses_the_period_is_left_out(cli, home, monkeypatch):
    _seed(home)
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-20T18:00:00Z")
    # January has not begun: November's windows do not overlap it.
    doc = json.loads(cli("report", "--month", "2027-01", "--json").stdout)
    assert doc["budgets"] == [] and doc["anomalies"] == []
    # This month's report: the budgets as they stand now, not at the month's end.
    doc = json.loads(cli("report", "--month", "2026-11", "--tz", "UTC", "--json").stdout)
    assert [(b["name"], b["window"], b["spent"], b["crossed"]) for b in doc["budgets"]] == [
        ("monthly", "2026-11", "26.5", [50]),  # 18 × $1 + $3.50 + $5
        ("volume", "2026-11-20", "150", []),
    ]


def test_the_first_days_are_judged_against_the_days_before_the_period(tmp_path: Path):
    ledger = Ledger.open(tmp_path / "ledger.db")
    assert ledger is not None
    ledger.import_calls(_calls())
    tz = UTC
    # A week starting on the spike: its history is all before the period.
    period = resolve_period(
        now=datetime(2026, 12, 5, tzinfo=UTC), tz=tz, since="2026-11-18", until="2026-11-25"
    )
    report = build_report(
        ledger, period, tz, currencies=Currencies("USD", {}), spike_factor=Decimal(3)
    )
    assert [(a.day, a.spend, a.median) for a in report.anomalies] == [
        (date(2026, 11, 18), Decimal(5), Decimal(1))
    ]
    assert report_to_dict(report)["anomalies"][0]["threshold"] == "3"
    # Bars one cell wide (a long period, a narrow chart): the mark sits on the axis.
    year = resolve_period(
        now=datetime(2026, 12, 5, tzinfo=UTC), tz=tz, since="2026-10-01", until="2026-12-01"
    )
    wide = build_report(ledger, year, tz, currencies=Currencies("USD", {}), spike_factor=Decimal(3))
    lines = daily_chart(wide, width=70, height=4)
    axis = next(line for line in lines if "└" in line)
    # Under a factor of 3 the $3.50 day spikes too.
    assert [a.day.day for a in wide.anomalies] == [10, 18]
    assert axis.count("!") == 2 and all("!" not in line for line in lines[:4])
