"""Start-up times and per-call overhead, as ratios against baselines in the same run.

    python benchmarks/startup.py [--runs 15] [--calls 200] [--peer PATH_TO_llm]

1. Whole-process wall time (median of --runs) of tokencli commands, next to
   `python -c pass` and `python -c "import typer"` (the framework's floor).
2. Per-call overhead of `run` against a loopback server speaking OpenAI's
   format, next to a bare httpx request:
   - whole process: `tokencli run --no-stream` vs a `python -c` that imports
     httpx and posts the same request;
   - in process: Engine.run (ledger rows written before and after, exact
     pricing) vs httpx.Client.post, per call, over --calls calls.

Machines here are shared and noisy: read the ratios, not the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PY = sys.executable
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes; without this, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every loopback answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(COMPLETION)))
        self.end_headers()
        self.wfile.write(COMPLETION)


def median_ms(cmd: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(cmd, env=env, capture_output=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(cmd, env=env, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {result.stderr.decode()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--peer", help="path to a peer CLI (e.g. simonw's llm) to time its --help too"
    )
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TOKENCLI_HOME": home}
        Path(home, "config.toml").write_text(
            f'[providers.loop]\ntype = "openai"\nbase_url = "{url}"\nprices_from = "openai"\n'
        )
        # The installed console script, as users start it (`python -m` adds runpy's cost).
        script = Path(PY).parent / "tokencli"
        tk = [str(script)] if script.exists() else [PY, "-m", "tokencli"]
        for i in range(50):  # a ledger with some history, and a warm price index
            subprocess.run(
                [*tk, "run", "-m", "mock:echo", f"call {i}"],
                env=env,
                capture_output=True,
                check=True,
            )
        subprocess.run([*tk, "models"], env=env, capture_output=True, check=True)

        rows: list[tuple[str, float]] = []
        base = median_ms([PY, "-c", "pass"], env, args.runs)
        rows.append(("python -c pass (baseline)", base))
        rows.append(
            (
                "python -c 'import typer' (framework floor)",
                median_ms([PY, "-c", "import typer"], env, args.runs),
            )
        )
        for label, extra in [
            ("tokencli --version", ["--version"]),
            ("tokencli --help", ["--help"]),
            ("tokencli logs", ["logs"]),
            ("tokencli logs --json -n 50", ["logs", "--json", "-n", "50"]),
            ("tokencli models (warm index)", ["models"]),
            ("tokencli config show", ["config", "show"]),
            ("tokencli run -m mock:echo", ["run", "-m", "mock:echo", "hi"]),
        ]:
            rows.append((label, median_ms([*tk, *extra], env, args.runs)))
        if args.peer:
            rows.append(
                (
                    f"{Path(args.peer).name} --help (peer)",
                    median_ms([args.peer, "--help"], env, args.runs),
                )
            )

        print(f"Start-up, median of {args.runs} runs (ratio to python -c pass)")
        for label, ms in rows:
            print(f"  {label:<44} {ms:7.1f} ms  {ms / base:5.1f}x")

        bare = (
            "import httpx,sys; r = httpx.post(sys.argv[1] + '/chat/completions', "
            "json={'model': 'gpt-4o-mini', 'messages': [{'role': 'user', 'content': 'ping'}]}, "
            "headers={'authorization': 'Bearer x'}); r.json()"
        )
        bare_ms = median_ms([PY, "-c", bare, url], env, args.runs)
        run_ms = median_ms(
            [*tk, "run", "-m", "loop:gpt-4o-mini", "--no-stream", "ping"], env, args.runs
        )
        print("\nOne call against a loopback server, whole process")
        print(f"  {'bare httpx request':<44} {bare_ms:7.1f} ms  1.0x")
        print(
            f"  {'tokencli run (ledger + exact pricing)':<44} {run_ms:7.1f} ms  {run_ms / bare_ms:5.2f}x"
        )

        in_process(url, home, args.calls)
    server.shutdown()


def in_process(url: str, home: str, calls: int) -> None:
    import httpx

    from tokencli.calls.engine import Engine, RunOptions
    from tokencli.ledger import Ledger
    from tokencli.settings.loader import load_settings

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}
    with httpx.Client() as client:
        client.post(f"{url}/chat/completions", json=body).json()
        start = time.perf_counter()
        for _ in range(calls):
            client.post(
                f"{url}/chat/completions", json=body, headers={"authorization": "Bearer x"}
            ).json()
        bare = (time.perf_counter() - start) / calls * 1000

    settings = load_settings({"TOKENCLI_HOME": home})
    engine = Engine(settings, ledger=lambda: Ledger.open(settings.paths.db))  # type: ignore[arg-type, return-value]
    options = RunOptions(prompt="ping", model="loop:gpt-4o-mini", stream=False)
    engine.run(options)
    start = time.perf_counter()
    for _ in range(calls):
        engine.run(options)
    engine_ms = (time.perf_counter() - start) / calls * 1000
    engine.close()
    print(f"\nPer call in one process, mean of {calls} calls")
    print(f"  {'httpx.Client.post':<44} {bare:7.2f} ms  1.0x")
    print(
        f"  {'Engine.run (two ledger writes, pricing)':<44} {engine_ms:7.2f} ms  {engine_ms / bare:5.2f}x"
    )
    print(f"  {'overhead per call':<44} {engine_ms - bare:7.2f} ms")


if __name__ == "__main__":
    main()
