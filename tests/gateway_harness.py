"""A real gateway (uvicorn in a thread, on a free loopback port) for the gateway tests."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ledger_rows, write_config

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

PRICES = """
[prices."openai:gpt-4o-mini"]
input = 1
output = 2
[prices."anthropic:claude-sonnet-4-5"]
input = 3
output = 15
"""


def gateway_config(home: Path, upstream: str, extra: str = "") -> None:
    write_config(
        home,
        f"""
[providers.openai]
base_url = "{upstream}/v1"
[providers.anthropic]
base_url = "{upstream}"
{PRICES}
{extra}
""",
    )


@dataclass
class Running:
    url: str
    log: io.StringIO
    gateway: Any
    server: Any

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"


@contextlib.contextmanager
def running_gateway(
    env: dict[str, str] | None = None, drain: float = 5.0, alert_every: float = 10.0
) -> Iterator[Running]:
    from tokencli.cli.context import AppContext
    from tokencli.gateway.app import Gateway, serve

    environment = dict(os.environ)
    environment.setdefault("OPENAI_API_KEY", "sk-upstream-openai")
    environment.setdefault("ANTHROPIC_API_KEY", "sk-ant-upstream")
    environment.update(env or {})
    log = io.StringIO()
    context = AppContext(env=environment)
    engine = context.engine()
    gateway = Gateway(context.settings, engine, log=log, alert_every=alert_every)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    holder: list[Any] = []
    thread = threading.Thread(
        target=serve,
        args=(gateway, "127.0.0.1", port),
        kwargs={"drain": drain, "sockets": [sock], "ready": holder.append},
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not (holder and holder[0].started):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield Running(f"http://127.0.0.1:{port}", log, gateway, holder[0])
    finally:
        holder[0].should_exit = True
        thread.join(timeout=15)
        sock.close()
        engine.close()


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Rows are written off the event loop, just after the client has its answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def finished_rows(home: Path, n: int = 1) -> list[Any]:
    """The ledger's rows once `n` of them are there and none is still pending."""

    def done() -> bool:
        rows = ledger_rows(home)
        return len(rows) >= n and all(r["status"] != "pending" for r in rows)

    wait_for(done)
    return ledger_rows(home)
