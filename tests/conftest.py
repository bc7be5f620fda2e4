"""Shared fixtures: an isolated TOKENCLI_HOME, a loopback provider, an in-process CLI."""

from __future__ import annotations

import io
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import FakeServer
from tokencli.cli.app import main
from tokencli.cli.context import Streams

KEY_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DEEPSEEK_API_KEY",
    "DASHSCOPE_API_KEY",
    "MOONSHOT_API_KEY",
    "ZHIPUAI_API_KEY",
    "SILICONFLOW_API_KEY",
    "OPENROUTER_API_KEY",
    "OLLAMA_API_KEY",
    "VLLM_API_KEY",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TOKENCLI_HOME and no real provider keys."""
    home = tmp_path / "home"
    monkeypatch.setenv("TOKENCLI_HOME", str(home))
    for var in (*KEY_VARS, "TOKENCLI_CONFIG", "TOKENCLI_DB", "TOKENCLI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return home


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    yield srv
    srv.close()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class _Text(io.TextIOWrapper):
    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8", newline="")
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def value(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]


def run_cli(
    *args: str,
    input: str | bytes | None = None,
    stdin_tty: bool | None = None,
    stdout_tty: bool = False,
    stderr_tty: bool = False,
) -> Result:
    """Run `tokencli ARGS` in this process with its own streams."""
    data = input.encode() if isinstance(input, str) else (input or b"")
    stdin = _Text(data, tty=input is None if stdin_tty is None else stdin_tty)
    stdout, stderr = _Text(), _Text()
    streams = Streams(stdin, stdout, stderr, stdin.isatty(), stdout_tty, stderr_tty)
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = stdout, stderr, stdin  # click's help goes to sys.stdout
    try:
        main(list(args), streams)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdout, sys.stderr, sys.stdin = saved
    return Result(code, stdout.value(), stderr.value())


@pytest.fixture
def cli():
    return run_cli


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text, "utf-8")
    return path


def ledger_rows(home: Path, sql: str = "SELECT * FROM calls ORDER BY id") -> list[sqlite3.Row]:
    conn = sqlite3.connect(home / "ledger.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for_pending(home: Path, timeout: float = 30.0) -> str:
    """The id of the call another process has started (its pending row), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (home / "ledger.db").exists():
            try:
                rows = ledger_rows(home, "SELECT id FROM calls WHERE status = 'pending'")
            except sqlite3.OperationalError:
                rows = []
            if rows:
                return str(rows[0]["id"])
        time.sleep(0.05)
    raise AssertionError("no pending call appeared")


def failing_statements(monkeypatch: pytest.MonkeyPatch, starting: str, message: str) -> None:
    """Every SQLite statement starting with `starting` fails with `message` (a full disk, a
    read-only file), in this process, from the next connection on."""

    class Failing(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.startswith(starting):
                raise sqlite3.OperationalError(message)
            return super().execute(sql, *args)

    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, factory=Failing, **k))


def provider_config(name: str, type_: str, url: str, **fields: object) -> str:
    """A [providers.NAME] table pointing a protocol at the fake server."""
    lines = [f"[providers.{name}]", f'type = "{type_}"', f'base_url = "{url}"']
    for key, value in fields.items():
        lines.append(
            f"{key} = {value!r}".replace("'", '"')
            if isinstance(value, str)
            else f"{key} = {str(value).lower() if isinstance(value, bool) else value}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def tokencli_exe() -> list[str]:
    """How to start a real tokencli process (for signals and concurrency)."""
    return [sys.executable, "-m", "tokencli"]


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env["TOKENCLI_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
