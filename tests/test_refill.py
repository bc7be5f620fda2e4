"""refill: top-ups and grants, the ledger's balance, runway, live balances, checks for cron."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ledger_rows, write_config
from tests.fakes import FakeServer, Pause, Reply, json_reply
from tokencli.calls.usage import Usage
from tokencli.errors import UsageError
from tokencli.insights.balances import parse_threshold, parse_tokens
from tokencli.insights.refills import consume, runway
from tokencli.ledger import Call, Ledger
from tokencli.ledger.refills import Refill
from tokencli.settings.model import Currencies

NOW = "2026-11-15T00:00:00Z"
KEY = "sk-balance-test-0123456789abcdef"
_serial = count()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _refill(ts: str, amount: str, *, grant: bool = False, expires: str | None = None) -> Refill:
    return Refill(
        f"R{next(_serial):05d}",
        _at(ts),
        "deepseek",
        "USD",
        Decimal(amount),
        grant,
        _at(expires) if expires else None,
        None,
    )


def _call(ts: str, cost: str, provider: str = "deepseek", currency: str = "USD") -> Call:
    return Call(
        id=f"01JZZZZZZZZZZZZZZZZZZ{next(_serial):05d}",
        ts=_at(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        provider=provider,
        model="deepseek-chat",
        status="ok",
        pid=1,
        usage=Usage(input_tokens=100, output_tokens=10),
        cost=Decimal(cost),
        currency=currency,
    )


def _ledger_with(home: Path, *calls: Call) -> None:
    home.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    for call in calls:
        ledger.insert_call(call)
    ledger.close()


# ------------------------------------------------------------------ the arithmetic


def test_grants_are_used_first_and_an_expired_grant_takes_its_unused_part():
    refills = [
        _refill("2026-11-01T00:00:00Z", "50"),
        _refill("2026-11-02T00:00:00Z", "10", grant=True, expires="2026-11-10T00:00:00Z"),
    ]
    spends = [
        (_at("2026-11-02T00:00:00Z"), Decimal("1.25")),  # before the grant: from the credit
        (_at("2026-11-05T00:00:00Z"), Decimal("3.10")),  # from the grant
        (_at("2026-11-12T00:00:00Z"), Decimal("2.00")),  # the grant is gone: from the credit
    ]
    got = consume(refills, spends, _at(NOW))
    assert got.spent == Decimal("6.35")
    assert got.expired == Decimal("6.90")  # 10 − 3.10, lost at expiry
    assert got.grants_left == 0
    assert got.credits_left == Decimal("46.75")  # 50 − 1.25 − 2.00
    assert got.balance == Decimal("46.75")


def test_spend_beyond_every_refill_is_an_overdraft_the_next_top_up_repays():
    refills = [_refill("2026-11-01T00:00:00Z", "5"), _refill("2026-11-10T00:00:00Z", "20")]
    spends = [(_at("2026-11-05T00:00:00Z"), Decimal("7.5"))]
    before = consume(refills[:1], spends, _at("2026-11-06T00:00:00Z"))
    assert before.overdraft == Decimal("2.5") and before.balance == Decimal("-2.5")
    after = consume(refills, spends, _at(NOW))
    assert after.overdraft == 0 and after.balance == Decimal("17.5")


def test_the_grant_expiring_soonest_is_used_first():
    late = _refill("2026-11-01T00:00:00Z", "10", grant=True, expires="2026-12-31T00:00:00Z")
    soon = _refill("2026-11-01T00:00:00Z", "10", grant=True, expires="2026-11-20T00:00:00Z")
    got = consume([late, soon], [(_at("2026-11-03T00:00:00Z"), Decimal("4"))], _at(NOW))
    assert got.next_expiry == _at("2026-11-20T00:00:00Z") and got.expiring == Decimal("6")
    assert got.balance == Decimal("16")


def test_runway_from_a_known_series():
    ledger = Ledger.open_memory()
    now = _at(NOW)
    for day in range(1, 21):
        ledger.insert_call(_call((now - timedelta(days=day)).isoformat(), "10"))
    found = runway(ledger, Currencies(), Decimal("45"), "USD", "deepseek", now, UTC)
    assert found is not None
    # 10 a day from today (a whole day left): 10, 20, 30, 40, 50 ≥ 45 on the fifth day.
    assert found.runs_out == date(2026, 11, 19)
    assert found.early is not None and found.late is not None
    assert found.early <= found.runs_out <= found.late
    assert found.per_day == Decimal("10.00")
    assert found.next_30_days == Decimal("300.00")
    assert found.topup(Decimal("45")) == found.next_30_days - 45


@given(st.integers(min_value=1, max_value=10**9))
def test_token_amounts_parse_with_or_without_a_suffix(n):
    assert parse_tokens(str(n)) == n
    assert parse_tokens(f"{n}k") == n * 1000


@pytest.mark.parametrize(
    "text,kind,amount,currency",
    [
        ("50CNY", "money", "50", "CNY"),
        ("20 usd", "money", "20", "USD"),
        ("1M", "tokens", "1000000", ""),
        ("7d", "days", "7", ""),
    ],
)
def test_thresholds_carry_their_unit(text, kind, amount, currency):
    got = parse_threshold(text)
    assert (got.kind, got.amount, got.currency) == (kind, Decimal(amount), currency)


@pytest.mark.parametrize("text", ["", "abc", "0USD", "-5CNY", "0d", "1.5x", "nanUSD"])
def test_a_threshold_without_a_unit_is_refused(text):
    with pytest.raises(UsageError):
        parse_threshold(text)


# ------------------------------------------------------------------ add / list / rm


def test_add_list_and_rm(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    added = cli("refill", "add", "deepseek", "50", "--currency", "USD", "--note", "card")
    assert added.exit_code == 0, added.stderr
    assert "recorded a top-up of $50.00 for deepseek" in added.stderr
    grant = cli("refill", "add", "deepseek", "1M", "--tokens", "--grant", "--expires", "2026-12-31")
    assert grant.exit_code == 0, grant.stderr
    listed = json.loads(cli("refill", "list", "--json").stdout)
    assert [(r["amount"], r["unit"], r["grant"]) for r in listed] == [
        ("50", "USD", False),
        ("1000000", "tokens", True),
    ]
    assert listed[1]["expires"] == "2027-01-01T00:00:00.000000Z"  # the end of its last day
    assert listed[0]["note"] == "card"
    table = cli("refill", "list")
    assert "$50.00" in table.stdout and "1,000,000 tokens" in table.stdout
    assert "2026-12-31" in table.stdout and "2027-01-01" not in table.stdout  # its last day
    gone = cli("refill", "rm", listed[0]["id"])
    assert gone.exit_code == 0
    assert [r["id"] for r in json.loads(cli("refill", "list", "--json").stdout)] == [
        listed[1]["id"]
    ]
    assert cli("refill", "rm", "ZZZZZZZZ").exit_code == 2


@pytest.mark.parametrize(
    "args,code,words",
    [
        (["deepseek", "0"], 2, "not a number above 0"),
        (["deepseek", "nan"], 2, "not a number above 0"),
        (["deepseek", "inf"], 2, "not a number above 0"),
        (["deepseek", "lots"], 2, "not a number above 0"),
        (["deepseek", "1.5", "--tokens"], 2, "whole number of tokens"),
        (["deepseek", "5", "--currency", "XYZ"], 2, "not a currency tokencli knows"),
        (["deepseek", "5", "--currency", "US"], 2, "not a currency code"),
        (["deepseek", "5", "--tokens", "--currency", "USD"], 2, "exclude each other"),
        (["deepseek", "5", "--expires", "2027-01-01"], 2, "for grants"),
        (["deepseek", "5", "--grant", "--expires", "soon"], 2, "not a date"),
        (["nosuch", "5"], 6, "Unknown provider 'nosuch'"),
    ],
)
def test_bad_input_is_one_sentence_and_its_exit_code(cli, home, args, code, words):
    result = cli("refill", "add", *args)
    assert result.exit_code == code, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_expiry_in_the_past_is_a_warning_and_adds_nothing(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "add", "deepseek", "10", "--grant", "--expires", "2026-11-01")
    assert result.exit_code == 0
    assert "warning: --expires 2026-11-01 is in the past" in result.stderr
    status = json.loads(cli("refill", "status", "--offline", "--json").stdout)
    assert status["providers"][0]["ledger"]["expired"] == "10"
    assert status["providers"][0]["balance"] == "0"


def test_a_top_up_closes_the_providers_circuit(cli, home, monkeypatch):
    from tokencli.ledger import circuits

    home.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    circuits.open_now(ledger, "deepseek", reason="billing", kind="billing", now=0.0, until=1e12)
    assert circuits.open_circuits(ledger, 1.0)
    ledger.close()
    result = cli("refill", "add", "deepseek", "20")
    assert result.exit_code == 0
    assert "deepseek is no longer set aside" in result.stderr
    assert not ledger_rows(home, "SELECT * FROM circuits")


# ------------------------------------------------------------------ the ledger's balance


def test_status_offline_shows_the_ledgers_balance_with_exact_money(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-01T00:00:00Z")
    assert cli("refill", "add", "deepseek", "50").exit_code == 0
    monkeypatch.setenv("TOKENCLI_NOW", "2026-11-02T00:00:00Z")
    assert (
        cli("refill", "add", "deepseek", "10", "--grant", "--expires", "2026-11-09").exit_code == 0
    )
    _ledger_with(
        home,
        _call("2026-10-31T12:00:00Z", "99"),  # before any refill: not taken from them
        _call("2026-11-01T12:00:00Z", "1.25"),
        _call("2026-11-05T12:00:00Z", "3.10"),
        _call("2026-11-12T12:00:00Z", "2.00"),
        _call("2026-11-12T12:00:00Z", "7", provider="openai"),  # another provider
    )
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "status", "--offline", "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["providers"][0]
    assert row["ledger"]["spent"] == "6.35"
    assert row["ledger"]["expired"] == "6.9"
    assert row["balance"] == "46.75" and row["basis"] == "ledger"
    text = cli("refill", "status", "--offline")
    assert "$46.75" in text.stdout


# ------------------------------------------------------------------ live balances


def _config(home: Path, **servers: FakeServer) -> None:
    lines = []
    for name, srv in servers.items():
        base = srv.url + {"moonshot": "/v1", "siliconflow": "/v1", "openrouter": "/api/v1"}.get(
            name, ""
        )
        lines.append(f'[providers.{name}]\nbase_url = "{base}"\n')
        if name == "novita":
            lines.append('type = "openai"\n')
        if name in ("moonshot", "siliconflow"):
            lines.append('currency = "CNY"\n')
    write_config(home, "\n".join(lines))


DEEPSEEK = {
    "is_available": True,
    "balance_infos": [
        {
            "currency": "CNY",
            "total_balance": "110.00",
            "granted_balance": "10.00",
            "topped_up_balance": "100.00",
        },
        {"currency": "USD", "total_balance": 2.5, "granted_balance": 0, "topped_up_balance": 2.5},
    ],
}
MOONSHOT = {
    "code": 0,
    "data": {"available_balance": 49.58894, "voucher_balance": 50.0, "cash_balance": -0.41106},
    "scode": "0x0",
    "status": True,
}
SILICONFLOW = {
    "code": 20000,
    "message": "OK",
    "status": True,
    "data": {
        "id": "",
        "name": "me",
        "balance": "0.88",
        "chargeBalance": "88.00",
        "totalBalance": "88.88",
        "status": "normal",
    },
}
OPENROUTER_KEY = {
    "data": {
        "label": "sk-or-v1-abc...",
        "limit": 20,
        "limit_remaining": 12.3456,
        "usage": 7.6544,
        "usage_daily": 0.5,
        "usage_weekly": 2,
        "usage_monthly": 7.6544,
        "is_free_tier": False,
    }
}
NOVITA = {"availableBalance": "1234500", "cashBalance": "1234500", "creditLimit": "0"}


@pytest.fixture
def servers():
    made: dict[str, FakeServer] = {}

    def make(*names: str) -> dict[str, FakeServer]:
        for name in names:
            made[name] = FakeServer()
        return made

    yield make
    for srv in made.values():
        srv.close()


def test_every_balance_endpoint_in_its_real_shape(cli, home, monkeypatch, servers):
    srv = servers("deepseek", "moonshot", "siliconflow", "openrouter", "novita")
    _config(home, **srv)
    for name, body in [
        ("deepseek", DEEPSEEK),
        ("moonshot", MOONSHOT),
        ("siliconflow", SILICONFLOW),
        ("openrouter", OPENROUTER_KEY),
        ("novita", NOVITA),
    ]:
        srv[name].queue(json_reply(body))
        monkeypatch.setenv(f"{name.upper()}_API_KEY", f"{KEY}-{name}")
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    got = {(p["provider"], p["unit"]): p["live"] for p in data["providers"]}
    assert got[("deepseek", "CNY")]["balance"] == "110"
    assert got[("deepseek", "CNY")]["granted"] == "10"
    assert got[("deepseek", "USD")]["balance"] == "2.5"
    assert got[("moonshot", "CNY")]["balance"] == "49.58894"
    assert got[("moonshot", "CNY")]["paid"] == "-0.41106"  # cash in debt
    assert got[("siliconflow", "CNY")]["balance"] == "88.88"
    assert got[("openrouter", "USD")]["balance"] == "12.3456"
    assert got[("novita", "USD")]["balance"] == "123.45"  # 1/10000 USD
    paths = {
        name: (s.requests[0].path, s.requests[0].headers["authorization"])
        for name, s in srv.items()
    }
    assert paths == {
        "deepseek": ("/user/balance", f"Bearer {KEY}-deepseek"),
        "moonshot": ("/v1/users/me/balance", f"Bearer {KEY}-moonshot"),
        "siliconflow": ("/v1/user/info", f"Bearer {KEY}-siliconflow"),
        "openrouter": ("/api/v1/key", f"Bearer {KEY}-openrouter"),
        "novita": ("/openapi/v1/billing/balance/detail", f"Bearer {KEY}-novita"),
    }
    # Every answer is kept, dated; no key anywhere in the output or the rows.
    snaps = ledger_rows(home, "SELECT * FROM balance_snapshots")
    assert len(snaps) == 6
    dump = json.dumps([dict(r) for r in snaps]) + result.stdout + result.stderr
    assert KEY not in dump


def test_openrouter_credits_with_a_management_key(cli, home, monkeypatch, servers):
    srv = servers("openrouter")
    _config(home, **srv)
    srv["openrouter"].queue(json_reply({"data": {"total_credits": 100, "total_usage": 42.5}}))
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", KEY + "-mgmt")
    data = json.loads(cli("refill", "status", "--json").stdout)
    assert data["providers"][0]["live"]["balance"] == "57.5"
    assert srv["openrouter"].requests[0].path == "/api/v1/credits"


@pytest.mark.parametrize(
    "reply,reason",
    [
        (
            json_reply({"error": {"message": f"bad key {KEY}"}}, 401),
            "the key was refused (HTTP 401)",
        ),
        (
            Reply(200, {"content-type": "text/html"}, b"<html><body>Login</body></html>"),
            "the endpoint answered an HTML page, not JSON",
        ),
        (json_reply({"data": {"unexpected": 1}}), "the answer has no totalBalance"),
        (Reply(200, chunks=[Pause(2.0), b"{}"]), "no answer within 0.3 s"),
        (Reply(200, chunks=[b" " * (1 << 16)] * 17), "the answer is larger than 1 MiB"),
    ],
)
def test_a_failed_query_is_unavailable_with_its_reason_never_zero(
    cli, home, monkeypatch, servers, reply, reason
):
    srv = servers("siliconflow")
    _config(home, **srv)
    srv["siliconflow"].queue(reply)
    monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    result = cli("refill", "status", "--timeout", "0.3", "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["providers"][0]
    assert row["live"] is None and row["balance"] is None
    assert reason in row["live_error"]
    assert f"live balance unavailable: {reason}" in result.stderr
    assert KEY not in result.stdout + result.stderr
    snap = ledger_rows(home, "SELECT balance_pico, error FROM balance_snapshots")[0]
    assert snap["balance_pico"] is None and reason in snap["error"]


# ------------------------------------------------------------------ check, for cron


def test_check_exit_codes(cli, home, monkeypatch, servers):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    srv["deepseek"].queue(json_reply(DEEPSEEK))
    below = cli("refill", "check", "--threshold", "200CNY")
    assert below.exit_code == 3
    assert "Top up DeepSeek: ¥110.00 left; below 200CNY." in below.stderr
    srv["deepseek"].queue(json_reply(DEEPSEEK))
    assert cli("refill", "check", "--threshold", "50CNY").exit_code == 0
    srv["deepseek"].queue(json_reply({"error": {"message": "no"}}, 401))
    unreadable = cli("refill", "check", "--threshold", "50CNY")
    assert unreadable.exit_code == 5  # never a false "fine"
    assert "deepseek: no balance to check" in unreadable.stderr
    # Offline, the ledger's figure stands in and is judged.
    assert cli("refill", "add", "deepseek", "30", "--currency", "CNY").exit_code == 0
    assert cli("refill", "check", "--threshold", "50CNY", "--offline").exit_code == 3
    assert cli("refill", "check", "--threshold", "20CNY", "--offline").exit_code == 0
    assert cli("refill", "check", "--threshold", "1M", "--offline").exit_code == 0  # no tokens
    assert cli("refill", "check", "--threshold", "5x").exit_code == 2


def test_check_by_runway_and_notify_once_per_threshold_and_day(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", "2026-10-20T00:00:00Z")
    assert cli("refill", "add", "deepseek", "245").exit_code == 0
    _ledger_with(
        home,
        *(_call((_at(NOW) - timedelta(days=d)).isoformat(), "10") for d in range(1, 21)),
    )
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    # 245 − 200 = 45 left at 10 a day: out on 2026-11-19, four days from now.
    first = cli("refill", "check", "--threshold", "7d", "--offline", "--notify", "--json")
    assert first.exit_code == 3, first.stderr
    doc = json.loads(first.stdout)
    assert doc["below"] == ["deepseek"]
    assert doc["providers"][0]["runway"]["runs_out"] == "2026-11-19"
    assert "4 days at this pace (runs out 2026-11-19)" in first.stderr
    assert "covers the next 30 days" in first.stderr
    assert cli("refill", "check", "--threshold", "3d", "--offline").exit_code == 0
    again = cli("refill", "check", "--threshold", "7d", "--offline", "--notify")
    assert again.exit_code == 3
    alerts = ledger_rows(home, "SELECT key, kind FROM alerts")
    assert [(a["key"], a["kind"]) for a in alerts] == [
        ("refill:deepseek:USD:7d:2026-11-15", "refill")
    ]


def test_print_cron_names_this_tokencli_by_its_absolute_path(cli, home):
    result = cli("refill", "check", "--print-cron", "--threshold", "50CNY")
    assert result.exit_code == 0
    line = result.stdout.strip()
    assert line.startswith("0 */6 * * * ")
    assert "refill check --threshold 50CNY --notify" in line
    assert f"TOKENCLI_HOME={home}" in line
    command = line.split()[6]
    assert Path(command).is_absolute()


# ------------------------------------------------------------------ money spent elsewhere


def _snapshot(home: Path, ts: str, balance: str, currency: str = "CNY") -> None:
    from tokencli.ledger.refills import Snapshot, save_snapshots

    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    save_snapshots(
        ledger,
        [
            Snapshot(
                _at(ts),
                "deepseek",
                "GET /user/balance",
                currency,
                Decimal(balance),
                None,
                None,
                None,
                {},
            )
        ],
    )
    ledger.close()


def _deepseek(total: str) -> Reply:
    return json_reply(
        {
            "is_available": True,
            "balance_infos": [
                {
                    "currency": "CNY",
                    "total_balance": total,
                    "granted_balance": "0.00",
                    "topped_up_balance": total,
                }
            ],
        }
    )


def test_a_balance_that_fell_more_than_tokencli_metered_is_an_alert(
    cli, home, monkeypatch, servers
):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    _ledger_with(home, _call("2026-11-14T12:00:00Z", "3.05", currency="CNY"))
    _snapshot(home, "2026-11-14T09:00:00Z", "100.00")
    srv["deepseek"].queue(_deepseek("59.88"))
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "status", "--json")
    assert result.exit_code == 0, result.stderr
    assert (
        "DeepSeek's balance fell ¥40.12 since yesterday 09:00; tokencli metered ¥3.05."
        " Another program, or a leaked key, is spending." in result.stderr
    )
    outside = json.loads(result.stdout)["outside"]
    assert outside == [
        {
            "provider": "deepseek",
            "currency": "CNY",
            "kind": "spend",
            "since": "2026-11-14T09:00:00.000000Z",
            "fell": "40.12",
            "metered": "3.05",
            "amount": "37.07",
        }
    ]
    assert [r["kind"] for r in ledger_rows(home, "SELECT kind FROM alerts")] == ["refill"]


def test_spend_within_the_tolerance_is_not_news(cli, home, monkeypatch, servers):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    _ledger_with(home, _call("2026-11-14T12:00:00Z", "3.05", currency="CNY"))
    _snapshot(home, "2026-11-14T09:00:00Z", "100.00")
    srv["deepseek"].queue(_deepseek("96.60"))  # fell 3.40: 0.35 more than metered
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "status", "--json")
    assert json.loads(result.stdout)["outside"] == []


def test_a_top_up_seen_live_but_not_recorded_comes_with_the_command(
    cli, home, monkeypatch, servers
):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    _snapshot(home, "2026-11-14T09:00:00Z", "10.00")
    srv["deepseek"].queue(_deepseek("110.00"))
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    result = cli("refill", "status")
    assert (
        "rose by about ¥100.00 since yesterday 09:00 and no refill was recorded."
        " Record it with: tokencli refill add deepseek 100.00 --currency CNY" in result.stderr
    )


def test_a_call_refused_for_exhausted_credit_records_a_refill_alert(cli, home, server):
    from tests.conftest import provider_config

    write_config(home, provider_config("fake", "openai", server.url + "/v1"))
    server.queue(json_reply({"error": {"message": "Insufficient Balance"}}, 402))
    result = cli("run", "-m", "fake:some-model", "--no-stream", "hello")
    assert result.exit_code == 4, result.stderr
    alerts = ledger_rows(home, "SELECT key, kind, payload FROM alerts")
    assert [(a["kind"], a["key"].rsplit(":", 1)[0]) for a in alerts] == [
        ("refill", "refill-exhausted:fake")
    ]
    assert "refill add fake AMOUNT" in json.loads(alerts[0]["payload"])["message"]


def test_a_management_key_is_stored_like_other_keys_and_used_for_credits(cli, home, servers):
    srv = servers("openrouter")
    _config(home, **srv)
    assert cli("keys", "set", "openrouter-management", input=KEY + "-mgmt\n").exit_code == 0
    assert cli("keys", "set", "nosuch-management", input="x" * 20 + "\n").exit_code == 6
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert {"provider": "openrouter-management", "status": "set"}.items() <= next(
        r for r in listed if r["provider"] == "openrouter-management"
    ).items()
    srv["openrouter"].queue(json_reply({"data": {"total_credits": "10", "total_usage": "2.5"}}))
    data = json.loads(cli("refill", "status", "--provider", "openrouter", "--json").stdout)
    assert data["providers"][0]["live"]["balance"] == "7.5"
    assert srv["openrouter"].requests[0].headers["authorization"] == f"Bearer {KEY}-mgmt"
    assert KEY not in json.dumps(listed)


def test_spend_in_a_currency_with_no_rate_gives_no_verdict(cli, home, monkeypatch, servers):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    _ledger_with(home, _call("2026-11-14T12:00:00Z", "3.05", currency="USD"))
    _snapshot(home, "2026-11-14T09:00:00Z", "100.00")
    srv["deepseek"].queue(_deepseek("59.88"))
    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    assert json.loads(cli("refill", "status", "--json").stdout)["outside"] == []


def test_check_without_notify_records_no_alert(cli, home, monkeypatch):
    assert cli("refill", "add", "deepseek", "5").exit_code == 0
    assert cli("refill", "check", "--threshold", "10USD", "--offline").exit_code == 3
    assert ledger_rows(home, "SELECT * FROM alerts") == []


def test_with_no_network_the_ledgers_figures_stand_in_and_it_says_so(cli, home, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_config(home, f'[providers.deepseek]\nbase_url = "http://127.0.0.1:{port}"\n')
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    assert cli("refill", "add", "deepseek", "30").exit_code == 0
    result = cli("refill", "check", "--threshold", "10USD", "--json")
    assert result.exit_code == 0, result.stderr
    assert "no provider could be reached; the figures are the ledger's" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["offline"] is True and doc["providers"][0]["basis"] == "ledger"
    assert doc["providers"][0]["live_error"].startswith("could not connect")


def test_a_currency_that_is_not_a_code_is_not_a_balance(cli, home, monkeypatch, servers):
    srv = servers("deepseek")
    _config(home, **srv)
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    info = {"currency": "\x1b[31mCNY", "total_balance": "1", "granted_balance": "0"}
    srv["deepseek"].queue(json_reply({"balance_infos": [{**info, "topped_up_balance": "1"}]}))
    result = cli("refill", "status")
    assert "\x1b" not in result.stdout + result.stderr
    assert "a balance_infos entry has no currency code" in result.stderr
