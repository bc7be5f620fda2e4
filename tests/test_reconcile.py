"""reconcile: the ledger against OpenAI's and Anthropic's books and balance snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.fakes import FakeServer, Reply, json_reply
from tokencli.calls.usage import Usage
from tokencli.insights.reconcile import base_model
from tokencli.ledger import Call, Ledger

NOW = "2026-11-20T00:00:00Z"
ADMIN = "sk-admin-test-0123456789abcdef"
_serial = count()


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text + "T00:00:00+00:00").timestamp())


def _calls(home: Path, provider: str, *rows: tuple[str, str, str, int]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    for ts, model, cost, tokens in rows:
        ledger.insert_call(
            Call(
                id=f"01KZZZZZZZZZZZZZZZZZZ{next(_serial):05d}",
                ts=ts.replace("Z", ".000000Z"),
                provider=provider,
                model=model,
                status="ok",
                pid=1,
                usage=Usage(input_tokens=tokens - tokens // 10, output_tokens=tokens // 10),
                cost=Decimal(cost),
                currency="USD",
            )
        )
    ledger.close()


def _openai_bucket(day: str, *results: tuple[str, str]) -> dict:
    return {
        "object": "bucket",
        "start_time": _ts(day),
        "end_time": _ts(day) + 86400,
        "results": [
            {
                "object": "organization.costs.result",
                "amount": {"value": float(value), "currency": "usd"},
                "line_item": item,
                "project_id": None,
            }
            for item, value in results
        ],
    }


def _usage_bucket(day: str, model: str, tokens: int) -> dict:
    return {
        "object": "bucket",
        "start_time": _ts(day),
        "end_time": _ts(day) + 86400,
        "results": [
            {
                "object": "organization.usage.completions.result",
                "input_tokens": tokens - tokens // 10,
                "output_tokens": tokens // 10,
                "input_cached_tokens": 0,
                "num_model_requests": 3,
                "model": model,
            }
        ],
    }


def _page(data: list, next_page: str | None = None) -> Reply:
    body = {
        "object": "page",
        "data": data,
        "has_more": next_page is not None,
        "next_page": next_page,
    }
    return Reply(200, {}, json.dumps(body, default=str).encode())


@pytest.fixture
def openai(home, monkeypatch):
    srv = FakeServer()
    write_config(home, f'[providers.openai]\nbase_url = "{srv.url}/v1"\n')
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    yield srv
    srv.close()


def test_dates_come_off_model_names():
    assert base_model("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert base_model("claude-sonnet-4-20250514") == "claude-sonnet-4"
    assert base_model("deepseek-chat") == "deepseek-chat"


def test_openai_costs_and_usage_over_every_page_with_causes(cli, home, monkeypatch, openai):
    _calls(
        home,
        "openai",
        ("2026-11-03T10:00:00Z", "gpt-4o-mini", "1.00", 1000),
        ("2026-11-04T10:00:00Z", "gpt-4o-mini", "2.00", 2000),
    )
    openai.queue(
        _page(
            [
                _openai_bucket(
                    "2026-11-03",
                    ("gpt-4o-mini-2024-07-18, input", "0.60"),
                    ("gpt-4o-mini-2024-07-18, output", "0.40"),
                ),
                _openai_bucket("2026-11-04", ("gpt-4o-mini-2024-07-18, input", "2.50")),
            ],
            next_page="page_2",
        ),
        _page([_openai_bucket("2026-11-05", ("gpt-4o-mini-2024-07-18, output", "5.00"))]),
        _page(
            [
                _usage_bucket("2026-11-03", "gpt-4o-mini-2024-07-18", 1000),
                _usage_bucket("2026-11-04", "gpt-4o-mini-2024-07-18", 2000),
                _usage_bucket("2026-11-05", "gpt-4o-mini-2024-07-18", 5000),
            ]
        ),
    )
    monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
    result = cli("reconcile", "--month", "2026-11", "--json")
    assert result.exit_code == 0, result.stderr
    source = json.loads(result.stdout)["providers"][0]
    assert source["status"] == "ok"
    got = [
        (line["day"], line["model"], line["ledger"], line["billed"], line["flagged"], line["cause"])
        for line in source["lines"]
    ]
    assert got == [
        ("2026-11-03", "gpt-4o-mini", "1", "1", False, None),
        ("2026-11-04", "gpt-4o-mini", "2", "2.5", True, "a price change the price table missed"),
        (
            "2026-11-05",
            "gpt-4o-mini",
            "0",
            "5",
            True,
            "calls made outside tokencli (the ledger has none)",
        ),
    ]
    paths = [r.path for r in openai.requests]
    assert paths[0].startswith("/v1/organization/costs?")
    assert "page=page_2" in paths[1] and "group_by=line_item" in paths[1]
    assert paths[2].startswith("/v1/organization/usage/completions?")
    assert f"start_time={_ts('2026-11-01')}" in paths[0]
    assert openai.requests[0].headers["authorization"] == f"Bearer {ADMIN}"
    text = cli("reconcile", "--month", "2026-11")  # the server has no replies left: exit 5
    assert text.exit_code == 5 and ADMIN not in text.stderr


def test_a_refused_admin_key_is_unavailable_exit_5(cli, home, monkeypatch, openai):
    openai.queue(json_reply({"error": {"message": f"bad {ADMIN}"}}, 401))
    monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
    result = cli("reconcile", "--provider", "openai")
    assert result.exit_code == 5
    assert "openai: unavailable: the admin key was refused (HTTP 401)." in result.stderr
    assert ADMIN not in result.stderr + result.stdout


def test_no_admin_key_is_a_configuration_error_when_asked_for(cli, home, openai):
    result = cli("reconcile", "--provider", "openai")
    assert result.exit_code == 6
    assert "tokencli keys set openai-admin" in result.stderr


def test_an_admin_key_from_the_keys_file(cli, home, monkeypatch, openai):
    assert cli("keys", "set", "openai-admin", input=ADMIN + "\n").exit_code == 0
    openai.queue(_page([]), _page([]))
    result = cli("reconcile", "--provider", "openai", "--json")
    assert result.exit_code == 0, result.stderr
    assert openai.requests[0].headers["authorization"] == f"Bearer {ADMIN}"


def test_anthropic_cost_report_in_cents_over_pages(cli, home, monkeypatch):
    srv = FakeServer()
    try:
        write_config(home, f'[providers.anthropic]\nbase_url = "{srv.url}"\n')
        monkeypatch.setenv("TOKENCLI_NOW", NOW)
        monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", ADMIN)
        _calls(home, "anthropic", ("2026-11-02T08:00:00Z", "claude-sonnet-4", "1.50", 3000))

        def bucket(day: str, results: list) -> dict:
            return {
                "starting_at": f"{day}T00:00:00Z",
                "ending_at": f"{day}T23:59:59Z",
                "results": results,
            }

        cost = {
            "currency": "USD",
            "cost_type": "tokens",
            "model": "claude-sonnet-4-20250514",
            "token_type": "uncached_input_tokens",
            "workspace_id": None,
        }
        srv.queue(
            _page([bucket("2026-11-02", [{**cost, "amount": "100.00"}])], next_page="next"),
            _page(
                [bucket("2026-11-02", [{**cost, "amount": "50.00", "token_type": "output_tokens"}])]
            ),
            _page(
                [
                    bucket(
                        "2026-11-02",
                        [
                            {
                                "model": "claude-sonnet-4-20250514",
                                "uncached_input_tokens": 2000,
                                "cache_read_input_tokens": 500,
                                "cache_creation": {"ephemeral_5m_input_tokens": 200},
                                "output_tokens": 300,
                            }
                        ],
                    )
                ]
            ),
        )
        result = cli("reconcile", "--json")
        assert result.exit_code == 0, result.stderr
        line = json.loads(result.stdout)["providers"][0]["lines"][0]
        assert (line["billed"], line["ledger"], line["flagged"]) == ("1.5", "1.5", False)
        assert line["billed_tokens"] == 3000 == line["ledger_tokens"]
        assert srv.requests[0].path.startswith("/v1/organizations/cost_report?")
        assert srv.requests[0].headers["x-api-key"] == ADMIN
        assert "page=next" in srv.requests[1].path
        assert srv.requests[2].path.startswith("/v1/organizations/usage_report/messages?")
    finally:
        srv.close()


def test_prepaid_providers_by_balance_snapshots(cli, home, monkeypatch):
    from tokencli.ledger.refills import Snapshot, save_snapshots

    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-03T12:00:00Z")
    assert cli("refill", "add", "deepseek", "50").exit_code == 0
    _calls(
        home,
        "deepseek",
        ("2026-11-02T12:00:00Z", "deepseek-chat", "10", 1000),
        ("2026-11-03T18:00:00Z", "deepseek-chat", "1", 100),
    )
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None

    def snap(ts: str, balance: str) -> Snapshot:
        when = datetime.fromisoformat(ts).replace(tzinfo=UTC)
        return Snapshot(
            when, "deepseek", "GET /user/balance", "USD", Decimal(balance), None, None, None, {}
        )

    save_snapshots(
        ledger,
        [
            snap("2026-11-02T00:00:00", "100"),
            snap("2026-11-03T00:00:00", "90"),
            snap("2026-11-04T00:00:00", "135"),
        ],
    )
    ledger.close()
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("reconcile", "--provider", "deepseek", "--json")
    assert result.exit_code == 0, result.stderr
    lines = json.loads(result.stdout)["providers"][0]["lines"]
    assert [(x["day"], x["ledger"], x["billed"], x["flagged"]) for x in lines] == [
        ("2026-11-03", "10", "10", False),
        ("2026-11-04", "1", "5", True),  # 90 − 135 + the 50 recorded
    ]
    assert lines[1]["cause"] == "calls made outside tokencli, or a price change the table missed"


def test_a_month_not_begun_is_refused(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    assert cli("reconcile", "--month", "2027-01").exit_code == 2
    assert cli("reconcile", "--provider", "nosuch").exit_code == 6


def test_openrouter_this_month_by_the_keys_usage(cli, home, monkeypatch):
    srv = FakeServer()
    try:
        write_config(home, f'[providers.openrouter]\nbase_url = "{srv.url}/api/v1"\n')
        monkeypatch.setenv("TOKENCLI_NOW", NOW)
        monkeypatch.setenv("OPENROUTER_API_KEY", ADMIN)
        _calls(home, "openrouter", ("2026-11-02T08:00:00Z", "openai/gpt-4o", "3.00", 3000))
        key = {
            "label": "k",
            "limit": None,
            "limit_remaining": None,
            "usage": 40,
            "usage_monthly": 7.25,
        }
        srv.queue(json_reply({"data": key}))
        result = cli("reconcile", "--json")
        assert result.exit_code == 0, result.stderr
        source = json.loads(result.stdout)["providers"][0]
        assert source["method"] == "OpenRouter key usage this month"
        line = source["lines"][0]
        assert (line["day"], line["ledger"], line["billed"], line["flagged"]) == (
            None,
            "3",
            "7.25",
            True,
        )
        assert srv.requests[0].path == "/api/v1/key"
    finally:
        srv.close()
