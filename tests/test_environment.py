"""When the environment fails: a full disk while a call is recorded (the recovery journal),
a read-only or damaged ledger, a closed or full stdout, SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import (
    failing_statements,
    ledger_rows,
    subprocess_env,
    wait_for_pending,
    write_config,
)
from tokencli.ledger import Ledger
from tokencli.ledger.recovery import journal_path, reserve_path

# A tokencli process whose ledger refuses the finishing write as a full disk does:
# the fault is injected at the sqlite3 boundary, nothing above it is changed.
FULL_AT_FINISH = """
import sqlite3, sys
class Full(sqlite3.Connection):
    def execute(self, sql, *args):
        if sql.startswith("UPDATE calls SET"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)
real = sqlite3.connect
sqlite3.connect = lambda *a, **k: real(*a, factory=Full, **k)
from tokencli.cli.app import main
main(sys.argv[1:])
"""


def _full_disk_run(home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FULL_AT_FINISH, *args],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _totals(cli) -> dict:
    result = cli("report", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["totals"]


def test_a_full_disk_at_the_finish_keeps_the_usage_and_the_next_command_adds_it(
    home, cli, tokencli_exe
):
    proc = _full_disk_run(home, "run", "-m", "mock:echo", "four words of prompt")
    assert proc.returncode == 0, proc.stderr  # the answer was delivered and nothing is lost
    assert proc.stdout == "four words of prompt\n"
    journal = journal_path(home / "ledger.db")
    assert proc.stderr.startswith(
        f"tokencli: The ledger {home / 'ledger.db'} cannot be written: the disk is full, so call "
    )
    assert f"is kept in {journal}; the next tokencli command adds it to the ledger." in proc.stderr
    assert "Traceback" not in proc.stderr
    kept = journal.read_bytes()
    assert len(kept.splitlines()) == 1
    (row,) = ledger_rows(home)
    assert row["status"] == "pending"  # the ledger itself could not be written

    # The next command (any, here a real process) writes the call and deletes the journal.
    logs = subprocess.run(
        [*tokencli_exe, "logs", "--json"], env=subprocess_env(home), capture_output=True, text=True
    )
    assert logs.returncode == 0, logs.stderr
    (record,) = json.loads(logs.stdout)
    assert record["status"] == "ok"
    assert record["usage"]["input_tokens"] == 4 and record["usage"]["output_tokens"] == 4
    assert not journal.exists()
    totals = _totals(cli)
    assert totals["calls"] == 1 and totals["output_tokens"] == 4

    # Replaying the same journal again (a replay cut short before its delete) counts nothing twice.
    journal.write_bytes(kept)
    assert json.loads(cli("logs", "--json").stdout)[0]["status"] == "ok"
    assert not journal.exists()
    assert _totals(cli) == totals
    assert len(ledger_rows(home)) == 1


def test_several_kept_calls_are_all_added(home, cli):
    for i in range(3):
        assert _full_disk_run(home, "run", "-m", "mock:echo", f"call {i}").returncode == 0
    assert len(journal_path(home / "ledger.db").read_bytes().splitlines()) == 3
    assert [c["status"] for c in json.loads(cli("logs", "--json").stdout)] == ["ok"] * 3
    assert _totals(cli)["calls"] == 3


def test_a_line_cut_short_in_the_journal_is_skipped(home, cli):
    assert _full_disk_run(home, "run", "-m", "mock:echo", "whole").returncode == 0
    journal = journal_path(home / "ledger.db")
    with open(journal, "ab") as fh:
        fh.write(b'{"v": 1, "id": "01CUT')  # a crash while appending
    assert json.loads(cli("logs", "--json").stdout)[0]["status"] == "ok"
    assert not journal.exists()


def test_when_the_journal_cannot_be_written_either_the_usage_is_in_the_sentence(
    home, cli, monkeypatch
):
    assert cli("run", "-m", "mock:echo", "warm up").exit_code == 0  # the ledger exists

    failing_statements(monkeypatch, "UPDATE calls SET", "database or disk is full")

    def no_space(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tokencli.ledger.recovery._append", no_space)
    result = cli("run", "-m", "mock:echo", "three word prompt")
    assert result.exit_code == 6
    assert result.stdout == "three word prompt\n"
    assert "the disk is full, and neither could" in result.stderr
    assert "used 3 input and 3 output tokens" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_read_only_ledger_exits_6_with_what_to_do(home, cli, monkeypatch):
    assert cli("run", "-m", "mock:echo", "hi").exit_code == 0

    failing_statements(monkeypatch, "BEGIN IMMEDIATE", "attempt to write a readonly database")
    result = cli("run", "-m", "mock:echo", "hi")
    assert result.exit_code == 6, result.stderr
    assert result.stderr == (
        f"tokencli: The ledger {home / 'ledger.db'} cannot be written: it (or its directory) is"
        " read-only for this user. Make it and its directory writable by this user (or point"
        " --db or TOKENCLI_DB at another file), then run the command again.\n"
    )
    assert cli("logs").exit_code == 0  # reading it still works


@pytest.fixture
def held_ledger(home, cli, monkeypatch):
    """The ledger (with one call in it), its busy timeout cut to 50 ms, and a second
    connection that takes its write lock (BEGIN IMMEDIATE) when `take()` is called."""
    assert cli("run", "-m", "mock:echo", "warm up").exit_code == 0
    monkeypatch.setattr("tokencli.ledger.store.BUSY_TIMEOUT_S", 0.05)
    other = sqlite3.connect(home / "ledger.db", isolation_level=None)

    class Holder:
        @staticmethod
        def take() -> None:
            if not other.in_transaction:
                other.execute("BEGIN IMMEDIATE")

        @staticmethod
        def release() -> None:
            if other.in_transaction:
                other.execute("ROLLBACK")

    yield Holder
    Holder.release()
    other.close()


def _busy(home) -> str:
    db = home / "ledger.db"
    return f"tokencli: The ledger {db} is busy: another tokencli process holds it"


def test_a_busy_ledger_is_one_sentence_and_exit_6(home, cli, held_ledger):
    held_ledger.take()
    result = cli("run", "-m", "mock:echo", "hi")
    assert result.exit_code == 6, result.stderr
    db = home / "ledger.db"
    assert result.stderr == (
        f"{_busy(home)}. Try again; 'fuser {db}' or 'lsof {db}' shows which process.\n"
    )
    assert result.stdout == ""
    assert cli("logs").exit_code == 0  # reading it still works (WAL)
    held_ledger.release()
    assert cli("run", "-m", "mock:echo", "hi").exit_code == 0


def test_a_busy_ledger_at_the_finish_keeps_the_usage_in_the_journal(
    home, cli, held_ledger, monkeypatch
):
    finish = Ledger.finish_call

    def held_meanwhile(self, call):  # another process took the lock while the model answered
        held_ledger.take()
        return finish(self, call)

    monkeypatch.setattr(Ledger, "finish_call", held_meanwhile)
    result = cli("run", "-m", "mock:echo", "four words of prompt")
    assert result.exit_code == 0, result.stderr  # the answer was delivered and nothing is lost
    assert result.stdout == "four words of prompt\n"
    journal = journal_path(home / "ledger.db")
    assert result.stderr.startswith(f"{_busy(home)}, so call ")
    assert f"is kept in {journal}; the next tokencli command adds it" in result.stderr
    assert "Internal error" not in result.stderr
    assert len(journal.read_bytes().splitlines()) == 1

    monkeypatch.setattr(Ledger, "finish_call", finish)
    held_ledger.release()
    first, _ = json.loads(cli("logs", "--json").stdout)
    assert first["status"] == "ok"
    assert first["usage"]["input_tokens"] == 4 and first["usage"]["output_tokens"] == 4
    assert not journal.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_ledger_file_for_real(home, cli, tokencli_exe):
    assert cli("run", "-m", "mock:echo", "hi").exit_code == 0
    os.chmod(home / "ledger.db", 0o400)
    proc = subprocess.run(
        [*tokencli_exe, "run", "-m", "mock:echo", "hi"],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 6 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "damage",
    ["garbage", "truncated", "header only"],
)
def test_a_damaged_ledger_exits_6_with_what_to_do(home, cli, tokencli_exe, damage):
    for i in range(30):
        assert cli("run", "-m", "mock:echo", f"call {i} " * 50).exit_code == 0
    db = home / "ledger.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 3])
    else:
        db.write_bytes(data[:100])
    for args in (["logs"], ["report"], ["run", "-m", "mock:echo", "hi"]):
        proc = subprocess.run(
            [*tokencli_exe, *args], env=subprocess_env(home), capture_output=True, text=True
        )
        assert proc.returncode == 6, (args, proc.stderr)
        assert proc.stderr.startswith(f"tokencli: The ledger {db} ")
        assert "'tokencli ledger import'" in proc.stderr or "move it aside" in proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_damage_met_by_a_read_is_the_ledger_sentence_not_a_bug(cli, home, monkeypatch):
    assert cli("run", "-m", "mock:echo", "hi").exit_code == 0

    def malformed(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Ledger, "list_calls", malformed)
    result = cli("logs")
    assert result.exit_code == 6
    assert result.stderr.startswith(f"tokencli: The ledger {home / 'ledger.db'} is damaged")


# ------------------------------------------------------------------ stdout


def _shell(home, line: str) -> subprocess.CompletedProcess[str]:
    exe = f"{sys.executable} -m tokencli"
    return subprocess.run(
        ["bash", "-c", line.replace("TOKENCLI", exe)],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "command", ["run -m mock:echo hi", "logs", "report", "ledger export", "models", "--help"]
)
def test_a_closed_stdout_is_quiet_exit_130_without_a_traceback(home, command):
    _shell(home, "TOKENCLI run -m mock:echo seed >/dev/null")
    proc = _shell(home, f"TOKENCLI {command} >&-")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == ""


def test_a_closed_stdout_records_the_call_as_interrupted(home):
    proc = _shell(home, "TOKENCLI run -m mock:echo hello >&-")
    assert proc.returncode == 130
    (row,) = ledger_rows(home)
    assert (row["status"], row["error_kind"]) == ("interrupted", "stdout_closed")


@pytest.mark.parametrize(
    "command",
    ["run -m mock:echo hi", "logs", "report", "models", "--help", "run --help", "--version"],
)
def test_stdout_on_a_full_device_is_one_sentence_and_exit_2(home, command):
    _shell(home, "TOKENCLI run -m mock:echo seed >/dev/null")
    # Opening /dev/full for writing replaces nothing: the shell only redirects to it.
    proc = _shell(home, f"TOKENCLI {command} >/dev/full")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "tokencli: Cannot write to stdout: No space left on device."
        " Free some space, or send the output elsewhere.\n"
    )


def test_an_early_closed_pipe_is_quiet_for_read_commands(home):
    for i in range(40):
        _shell(home, f"TOKENCLI run -m mock:echo call{i} >/dev/null")
    proc = _shell(home, "TOKENCLI logs -n 40 | head -c 1; exit ${PIPESTATUS[0]}")
    # 0 when all of it fit in the pipe before head left; else as SIGPIPE would.
    assert proc.returncode in (0, 141), proc.stderr
    assert proc.stderr == ""


# More than a pipe holds (64 KiB): the writer always meets the reader gone.
LONG_ANSWER = "run -m mock:lorem --max-tokens 30000 hi"


@pytest.mark.parametrize("command", [LONG_ANSWER, "logs show LAST"])
def test_a_reader_that_goes_away_ends_quietly_with_141_as_sigpipe_would(home, command):
    # `set -o pipefail` scripts see what git, ls or cat give them: 141, not 130 (Ctrl-C).
    assert _shell(home, f"TOKENCLI {LONG_ANSWER} >/dev/null").returncode == 0
    (row,) = ledger_rows(home)
    line = f"TOKENCLI {command.replace('LAST', row['id'])} | head -c 1"
    assert len(_shell(home, line).stdout) == 1
    proc = _shell(home, f"set -o pipefail; {line} >/dev/null")
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Interrupted" not in proc.stderr


def test_a_call_whose_reader_went_away_is_recorded_as_interrupted(home):
    proc = _shell(home, f"TOKENCLI {LONG_ANSWER} | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}")
    assert proc.returncode == 141
    (row,) = ledger_rows(home)
    assert (row["status"], row["error_kind"]) == ("interrupted", "stdout_closed")
    assert row["output_tokens"] > 0


def test_version_to_a_reader_gone_is_141(home):
    proc = _shell(home, "TOKENCLI --version | true; exit ${PIPESTATUS[0]}")
    assert proc.returncode in (0, 141)  # 0 when the line was written before `true` left


# ------------------------------------------------------------------ SIGHUP


def test_sighup_mid_stream_keeps_text_and_tokens(home, tokencli_exe):
    write_config(home, "[providers.mock]\ndelay_ms = 50\n")
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "400", "x"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_pending(home)
    time.sleep(0.5)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert err == "tokencli: Stopped by SIGHUP: the terminal closed.\n"
    (row,) = ledger_rows(home)
    assert (row["status"], row["error_kind"]) == ("interrupted", "terminated")
    printed = out.split()
    assert 0 < len(printed) < 400
    assert row["output_tokens"] in (len(printed), len(printed) + 1)
    assert ledger_rows(home, "SELECT response_text FROM call_texts")[0][0].split() == printed


def test_sighup_ignored_from_the_start_stays_ignored(home, tokencli_exe):
    """Under nohup the call runs to its end."""
    write_config(home, "[providers.mock]\ndelay_ms = 5\n")
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "200", "x"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    wait_for_pending(home)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    (row,) = ledger_rows(home)
    assert row["status"] == "ok" and len(out.split()) == 200


# ------------------------------------------------------------------ a real full disk


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB file system of its own (tmpfs), where the machine lets tests mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a small file system here (needs root and CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def _fill(disk, leave: int) -> None:
    """Fill `disk` up, then give back `leave` bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))


def test_a_really_full_disk_mid_call_keeps_the_usage(tiny_disk, home, tokencli_exe, cli):
    home.mkdir(parents=True, exist_ok=True)
    write_config(home, "[providers.mock]\ndelay_ms = 40\n")
    db = tiny_disk / "ledger.db"
    env = subprocess_env(home, TOKENCLI_DB=str(db))
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "mock:lorem", "--max-tokens", "60", "x"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(db)
            pending = conn.execute("SELECT 1 FROM calls WHERE status = 'pending'").fetchall()
            conn.close()
            if pending:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    _fill(tiny_disk, leave=0)  # full to the last block
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"The ledger {db} cannot be written: the disk is full, so call " in err
    journal = journal_path(db)
    assert journal.exists()
    (tiny_disk / "filler").unlink()
    logs = subprocess.run(
        [*tokencli_exe, "logs", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert logs.returncode == 0, logs.stderr
    (record,) = json.loads(logs.stdout)
    assert record["status"] == "ok"
    assert record["usage"]["output_tokens"] in (len(out.split()), len(out.split()) + 1)
    assert not journal.exists()
    assert reserve_path(db).stat().st_size == 64 * 1024  # made again, for the next time


def remount_read_only(disk) -> None:
    """Read-only for root too: the file system itself is remounted read-only."""
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(disk)], capture_output=True, timeout=10
    )
    if remount.returncode != 0:
        pytest.skip("cannot remount read-only here")


def test_a_ledger_on_a_read_only_file_system_reads_but_is_not_written(
    tiny_disk, home, tokencli_exe
):
    """Reading commands read it (a mounted backup, a snapshot); a call, which must be
    recorded, is exit 6."""
    db = tiny_disk / "ledger.db"
    env = subprocess_env(home, TOKENCLI_DB=str(db))
    first = subprocess.run([*tokencli_exe, "run", "-m", "mock:echo", "hi"], env=env)
    assert first.returncode == 0
    remount_read_only(tiny_disk)
    proc = subprocess.run(
        [*tokencli_exe, "run", "-m", "mock:echo", "hi"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.startswith(f"tokencli: The ledger {db} cannot be written: ")
    assert "writable by this user" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1

    def read(*args: str) -> str:
        done = subprocess.run([*tokencli_exe, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    assert [c["status"] for c in json.loads(read("logs", "--json"))] == ["ok"]
    assert json.loads(read("report", "--json"))["totals"]["calls"] == 1
    assert [json.loads(line)["provider"] for line in read("ledger", "export").splitlines()] == [
        "mock"
    ]
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["ledger.db", "ledger.db-reserve"]


def test_a_read_only_ledger_of_an_older_tokencli_says_to_copy_it(tiny_disk, home, tokencli_exe):
    db = tiny_disk / "ledger.db"
    env = subprocess_env(home, TOKENCLI_DB=str(db))
    assert subprocess.run([*tokencli_exe, "run", "-m", "mock:echo", "hi"], env=env).returncode == 0
    conn = sqlite3.connect(db)  # as an older tokencli left it: its last migration not applied
    with conn:
        conn.execute(
            "DELETE FROM _sqlite_migrations WHERE rowid = (SELECT max(rowid) FROM _sqlite_migrations)"
        )
    conn.close()
    remount_read_only(tiny_disk)
    read = subprocess.run([*tokencli_exe, "logs"], env=env, capture_output=True, text=True)
    assert read.returncode == 6, read.stderr
    assert read.stderr == (
        f"tokencli: The ledger {db} is on a read-only file system and was written by an older"
        " tokencli, so it cannot be upgraded where it is. Copy it to a writable place and point"
        " --db (or TOKENCLI_DB) at the copy.\n"
    )


def test_a_read_only_ledger_with_calls_still_in_its_log_is_not_read_without_them(
    tiny_disk, home, tokencli_exe
):
    """The file alone would miss the calls in the write-ahead log: one sentence, exit 6."""
    db = tiny_disk / "ledger.db"
    env = subprocess_env(home, TOKENCLI_DB=str(db))
    assert subprocess.run([*tokencli_exe, "run", "-m", "mock:echo", "hi"], env=env).returncode == 0
    # A writer killed with a call in the log, whose shared-memory file is gone since.
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "c.execute(\"UPDATE calls SET project = 'late'\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(db)], check=True)
    (tiny_disk / "ledger.db-shm").unlink()
    assert (tiny_disk / "ledger.db-wal").stat().st_size > 0
    remount_read_only(tiny_disk)
    read = subprocess.run([*tokencli_exe, "logs"], env=env, capture_output=True, text=True)
    assert read.returncode == 6, read.stderr
    assert read.stderr.startswith(f"tokencli: The ledger {db} cannot be written: ")
