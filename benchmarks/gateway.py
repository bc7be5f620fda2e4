"""`tokencli serve` overhead: added latency and throughput over calling the upstream directly.

A loopback upstream (uvicorn, its own process) answers OpenAI chat completions instantly, whole
or streamed (3 text chunks, the usage chunk, [DONE]). A load generator with little CPU per
request (raw HTTP/1.1 over asyncio, one keep-alive connection per client) runs the same
requests at 1, 16 and 64 concurrent clients against the upstream directly, through the gateway
(`tokencli serve` in its own process, writing every request to its ledger), and through
LiteLLM's proxy when one is installed (`--litellm PATH`). Reported: p50/p99 latency, the p50
and p99 added over direct, requests per second, CPU per request of the gateway process; then
the ledger's row count against the requests sent, and the gateway's memory over a long run.

    PYTHONPATH=. python benchmarks/gateway.py [--requests 1500] [--memory 20000]
        [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "fake-4o",
    "choices": [{"index": 0, "delta": {"content": "hi "}, "finish_reason": None}],
    "usage": None,
}
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
WHOLE = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "fake-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi hi hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
).encode()
EVENTS = [
    f"data: {json.dumps(CHUNK)}\n\n".encode(),
    f"data: {json.dumps(CHUNK)}\n\n".encode(),
    f"data: {json.dumps({**CHUNK, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n".encode(),
    f"data: {json.dumps({**CHUNK, 'choices': [], 'usage': USAGE})}\n\n".encode(),
    b"data: [DONE]\n\n",
]


async def upstream_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """Answers every POST at once: a completion, or its stream when the body asks."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if b'"stream": true' in body or b'"stream":true' in body:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for event in EVENTS:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(WHOLE)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": WHOLE, "more_body": False})


# ------------------------------------------------------------------ load generator


class Connection:
    """One keep-alive HTTP/1.1 connection; a request is a few syscalls and little parsing."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"content-length:" in lower:
            start = lower.index(b"content-length:") + 15
            length = int(lower[start : lower.index(b"\r\n", start)])
            await self.reader.readexactly(length)
        elif b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                await self.reader.readexactly(size + 2)
        if b"connection: close" in lower:
            self.writer.close()
            self.writer = None
        return status


def request_bytes(port: int, model: str, stream: bool, key: str) -> bytes:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def load(port: int, raw: bytes, clients: int, total: int) -> tuple[list[float], float, int]:
    """`total` requests over `clients` connections: latencies (s), wall time, failures."""
    latencies: list[float] = []
    failures = 0
    per_client = max(total // clients, 1)

    async def client() -> None:
        nonlocal failures
        conn = Connection(port)
        for _ in range(per_client):
            started = time.perf_counter()
            try:
                status = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.writer = None
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    return latencies, time.perf_counter() - started, failures


# ---------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answering(port: int, raw: bytes, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if asyncio.run(Connection(port).request(raw)) == 200:
                return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500, help="per cell (mode × clients)")
    parser.add_argument("--memory", type=int, default=20000, help="requests of the memory run")
    parser.add_argument("--litellm", default=None, help="the litellm executable, if installed")
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[1]
    home = Path(tempfile.mkdtemp(prefix="tokencli-gw-bench-"))
    up_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(root), "TOKENCLI_HOME": str(home)}
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "benchmarks.gateway:upstream_app",
                 "--port", str(up_port), "--log-level", "warning", "--no-access-log"],
                cwd=root, env=env,
            )
        )  # fmt: skip
        (home / "config.toml").write_text(
            f'[providers.openai]\nbase_url = "http://127.0.0.1:{up_port}/v1"\n'
            '[prices."openai:fake-4o"]\ninput = 1\noutput = 2\n'
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "tokencli", "serve", "--port", str(gw_port)],
            cwd=root,
            env={**env, "OPENAI_API_KEY": "sk-x"},
            stderr=subprocess.DEVNULL,
        )
        procs.append(gateway)
        targets = {"direct": (up_port, "x"), "tokencli serve": (gw_port, "x")}
        wait_answering(up_port, request_bytes(up_port, "fake-4o", False, "x"))
        wait_answering(gw_port, request_bytes(gw_port, "fake-4o", False, "x"))
        sent_through_gateway = 1
        if args.litellm:
            ll_port = free_port()
            config = home / "litellm.yaml"
            config.write_text(
                "model_list:\n  - model_name: fake-4o\n    litellm_params:\n"
                f"      model: openai/fake-4o\n      api_base: http://127.0.0.1:{up_port}/v1\n"
                "      api_key: x\n"
                "general_settings:\n  master_key: sk-bench\n"
                "litellm_settings:\n  num_retries: 0\n"
            )
            procs.append(
                subprocess.Popen(
                    [args.litellm, "--config", str(config), "--host", "127.0.0.1",
                     "--port", str(ll_port)],
                    env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                         "LITELLM_TELEMETRY_DISABLED": "true"},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            wait_answering(ll_port, request_bytes(ll_port, "fake-4o", False, "sk-bench"), 180)
            targets["LiteLLM proxy"] = (ll_port, "sk-bench")

        rows = []
        for stream in (False, True):
            for clients in (1, 16, 64):
                p50_direct = p99_direct = 0.0
                for name, (port, key) in targets.items():
                    raw = request_bytes(port, "fake-4o", stream, key)
                    asyncio.run(load(port, raw, clients, min(200, args.requests)))  # warm-up
                    if name == "tokencli serve":
                        sent_through_gateway += (min(200, args.requests) // clients) * clients
                        cpu_before = cpu_seconds(gateway.pid)
                    latencies, wall, failures = asyncio.run(load(port, raw, clients, args.requests))
                    n = len(latencies) + failures
                    cpu_ms = ""
                    if name == "tokencli serve":
                        sent_through_gateway += n
                        cpu_ms = f"{(cpu_seconds(gateway.pid) - cpu_before) / n * 1000:.2f}"
                    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                    if name == "direct":
                        p50_direct, p99_direct = p50, p99
                    rows.append(
                        (
                            "stream" if stream else "whole",
                            clients,
                            name,
                            f"{p50 * 1000:.2f}",
                            f"{p99 * 1000:.2f}",
                            "" if name == "direct" else f"{(p50 - p50_direct) * 1000:.2f}",
                            "" if name == "direct" else f"{(p99 - p99_direct) * 1000:.2f}",
                            f"{len(latencies) / wall:.0f}",
                            cpu_ms,
                            str(failures),
                        )
                    )
                    print(" | ".join(str(x) for x in rows[-1]), flush=True)

        print()
        print(
            "| mode | clients | target | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s | gateway CPU ms/req | failed |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(str(x) for x in row) + " |")

        # Every request recorded: wait for the last rows, then count.
        db = home / "ledger.db"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conn = sqlite3.connect(db)
            total, pending, ok = conn.execute(
                "SELECT count(*), sum(status = 'pending'), sum(status = 'ok') FROM calls"
            ).fetchone()
            conn.close()
            if total >= sent_through_gateway and not pending:
                break
            time.sleep(0.5)
        print(
            f"\nledger: {total} rows ({ok} ok, {pending} pending) for {sent_through_gateway} "
            "requests sent through the gateway"
        )

        if args.memory:
            raw = request_bytes(gw_port, "fake-4o", True, "x")
            step = max(args.memory // 5, 1)
            marks = [f"{rss_mb(gateway.pid):.1f}"]
            for _ in range(5):
                asyncio.run(load(gw_port, raw, 16, step))
                marks.append(f"{rss_mb(gateway.pid):.1f}")
            print(f"gateway RSS (MB) every {step} streamed requests: {' → '.join(marks)}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
