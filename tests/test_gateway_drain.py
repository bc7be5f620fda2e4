"""SIGTERM: the gateway stops accepting, lets streams in flight finish within --drain, and
records what is still running after it as interrupted."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from tests.conftest import ledger_rows, subprocess_env
from tests.fakes import openai_chunks, openai_usage, sse, sse_reply
from tests.gateway_harness import gateway_config, wait_for

pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home, tokencli_exe, drain: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = subprocess_env(home, OPENAI_API_KEY="sk-upstream")
    proc = subprocess.Popen(
        [*tokencli_exe, "serve", "--port", str(port), "--drain", drain],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health").status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=20)
    return proc, url


def stream_in_thread(url: str, out: dict) -> threading.Thread:
    def go() -> None:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        }
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as r:
                for chunk in r.iter_raw():
                    out.setdefault("chunks", []).append(chunk)
        except httpx.HTTPError as exc:
            out["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    wait_for(lambda: bool(out.get("chunks")), timeout=10)
    return thread


@pytest.mark.heavy
def test_sigterm_lets_a_stream_in_flight_finish(home, server, tokencli_exe):
    gateway_config(home, server.url)
    server.queue(
        sse_reply(sse(openai_chunks(["a", "b", "c", "d"], openai_usage(4, 4)), pause=0.25))
    )
    proc, url = start(home, tokencli_exe, "10s")
    out: dict = {}
    thread = stream_in_thread(url, out)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.HTTPError):  # no longer accepting
        httpx.get(url + "/health", timeout=2)
    thread.join(timeout=20)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "gateway stopped" in stderr
    assert b"".join(out["chunks"]).endswith(b"data: [DONE]\n\n")
    row = ledger_rows(home)[0]
    assert (row["status"], row["input_tokens"], row["output_tokens"]) == ("ok", 4, 4)


@pytest.mark.heavy
def test_a_stream_still_running_after_the_drain_is_recorded_interrupted(home, server, tokencli_exe):
    gateway_config(home, server.url)
    pieces = [f"w{i} " for i in range(12)]
    server.queue(sse_reply(sse(openai_chunks(pieces, openai_usage(4, 12)), pause=0.5)))
    proc, url = start(home, tokencli_exe, "1s")
    out: dict = {}
    thread = stream_in_thread(url, out)
    proc.send_signal(signal.SIGTERM)
    thread.join(timeout=20)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    row = ledger_rows(home)[0]
    assert (row["status"], row["error_kind"]) == ("interrupted", "gateway_stopped"), stderr
    assert row["usage_source"] == "estimated"
    assert row["output_tokens"] > 0
