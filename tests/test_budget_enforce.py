"""Budgets enforced before every call: worst case, reservations, --force, blocked rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokencli.calls.budget_guard import BudgetGuard, covers
from tokencli.calls.resolve import ResolvedModel
from tokencli.ledger import Call, Ledger, format_ts
from tokencli.ledger.budgets import Hold
from tokencli.ledger.store import host_name
from tokencli.providers.registry import ProviderConfig
from tokencli.scope import Scope
from tokencli.settings.model import Budget

from .conftest import ledger_rows, subprocess_env, write_config

# $1 a token: "hello there friend" is 3 tokens in and 3 out, so a call costs $6
# and with --max-tokens 10 its worst case is $13.
PRICED = '[prices."mock:echo"]\ninput = 1000000\noutput = 1000000\ncurrency = "USD"\n'
PROMPT = "hello there friend"


def budget(name: str = "cap", **fields: object) -> str:
    lines = [f"[budgets.{name}]"]
    for key, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, list):
            lines.append(f"{key} = {json.dumps(value)}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def run(cli, *extra: str):
    return cli("run", "-m", "mock:echo", "--max-tokens", "10", *extra, PROMPT)


def statuses(home) -> list[str]:
    return [r["status"] for r in ledger_rows(home, "SELECT status FROM calls ORDER BY rowid")]


def reservations(home) -> list[tuple]:
    return [tuple(r) for r in ledger_rows(home, "SELECT * FROM budget_reservations")]


def test_a_blocking_budget_refuses_the_call_that_could_cross_it(home, cli):
    write_config(home, PRICED + budget(amount=20, period="day", block=True))
    assert run(cli).exit_code == 0  # 0 + 13 <= 20
    assert run(cli).exit_code == 0  # 6 + 13 <= 20
    refused = run(cli)  # 12 + 13 > 20
    assert refused.exit_code == 3
    assert refused.stdout == ""
    assert (
        "Budget 'cap' (day) has spent $12.00 of its $20.00 limit; this call to mock:echo "
        "could cost up to $13.00, so it was not sent." in refused.stderr
    )
    assert "--force" in refused.stderr and "tokencli budget set cap --limit" in refused.stderr
    rows = ledger_rows(home, "SELECT * FROM calls ORDER BY rowid")
    assert [r["status"] for r in rows] == ["ok", "ok", "blocked"]
    blocked = rows[2]
    assert json.loads(blocked["extra"]) == {"budget": "cap"}
    assert blocked["error_kind"] == "limit"
    assert blocked["cost_pico"] is None and blocked["input_tokens"] == 0
    assert reservations(home) == []  # finished calls hold nothing


def test_json_run_prints_the_blocked_call(home, cli):
    write_config(home, PRICED + budget(amount=5, block=True))
    result = run(cli, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["status"] == "blocked"


def test_force_lets_the_call_through_and_the_row_says_so(home, cli):
    write_config(home, PRICED + budget(amount=5, block=True))
    assert run(cli).exit_code == 3
    forced = run(cli, "--force")
    assert forced.exit_code == 0 and forced.stdout == PROMPT + "\n"
    rows = ledger_rows(home, "SELECT status, extra, cost_pico FROM calls ORDER BY rowid")
    assert [r["status"] for r in rows] == ["blocked", "ok"]
    assert json.loads(rows[1]["extra"]) == {"forced_past": ["cap"]}
    assert rows[1]["cost_pico"] == 6 * 10**12


def test_warn_only_budget_lets_the_call_through(home, cli):
    write_config(home, PRICED + budget(amount=5))
    assert run(cli).exit_code == 0
    assert run(cli).exit_code == 0
    rows = ledger_rows(home, "SELECT status, extra FROM calls")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(not r["extra"] for r in rows)


def test_a_budget_in_another_currency_converts_the_worst_case(home, cli):
    # 1 CNY = 0.5 USD: a $13 worst case is ¥26; each $6 call spends ¥12.
    write_config(
        home,
        PRICED
        + '[currency]\nreport = "USD"\nrates = { CNY = 0.5 }\n'
        + budget(amount=40, currency="CNY", block=True),
    )
    assert run(cli).exit_code == 0  # 0 + 26 <= 40
    assert run(cli).exit_code == 0  # 12 + 26 <= 40
    refused = run(cli)  # 24 + 26 > 40
    assert refused.exit_code == 3
    assert "has spent ¥24.00 of its ¥40.00 limit" in refused.stderr
    assert "could cost up to ¥26.00" in refused.stderr


UNPRICED = '[providers.paid]\ntype = "mock"\nself_hosted = false\n'


def test_an_unpriced_model_is_refused_under_a_money_budget(home, cli):
    write_config(home, UNPRICED + budget(amount=100, block=True))
    refused = cli("run", "-m", "paid:echo", "x y z")
    assert refused.exit_code == 3
    assert "Budget 'cap' does not let paid:echo through: the model has no known price" in (
        refused.stderr
    )
    assert 'prices."paid:echo"' in refused.stderr and "allow_unpriced" in refused.stderr
    assert statuses(home) == ["blocked"]
    # A warn-only budget refuses an unpriced model too: its cap would be blind.
    forced = cli("run", "-m", "paid:echo", "--force", "x y z")
    assert forced.exit_code == 0
    extra = ledger_rows(home, "SELECT extra FROM calls ORDER BY rowid")[1]["extra"]
    assert json.loads(extra)["forced_past"] == ["cap"]


def test_allow_unpriced_lets_an_unpriced_model_through(home, cli):
    write_config(home, UNPRICED + budget(amount=100, block=True, allow_unpriced=True))
    assert cli("run", "-m", "paid:echo", "x y z").exit_code == 0
    assert statuses(home) == ["ok"]


def test_free_models_pass_a_money_budget(home, cli):
    write_config(home, budget(amount=1, block=True))  # mock is self-hosted: $0
    for _ in range(3):
        assert cli("run", "-m", "mock:echo", PROMPT).exit_code == 0
    assert statuses(home) == ["ok"] * 3


def test_token_budget_counts_tokens(home, cli):
    # 3 in + 3 out per call; worst case 3 + 10 = 13 tokens.
    write_config(home, PRICED + budget(tokens=20, block=True))
    assert run(cli).exit_code == 0
    assert run(cli).exit_code == 0  # 6 + 13 <= 20
    refused = run(cli)  # 12 + 13 > 20
    assert refused.exit_code == 3
    assert (
        "has spent 12 tokens of its 20-token limit; this call to mock:echo could use up to "
        "13 tokens" in refused.stderr
    )


def test_calls_in_flight_count_against_the_budget(home, cli):
    write_config(home, PRICED + budget(amount=20, block=True))
    assert run(cli).exit_code == 0  # spends $6
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    pending = Call(
        id="pending-one",
        ts=format_ts(ledger.clock.now()),
        provider="mock",
        model="echo",
        pid=os.getpid(),
    )
    ledger.insert_call(pending, admit=lambda _: [Hold("cap", 2 * 10**12, 5)])
    assert ledger.budget_reserved() == {"cap": (2 * 10**12, 5)}
    refused = run(cli)  # 6 + 2 + 13 > 20
    assert refused.exit_code == 3
    assert "has spent $6.00 (and $2.00 is held by calls in flight) of its $20.00 limit" in (
        refused.stderr
    )
    # The call ends: its worst case is replaced by what it cost.
    pending.status = "ok"
    ledger.finish_call(pending)
    assert ledger.budget_reserved() == {}
    ledger.close()


def test_recovery_releases_a_dead_process_reservation(home):
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    call = Call(
        id="dead-one", ts=format_ts(ledger.clock.now()), provider="mock", model="echo", pid=999999
    )
    ledger.insert_call(call, admit=lambda _: [Hold("cap", 10**12, 3), Hold("other", 0, 3)])
    assert set(ledger.budget_reserved()) == {"cap", "other"}
    assert ledger.recover_abandoned(host_name(), lambda pid: False) == 1
    assert ledger.budget_reserved() == {}
    ledger.close()


def test_a_refusing_admit_writes_nothing(home):
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    call = Call(id="refused", ts=format_ts(ledger.clock.now()), provider="mock", model="echo")

    def refuse(_: Ledger) -> list[Hold]:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        ledger.insert_call(call, admit=refuse)
    assert ledger.count_calls() == 0 and ledger.budget_reserved() == {}
    ledger.close()


def _slow_mock(home, extra: str = "") -> None:
    write_config(
        home,
        '[providers.mock]\ndelay_ms = 50\n[prices."mock:lorem"]\ninput = 1\noutput = 1\n' + extra,
    )


def test_a_killed_process_reservation_is_released_by_the_next_command(home, tokencli_exe, cli):
    _slow_mock(home, budget(amount=100, block=True))
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "400", "x"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            if (home / "ledger.db").exists():
                try:
                    if reservations(home):
                        break
                except Exception:
                    pass
            time.sleep(0.05)
        held = reservations(home)
        assert len(held) == 1 and held[0][0] == "cap" and held[0][3] > 400
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)
    assert cli("logs").exit_code == 0  # any command that opens the ledger recovers
    assert reservations(home) == []
    assert statuses(home) == ["interrupted"]


# ------------------------------------------------------------------- scope


def _target(provider: str = "mock", model: str = "echo") -> ResolvedModel:
    return ResolvedModel(ProviderConfig(name=provider, type="mock"), model)


def _budget(**scope: object) -> Budget:
    return Budget(name="b", amount=Decimal(1), currency="USD", period="day", scope=Scope(**scope))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({}, True),
        ({"provider": "mock"}, True),
        ({"provider": "openai"}, False),
        ({"model": "echo"}, True),
        ({"model": "mock:echo"}, True),
        ({"model": "lorem"}, False),
        ({"project": "site"}, True),
        ({"project": "other"}, False),
        ({"tags": (("team", "a"),)}, True),
        ({"tags": (("team", "b"),)}, False),
        ({"tags": (("team", "a"), ("env", "prod"))}, False),
    ],
)
def test_scope_matching(scope, expected):
    assert covers(_budget(**scope), _target(), "site", {"team": "a"}) is expected


@pytest.mark.parametrize(
    ("fields", "blocked"),
    [
        ({"provider": "mock"}, True),
        ({"model": "mock:echo"}, True),
        ({"model": "mock:lorem"}, False),
        ({"project": "site"}, True),
        ({"project": "blog"}, False),
        ({"tag": ["team=a"]}, True),
        ({"tag": ["team=b"]}, False),
    ],
)
def test_only_budgets_whose_scope_covers_the_call_block_it(home, cli, fields, blocked):
    write_config(home, PRICED + budget(amount=5, block=True, **fields))
    result = run(cli, "-p", "site", "--tag", "team=a")
    assert result.exit_code == (3 if blocked else 0)


def test_spend_of_a_model_scoped_budget_counts_only_that_model(home, cli):
    write_config(
        home,
        PRICED
        + '[prices."mock:lorem"]\ninput = 1000000\noutput = 1000000\n'
        + budget(amount=20, block=True, model="mock:echo"),
    )
    # lorem's $30-odd would block echo at once if it counted.
    assert cli("run", "-m", "mock:lorem", "--max-tokens", "30", "a b c").exit_code == 0
    assert run(cli).exit_code == 0
    assert run(cli).exit_code == 0
    refused = run(cli)
    assert refused.exit_code == 3 and "has spent $12.00 of its $20.00 limit" in refused.stderr


def test_no_budgets_means_no_budget_guard():
    from tokencli.calls.guards import default_guards
    from tokencli.settings.loader import load_settings

    settings = load_settings()
    assert not any(isinstance(g, BudgetGuard) for g in default_guards(settings))


# ------------------------------------------------------ real processes


@pytest.mark.heavy
def test_twenty_processes_against_a_budget_worth_ten_calls(home, tokencli_exe):
    """Worst case = real cost = $6 (--max-tokens 3); $60 holds ten calls."""
    write_config(
        home,
        "[providers.mock]\ndelay_ms = 20\n" + PRICED + budget(amount=60, block=True),
    )
    env = subprocess_env(home)
    procs = [
        subprocess.Popen(
            [*tokencli_exe, "run", "-m", "mock:echo", "--max-tokens", "3", PROMPT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    codes = [p.returncode for p in procs]
    assert set(codes) <= {0, 3}, [err for _, err in outputs if err][:3]
    rows = ledger_rows(home, "SELECT status, cost_pico, extra FROM calls")
    assert len(rows) == 20
    ok = [r for r in rows if r["status"] == "ok"]
    blocked = [r for r in rows if r["status"] == "blocked"]
    assert 1 <= len(ok) <= 11 and len(ok) + len(blocked) == 20
    assert codes.count(0) == len(ok)
    spent = sum(r["cost_pico"] for r in ok)
    assert spent <= (60 + 6) * 10**12
    assert all(json.loads(r["extra"]) == {"budget": "cap"} for r in blocked)
    refusals = [err for code, (_, err) in zip(codes, outputs, strict=True) if code == 3]
    assert all("Budget 'cap' (month) has spent" in err for err in refusals)
    assert reservations(home) == []


# ------------------------------------------------------ batch and compare


def test_batch_items_are_blocked_and_force_lets_them_through(home, cli, tmp_path):
    write_config(home, PRICED + budget(amount=20, block=True))
    items = tmp_path / "items.txt"
    items.write_text(f"{PROMPT}\n{PROMPT}\n{PROMPT}\n")
    r = cli("batch", str(items), "-m", "mock:echo", "--max-tokens", "10", "-c", "1")
    assert r.exit_code == 3, r.stderr
    assert sorted(statuses(home)) == ["blocked", "ok", "ok"]
    items.write_text("one more please\n")
    r = cli("batch", str(items), "-m", "mock:echo", "--max-tokens", "10", "--force")
    assert r.exit_code == 0, r.stderr
    last = ledger_rows(home, "SELECT status, extra FROM calls ORDER BY rowid DESC LIMIT 1")[0]
    assert last["status"] == "ok" and json.loads(last["extra"]) == {"forced_past": ["cap"]}


def test_compare_live_is_blocked_and_force_lets_it_through(home, cli):
    write_config(home, PRICED + budget(amount=5, block=True))
    args = ("compare", "Say hello.", "Hi.", "-m", "mock:echo", "--live", "--yes")
    r = cli(*args)
    assert r.exit_code == 3, r.stderr
    assert set(statuses(home)) == {"blocked"}
    r = cli(*args, "--force")
    assert r.exit_code == 0, r.stderr
    forced = ledger_rows(home, "SELECT extra FROM calls WHERE status = 'ok'")
    assert len(forced) == 2
    assert all(json.loads(f["extra"])["forced_past"] == ["cap"] for f in forced)


def test_budget_status_counts_what_calls_in_flight_reserve(cli, home):
    """A pending call's reservation shows as `reserved` and leaves less `remaining`."""
    write_config(home, "[budgets.cap]\namount = 10\nperiod = 'day'\nblock = true\n")
    assert cli("run", "-m", "mock:echo", "warm up").exit_code == 0  # creates the ledger
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    pending = Call(
        id="01TESTPENDING0000000000000",
        ts=format_ts(datetime.now(UTC)),
        provider="mock",
        model="echo",
        pid=os.getpid(),
    )
    ledger.insert_call(pending, admit=lambda _: [Hold("cap", 2_500_000_000_000, 0)])  # $2.50
    ledger.close()
    (state,) = json.loads(cli("budget", "status", "--json").stdout)["budgets"]
    assert (state["reserved"], state["remaining"]) == ("2.5", "7.5")


def test_spend_in_a_currency_without_a_rate_is_not_ignored_by_a_blocking_budget(home, cli):
    """A call priced in GBP (no rate) cannot be counted against a dollar cap: the cap refuses
    rather than pretend it was free."""
    gbp = '[prices."mock:lorem"]\ninput = 1000000\noutput = 1000000\ncurrency = "GBP"\n'
    write_config(home, PRICED + gbp + budget(amount=1000, block=True))
    forced = cli("run", "-m", "mock:lorem", "--max-tokens", "3", "--force", PROMPT)
    assert forced.exit_code == 0  # its own price cannot be converted: only --force lets it by
    refused = run(cli)
    assert refused.exit_code == 3
    assert "cannot count this period's spend in GBP: no rate converts it into USD" in refused.stderr
    assert "[currency] rates" in refused.stderr and "--force" in refused.stderr
    assert statuses(home) == ["ok", "blocked"]
