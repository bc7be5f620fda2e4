"""The ledger: file safety, migrations, the write-ahead row, many writers at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.conftest import ledger_rows, subprocess_env, wait_for_pending, write_config
from tokencli.calls.usage import Usage
from tokencli.ledger import Call, Ledger, format_ts, host_name
from tokencli.ledger.migrations import MIGRATIONS
from tokencli.scope import Scope


def make_call(i: int = 0, **kw) -> Call:
    return Call(
        id=f"01TEST{i:020d}", ts=format_ts(datetime.now(UTC)), provider="p", model="m", **kw
    )


def test_new_ledger_is_owner_only_wal_and_migrated(tmp_path):
    path = tmp_path / "dir" / "ledger.db"
    ledger = Ledger.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = ledger._conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = 'tokencli'"
    ).fetchall()
    assert [r[0] for r in applied] == [name for name, _ in MIGRATIONS]
    ledger.close()
    Ledger.open(path).close()  # reopening applies nothing twice
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(MIGRATIONS)


def test_missing_ledger_is_not_created_for_reads(tmp_path):
    assert Ledger.open(tmp_path / "none.db", create=False) is None
    assert not (tmp_path / "none.db").exists()


def test_damaged_ledger_is_a_config_error(tmp_path):
    from tokencli.errors import ConfigError

    path = tmp_path / "l.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ConfigError, match="is damaged"):
        Ledger.open(path)


def test_pending_then_finished(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    call = make_call(1, pid=os.getpid(), prompt_text="p", tags={"k": "v"})
    ledger.insert_call(call)
    assert ledger.list_calls()[0].status == "pending"
    call.status, call.usage, call.cost, call.currency = (
        "ok",
        Usage(input_tokens=3, output_tokens=4),
        Decimal("0.25"),
        "USD",
    )
    call.response_text = "r"
    ledger.finish_call(call)
    got = ledger.get_call(call.id[:12])
    assert (
        got.status,
        got.usage.total_tokens,
        got.cost,
        got.prompt_text,
        got.response_text,
        got.tags,
    ) == ("ok", 7, Decimal("0.25"), "p", "r", {"k": "v"})


def test_finish_without_pending_row_inserts(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    call = make_call(2, status="ok")
    ledger.finish_call(call)
    assert ledger.count_calls() == 1


def test_filters(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    ledger.insert_call(make_call(1, status="ok", project="a", tags={"client": "x"}))
    ledger.insert_call(make_call(2, status="error", project="b"))
    assert [c.project for c in ledger.list_calls(Scope(status="error"))] == ["b"]
    assert [c.project for c in ledger.list_calls(Scope(tags=(("client", "x"),)))] == ["a"]
    assert ledger.list_calls(since=datetime(2999, 1, 1, tzinfo=UTC)) == []
    assert len(ledger.list_calls(until=datetime(2999, 1, 1, tzinfo=UTC))) == 2


def test_abandoned_calls_of_dead_processes_are_marked(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.insert_call(make_call(1, pid=dead.pid))
    ledger.insert_call(make_call(2, pid=os.getpid()))
    ledger.insert_call(make_call(3, pid=dead.pid, host="another-machine"))
    ledger.close()
    reopened = Ledger.open(tmp_path / "l.db")
    status = {c.id[-1]: (c.status, c.error_kind) for c in reopened.list_calls()}
    assert status == {
        "1": ("interrupted", "killed"),
        "2": ("pending", None),
        "3": ("pending", None),
    }


def test_notice_once(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    assert ledger.notice_once("x") is True
    assert ledger.notice_once("x") is False


def test_host_is_recorded():
    assert make_call().host == host_name()


# ---------------------------------------------------------- real processes


@pytest.mark.heavy
def test_sixteen_processes_write_at_once(home, tokencli_exe):
    """16 tokencli processes, 5 calls each, on a ledger none of them has created yet."""
    env = subprocess_env(home)
    script = 'for i in 1 2 3 4 5; do {exe} run -m mock:echo "call $i from $0" || exit 9; done'
    exe = " ".join(tokencli_exe)
    procs = [
        subprocess.Popen(
            ["bash", "-c", script.format(exe=exe), f"w{n}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(16)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in outputs if err][:3]
    assert not any("locked" in err for _, err in outputs)
    rows = ledger_rows(home)
    assert len(rows) == 80 and {r["status"] for r in rows} == {"ok"}
    assert len({r["id"] for r in rows}) == 80
    texts = {r[0] for r in ledger_rows(home, "SELECT response_text FROM call_texts")}
    assert texts == {f"call {i} from w{n}" for i in range(1, 6) for n in range(16)}


def _slow_mock(home):
    write_config(home, "[providers.mock]\ndelay_ms = 50\n")


def test_kill_9_mid_call_is_found_by_the_next_command(home, tokencli_exe, cli):
    _slow_mock(home)
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "400", "x"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    call_id = wait_for_pending(home)
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=10)
    record = json.loads(cli("logs", "--json").stdout)[0]
    assert record["id"] == call_id
    assert record["status"] == "interrupted" and record["error"]["kind"] == "killed"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_mid_stream_keeps_text_and_exits_130(home, tokencli_exe, sig):
    _slow_mock(home)
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "400", "x"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_pending(home)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    row = ledger_rows(home)[0]
    assert row["status"] == "interrupted"
    assert row["error_kind"] == ("interrupted" if sig == signal.SIGINT else "terminated")
    printed = out.strip().split()
    assert 0 < len(printed) < 400
    # mock counts each word as it is generated, just before printing it: the count is
    # exact, and at most one generated word can miss the screen.
    assert (
        row["output_tokens"] in (len(printed), len(printed) + 1)
        and row["usage_source"] == "counted"
    )
    assert ledger_rows(home, "SELECT response_text FROM call_texts")[0][0].split() == printed


def test_closed_stdout_stops_quietly_and_is_recorded(home, tokencli_exe):
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f"{' '.join(tokencli_exe)} run -m mock:lorem --max-tokens 100000 x | head -c 10; exit ${{PIPESTATUS[0]}}",
        ],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 141  # the reader went away: as SIGPIPE would, not Ctrl-C's 130
    assert proc.stderr == "" and len(proc.stdout) == 10
    row = ledger_rows(home)[0]
    assert (row["status"], row["error_kind"]) == ("interrupted", "stdout_closed")
    assert 0 < row["output_tokens"] < 100_001


def test_day_old_pending_call_is_abandoned_even_if_its_pid_lives(tmp_path):
    ledger = Ledger.open(tmp_path / "l.db")
    old = make_call(1, pid=os.getpid())
    old.ts = "2020-01-01T00:00:00.000000Z"
    ledger.insert_call(old)
    ledger.close()
    assert Ledger.open(tmp_path / "l.db").list_calls()[0].status == "interrupted"
