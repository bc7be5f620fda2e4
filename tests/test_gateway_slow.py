"""Slow clients (slowloris): a request's headers, then its body, must arrive within
`[gateway] read_timeout`, else 408 and the connection closes; the gateway keeps serving."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx

from tests.conftest import ledger_rows
from tests.fakes import json_reply, openai_completion, openai_usage
from tests.gateway_harness import gateway_config, running_gateway

SLOW = "[gateway]\nread_timeout = 1\n"


def trickle(
    url: str, head: bytes, then: bytes, every: float = 0.1, until: float = 0.7
) -> tuple[bytes, float]:
    """Send `head`, then `then` a byte every `every` seconds for `until` seconds (never all
    of it), then wait for the gateway's answer; what it sent back, and after how long.
    (Trickling on past the deadline would race the gateway's close: a byte sent after it
    makes the kernel reset the connection and drop the answer not yet read.)"""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    started = time.monotonic()
    try:
        if head:
            sock.sendall(head)
        for byte in then:
            if select.select([sock], [], [], every)[0] or time.monotonic() - started > until:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        select.select([sock], [], [], 10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer, time.monotonic() - started
    finally:
        sock.close()


def body_of(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def test_a_body_sent_a_byte_at_a_time_gets_408_in_the_clients_protocol(home, server):
    gateway_config(home, server.url, SLOW)
    body = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode() + b" " * 200
    with running_gateway() as gw:
        answers = {}
        for path in ("/v1/chat/completions", "/v1/messages"):
            head = (
                f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n"
            ).encode()
            answers[path] = trickle(gw.url, head, body)
        server.queue(json_reply(openai_completion("still here", openai_usage(1, 1))))
        after = httpx.post(
            gw.openai_base + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
    for answer, seconds in answers.values():
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"x-should-retry: false" in answer.lower()
        assert 0.9 < seconds < 5
    openai_error = body_of(answers["/v1/chat/completions"][0])["error"]
    assert openai_error["code"] == "request_timeout"
    assert openai_error["message"] == (
        "The request body did not arrive within 1 s ([gateway] read_timeout)."
    )
    anthropic_error = body_of(answers["/v1/messages"][0])
    assert anthropic_error["type"] == "error"
    assert anthropic_error["error"]["type"] == "timeout_error"
    assert after.json()["choices"][0]["message"]["content"] == "still here"
    assert len(server.requests) == 1  # the slow ones never went upstream
    assert [r["status"] for r in ledger_rows(home)] == ["ok"]


def test_headers_sent_a_byte_at_a_time_or_never_get_408_and_a_closed_connection(home, server):
    gateway_config(home, server.url, SLOW)
    headers = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 200
    with running_gateway() as gw:
        slow_headers = trickle(gw.url, b"", headers)
        silent = trickle(gw.url, b"", b"")
        health = httpx.get(gw.url + "/health")
    for answer, seconds in (slow_headers, silent):
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"\r\nx-should-retry: false\r\nconnection: close\r\n" in answer
        assert body_of(answer)["error"]["code"] == "request_timeout"
        assert 0.9 < seconds < 5
    assert health.json() == {"status": "ok"}
    assert server.requests == []


def test_a_keep_alive_connection_idle_between_requests_is_not_cut_by_it(home, server):
    # The deadline is on reading a request: idle time after an answer is keep-alive's.
    gateway_config(home, server.url, SLOW)
    server.queue(*[json_reply(openai_completion("ok", openai_usage(1, 1))) for _ in range(2)])
    body = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    with running_gateway() as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            answers = []
            for _ in range(2):
                sock.sendall(request)
                answer = b""
                while not answer.endswith(b"}"):
                    answer += sock.recv(65536)
                answers.append(answer)
                time.sleep(1.5)
    assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2


def test_read_timeout_must_be_positive(home):
    from tests.conftest import run_cli, write_config

    write_config(home, "[gateway]\nread_timeout = 0\n")
    result = run_cli("config", "validate")
    assert result.exit_code == 6
    assert "gateway.read_timeout must be greater than 0." in result.stderr


def test_connections_past_max_connections_get_503_and_the_gateway_keeps_serving(home, server):
    """A flood of connections (idle ones included) is capped by [gateway] max_connections:
    the next is answered 503 at once, and once they close the gateway serves again."""
    gateway_config(home, server.url, "[gateway]\nmax_connections = 2\n")
    with running_gateway() as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.2)  # both accepted and counted
            refused = httpx.get(f"{gw.url}/health", timeout=5)
            assert refused.status_code == 503
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{gw.url}/health", timeout=5).status_code == 200


def test_max_connections_must_be_positive(cli, home):
    gateway_config(home, "http://127.0.0.1:9", "[gateway]\nmax_connections = 0\n")
    result = cli("config", "validate")
    assert result.exit_code == 6
    assert "gateway.max_connections must be greater than 0" in result.stderr
