"""Alert history in the ledger: once per key (across processes), retried until sent,
never sent twice; the rules that raise alerts, at their thresholds and not below."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ledger_rows, write_config
from tests.fakes import FakeServer, Pause, Reply, json_reply
from tokencli.alerts import Alert
from tokencli.alerts.dispatch import deliver_pending, enqueue, raise_alerts
from tokencli.alerts.rules import anomalies, call_alerts
from tokencli.clock import pinned_clock
from tokencli.ledger import Call, Ledger
from tokencli.ledger import alerts as table
from tokencli.ledger.store import format_ts
from tokencli.providers.base import Usage
from tokencli.settings.loader import load_settings

ALERT = Alert(
    kind="budget_threshold", key="budget:b:80:2026-12", title="Budget b: 80% used", message="m"
)


def settings_for(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    return load_settings({"TOKENCLI_CONFIG": str(path), "TOKENCLI_DB": str(tmp_path / "l.db")})


def hook_config(server: FakeServer, path: str = "/hook/SECRETPATH123", timeout: float = 2) -> str:
    return (
        f'[[alerts.channels]]\ntype = "webhook"\nname = "team"\nformat = "json"\n'
        f'url = "{server.url}{path}"\ntimeout = {timeout}\n'
    )


def open_ledger(tmp_path: Path, now: datetime | None = None) -> Ledger:
    clock = pinned_clock(now) if now else None
    ledger = (
        Ledger.open(tmp_path / "l.db", clock=clock) if clock else Ledger.open(tmp_path / "l.db")
    )
    assert ledger is not None
    return ledger


def test_a_key_fires_once_and_is_retried_until_sent(tmp_path: Path, server: FakeServer) -> None:
    settings = settings_for(tmp_path, hook_config(server))
    ledger = open_ledger(tmp_path)
    server.queue(Reply(500, body=b"down"), Reply(204))
    first = raise_alerts(ledger, settings, [ALERT])
    assert [(d.channel, d.error) for d in first] == [("team", "HTTP 500: down")]
    [row] = table.history(ledger)
    assert (row.key, row.kind, row.channel, row.status, row.attempts, row.last_error) == (
        ALERT.key,
        "budget_threshold",
        "team",
        "failed",
        1,
        "HTTP 500: down",
    )
    # Raised again: nothing new; the failed row is retried and sent.
    assert enqueue(ledger, settings, [ALERT]) == []
    second = deliver_pending(ledger, settings)
    assert [(d.channel, d.error) for d in second] == [("team", None)]
    [row] = table.history(ledger)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    # Once sent, never again.
    assert deliver_pending(ledger, settings) == []
    assert raise_alerts(ledger, settings, [ALERT]) == []
    assert len(server.requests) == 2
    assert server.requests[0].json["id"] == server.requests[1].json["id"]
    assert server.requests[1].json["dedupe_key"] == ALERT.key


def test_stderr_is_the_channel_when_none_is_configured(tmp_path: Path) -> None:
    import io

    settings = settings_for(tmp_path, "")
    ledger = open_ledger(tmp_path)
    err = io.StringIO()
    raise_alerts(ledger, settings, [ALERT], stderr=err)
    assert err.getvalue() == "tokencli alert: Budget b: 80% used: m\n"
    assert [(r.channel, r.status) for r in table.history(ledger)] == [("stderr", "sent")]


def test_out_of_time_rows_are_left_for_later_without_an_attempt(
    tmp_path: Path, server: FakeServer
) -> None:
    settings = settings_for(tmp_path, hook_config(server, timeout=0.3))
    ledger = open_ledger(tmp_path)
    server.queue(Reply(200, chunks=[Pause(2), b"ok"]))
    other = Alert(kind="test", key="second", title="t", message="m")
    enqueue(ledger, settings, [ALERT, other])
    started = time.monotonic()
    done = deliver_pending(ledger, settings, total_timeout=0.4)
    assert time.monotonic() - started < 1.5
    assert [d.error for d in done] == ["no answer within 0.3 s"]
    rows = {r.key: r for r in table.history(ledger)}
    assert (rows[ALERT.key].status, rows[ALERT.key].attempts) == ("failed", 1)
    assert (rows["second"].status, rows["second"].attempts) == ("pending", 0)


RAISE = """
import sys
from pathlib import Path
from tokencli.alerts import Alert
from tokencli.alerts.dispatch import raise_alerts
from tokencli.ledger import Ledger
from tokencli.settings.loader import load_settings
tmp = Path(sys.argv[1])
settings = load_settings({"TOKENCLI_CONFIG": str(tmp / "config.toml"), "TOKENCLI_DB": str(tmp / "l.db")})
ledger = Ledger.open(tmp / "l.db")
alert = Alert(kind="budget_threshold", key="budget:b:80:2026-12", title="t", message="m")
print(len(raise_alerts(ledger, settings, [alert])))
"""


def test_two_processes_raising_one_key_deliver_once(tmp_path: Path, server: FakeServer) -> None:
    settings_for(tmp_path, hook_config(server))
    open_ledger(tmp_path).close()  # migrated once
    server.queue(Reply(204), Reply(204))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RAISE, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["0", "1"]
    assert len(server.requests) == 1


def test_run_is_not_slowed_by_a_hanging_channel_and_retries_next_time(
    cli, home: Path, server: FakeServer
) -> None:
    write_config(home, "[alerts]\nmax_call_tokens = 10\n" + hook_config(server, timeout=0.5))
    server.queue(Reply(200, chunks=[Pause(3), b"ok"]))
    started = time.monotonic()
    r = cli("run", "-m", "mock:lorem", "--max-tokens", "20", "hi")
    assert time.monotonic() - started < 2.5
    assert r.exit_code == 0 and len(r.stdout.split()) == 20
    assert "SECRETPATH123" not in r.stderr
    [row] = ledger_rows(home, "SELECT * FROM alerts")
    assert row["key"].startswith("anomaly:call_tokens:") and row["status"] == "failed"
    assert row["last_error"] == "no answer within 0.5 s"
    assert "SECRETPATH123" not in json.dumps(
        [dict(r) for r in ledger_rows(home, "SELECT * FROM alerts")]
    )
    # The next command (under the rule: no new alert) retries it, and it is sent once.
    server.queue(Reply(204))
    assert cli("run", "-m", "mock:lorem", "--max-tokens", "5", "hi").exit_code == 0
    [row] = ledger_rows(home, "SELECT * FROM alerts")
    assert (row["status"], row["attempts"]) == ("sent", 2)
    payload = server.requests[-1].json
    assert payload["event"] == "anomaly" and payload["fields"]["rule"] == "max_call_tokens"
    first = ledger_rows(home)[0]
    assert payload["fields"]["call_id"] == first["id"]
    assert payload["fields"]["value"] == first["input_tokens"] + first["output_tokens"] > 20
    assert cli("run", "-m", "mock:echo", "hi").exit_code == 0
    assert len(server.requests) == 2


def test_a_failing_channel_does_not_fail_the_call(cli, home: Path) -> None:
    write_config(
        home,
        "[alerts]\nmax_call_tokens = 1\n[[alerts.channels]]\ntype = 'command'\n"
        f"command = ['{sys.executable}', '-c', 'import sys; sys.exit(3)']\n",
    )
    r = cli("run", "-m", "mock:echo", "hello there")
    assert r.exit_code == 0 and r.stdout == "hello there\n"
    [row] = ledger_rows(home, "SELECT * FROM alerts")
    assert row["status"] == "failed" and row["last_error"].endswith("exited 3")


def test_run_with_nothing_pending_makes_one_read(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "")
    ledger = open_ledger(tmp_path)
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    assert deliver_pending(ledger, settings) == []
    assert len(statements) == 1 and "alerts" in statements[0]
    plan = ledger._conn.execute(
        "EXPLAIN QUERY PLAN SELECT 1 FROM alerts WHERE status != 'sent' AND attempts < 10 LIMIT 1"
    ).fetchall()
    assert "alerts_undelivered" in " ".join(str(tuple(r)) for r in plan)


# ------------------------------------------------------------------ rules


def a_call(
    n: int, when: datetime, status: str = "ok", tokens: int = 10, cost: str | None = None
) -> Call:
    return Call(
        id=f"c{n:04d}",
        ts=format_ts(when),
        provider="openai",
        model="gpt-4o",
        status=status,
        usage=Usage(input_tokens=tokens),
        cost=Decimal(cost) if cost else None,
        currency="USD" if cost else None,
    )


@pytest.mark.parametrize(("tokens", "fires"), [(5000, False), (5001, True)])
def test_max_call_tokens(tmp_path: Path, tokens: int, fires: bool) -> None:
    settings = settings_for(tmp_path, "")
    ledger = open_ledger(tmp_path)
    call = a_call(1, datetime.now(UTC), tokens=tokens)
    found = call_alerts(ledger, settings, call)
    assert [a.key for a in found] == (["anomaly:call_tokens:c0001"] if fires else [])


def test_consecutive_failures_fire_once_per_run(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "[alerts]\nmax_consecutive_failures = 3\n")
    ledger = open_ledger(tmp_path)
    start = datetime(2026, 12, 4, 10, tzinfo=UTC)
    keys: list[list[str]] = []
    statuses = [
        "error",
        "error",
        "ok",
        "error",
        "error",
        "error",
        "error",
        "ok",
        "error",
        "error",
        "error",
    ]
    for n, status in enumerate(statuses):
        call = a_call(n, start + timedelta(seconds=n), status)
        ledger.insert_call(call)
        keys.append([a.key for a in call_alerts(ledger, settings, call)])
    fired = [(n, k) for n, k in enumerate(keys) if k]
    # The 3rd failure in a row fires (keyed by the run's first call); the 4th does not.
    assert fired == [(5, ["failures:openai:c0003"]), (10, ["failures:openai:c0008"])]


NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def spend_ledger(tmp_path: Path, history: list[str], today: str) -> Ledger:
    ledger = open_ledger(tmp_path, NOW)
    n = 0
    for back, cost in enumerate(reversed(history), start=1):
        n += 1
        ledger.insert_call(a_call(n, NOW - timedelta(days=back), cost=cost))
    ledger.insert_call(a_call(n + 1, NOW - timedelta(hours=1), cost=today))
    return ledger


@pytest.mark.parametrize(("today", "fires"), [("3.00", False), ("3.01", True)])
def test_spike_factor(tmp_path: Path, today: str, fires: bool) -> None:
    settings = settings_for(tmp_path, "[defaults]\ntimezone = 'UTC'\n[alerts]\nmax_zscore = 1000\n")
    ledger = spend_ledger(tmp_path, ["1.00"] * 14, today)
    found = anomalies(ledger, settings, NOW)
    assert [a.key for a in found] == (["anomaly:spike:2026-12-04"] if fires else [])
    if fires:
        assert Decimal(found[0].fields["median"]) == 1
        assert Decimal(found[0].fields["value"]) == Decimal("3.01")


@pytest.mark.parametrize(("today", "fires"), [("3.00", False), ("3.01", True)])
def test_max_zscore(tmp_path: Path, today: str, fires: bool) -> None:
    # Mean 1.5, deviation 0.5: three deviations above is 3.00.
    settings = settings_for(
        tmp_path, "[defaults]\ntimezone = 'UTC'\n[alerts]\nspike_factor = 100\n"
    )
    ledger = spend_ledger(tmp_path, ["1.00", "2.00"] * 7, today)
    assert [a.key for a in anomalies(ledger, settings, NOW)] == (
        ["anomaly:zscore:2026-12-04"] if fires else []
    )


def test_max_zscore_waits_for_history(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        "[defaults]\ntimezone = 'UTC'\n[alerts]\nspike_factor = 100\nmin_history_days = 7\n",
    )
    ledger = spend_ledger(tmp_path, ["1.00", "2.00"] * 3, "50.00")  # six days of history
    assert anomalies(ledger, settings, NOW) == []


# ------------------------------------------------------------------ the commands


def test_alerts_test_reports_each_channel(cli, home: Path, server: FakeServer) -> None:
    write_config(
        home,
        hook_config(server)
        + "[[alerts.channels]]\ntype = 'webhook'\nname = 'ding'\nformat = 'dingtalk'\n"
        f"url = '{server.url}/robot/send?access_token=TOKENDING99'\nsecret = 'SECding0099'\n",
    )
    server.queue(Reply(204), json_reply({"errcode": 310000, "errmsg": "sign not match"}))
    r = cli("alerts", "test", "--json")
    assert r.exit_code == 5
    data = json.loads(r.stdout)
    assert data["ok"] is False
    assert [(c["name"], c["status"], c["error"]) for c in data["channels"]] == [
        ("team", "ok", None),
        ("ding", "failed", "errcode 310000: sign not match"),
    ]
    assert data["channels"][1]["target"] == f"webhook dingtalk {server.url}/…"
    assert server.requests[0].json["event"] == "test"
    for secret in ("SECRETPATH123", "TOKENDING99", "SECding0099"):
        assert secret not in r.stdout + r.stderr
    assert "1 of 2 channels failed" in r.stderr
    # One channel; all ok: exit 0. Samples are not recorded.
    server.queue(Reply(204))
    r = cli("alerts", "test", "--channel", "team")
    assert r.exit_code == 0 and "ok" in r.stdout and "SECRETPATH123" not in r.stdout
    assert cli("alerts", "list", "--json").stdout.strip() == "[]"
    r = cli("alerts", "test", "--channel", "nope")
    assert (
        r.exit_code == 2 and "No alert channel is named 'nope'. Channels: team, ding." in r.stderr
    )


def test_alerts_list_shows_the_history(cli, home: Path) -> None:
    write_config(home, "[alerts]\nmax_call_tokens = 1\n")
    r = cli("run", "-m", "mock:echo", "hello there")
    assert r.exit_code == 0 and r.stderr.startswith("tokencli alert: One call used 4 tokens")
    r = cli("alerts", "list")
    assert r.exit_code == 0
    assert "anomaly" in r.stdout and "stderr" in r.stdout and "sent" in r.stdout
    [row] = json.loads(cli("alerts", "list", "--json").stdout)
    assert (row["kind"], row["channel"], row["status"], row["attempts"]) == (
        "anomaly",
        "stderr",
        "sent",
        1,
    )


def test_a_priced_run_checks_the_day_rules_after_its_answer(cli, home: Path) -> None:
    write_config(
        home, "[defaults]\ntimezone = 'UTC'\n[alerts]\nspike_factor = 2\nmax_call_tokens = 100000\n"
    )
    ledger = Ledger.open(home / "ledger.db")
    assert ledger is not None
    now = datetime.now(UTC)
    for back in range(1, 15):
        ledger.insert_call(a_call(back, now - timedelta(days=back), cost="0.000001"))
    ledger.close()
    priced = ("--price-as", "openai:gpt-4o")
    r = cli("run", "-m", "mock:lorem", "--max-tokens", "200", *priced, "hi")
    assert r.exit_code == 0
    assert "tokencli alert: Spend spike" in r.stderr
    [row] = ledger_rows(home, "SELECT * FROM alerts")
    assert row["key"] == f"anomaly:spike:{now.date().isoformat()}" and row["status"] == "sent"
    # Once per day: a second spike run raises nothing new.
    r = cli("run", "-m", "mock:lorem", "--max-tokens", "200", *priced, "hi")
    assert "tokencli alert" not in r.stderr
    assert len(ledger_rows(home, "SELECT * FROM alerts")) == 1
    # The day rules ran once for this ten-minute stretch, not after every call.
    checks = ledger_rows(home, "SELECT key FROM notices WHERE key LIKE 'anomaly-rules:%'")
    assert len(checks) == 1


def test_batch_delivers_after_its_results(cli, home: Path, tmp_path: Path) -> None:
    write_config(home, "[alerts]\nmax_call_tokens = 1\n")
    prompts = tmp_path / "p.txt"
    prompts.write_text("one two\nthree four\n")
    r = cli("batch", str(prompts), "-m", "mock:echo")
    assert r.exit_code == 0
    rows = ledger_rows(home, "SELECT * FROM alerts")
    assert len(rows) == 2 and {row["status"] for row in rows} == {"sent"}
    assert r.stderr.count("tokencli alert: One call used") == 2
