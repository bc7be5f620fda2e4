"""Fault injection against a loopback server speaking the real wire formats.

Every scenario asserts the exit code, stdout and the ledger rows.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import ledger_rows, provider_config, subprocess_env, write_config
from tests.fakes import (
    Cut,
    Pause,
    Reply,
    json_reply,
    openai_chunks,
    openai_completion,
    openai_usage,
    sse,
    sse_reply,
)

OK = openai_completion("fine", openai_usage(10, 1))


def setup(home, server, extra: str = "", **fields):
    fields.setdefault("prices_from", "openai")
    fields.setdefault("retry_backoff", 0.01)
    write_config(home, provider_config("fake", "openai", server.url + "/v1", **fields) + extra)


def statuses(home):
    return [(r["status"], r["error_kind"]) for r in ledger_rows(home)]


# ------------------------------------------------------------------- retries


def test_429_with_retry_after_is_retried_and_announced(cli, home, server):
    setup(home, server)
    server.queue(
        json_reply(
            {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
            429,
            {"retry-after-ms": "50"},
        )
    )
    server.queue(json_reply(OK))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert r.exit_code == 0 and r.stdout == "fine\n"
    assert "tokencli: fake is rate limiting; retrying in 0.1 s (attempt 2 of 3)." in r.stderr
    rows = ledger_rows(home)
    assert statuses(home) == [("error", "rate_limit"), ("ok", None)]
    assert json.loads(rows[1]["extra"]) == {"attempt": 2, "retry_of": rows[0]["id"]}
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            429,
        ),
        json_reply({"error": {"message": "Insufficient Balance"}}, 402),
        json_reply(
            {
                "type": "error",
                "error": {"type": "billing_error", "message": "Your credit balance is too low"},
            },
            400,
        ),
        json_reply({"error": {"code": "1113", "message": "余额不足或无可用资源包,请充值。"}}, 429),
    ],
)
def test_out_of_money_is_never_retried(cli, home, server, reply):
    setup(home, server)
    server.queue(reply)
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 4 and r.stdout == ""
    assert (
        "out of credit or quota" in r.stderr and "Top up" in r.stderr and "retrying" not in r.stderr
    )
    assert statuses(home) == [("error", "billing")]
    assert len(server.requests) == 1


def test_server_errors_exhaust_the_retries(cli, home, server):
    setup(home, server, max_retries=2)
    for _ in range(3):
        server.queue(json_reply({"error": {"message": "The server had an error"}}, 500))
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 5
    assert r.stderr.count("retrying") == 2 and "Gave up after 3 attempts" in r.stderr
    assert statuses(home) == [("error", "server")] * 3


def test_overloaded_then_html_gateway_page_then_success(cli, home, server):
    setup(home, server)
    server.queue(
        json_reply(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
        )
    )
    server.queue(
        Reply(502, {"content-type": "text/html"}, b"<html><title>502 Bad Gateway</title></html>")
    )
    server.queue(sse_reply(sse(openai_chunks(["third", " time"], openai_usage(5, 2)))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 0 and r.stdout == "third time\n"
    assert statuses(home) == [("error", "overloaded"), ("error", "server"), ("ok", None)]


def test_read_timeout_is_retried(cli, home, server):
    setup(home, server, read_timeout=0.3)
    server.queue(
        Reply(
            200,
            {"content-type": "text/event-stream"},
            chunks=[Pause(1.0), *sse(openai_chunks(["late"], None))],
        )
    )
    server.queue(sse_reply(sse(openai_chunks(["on time"], openai_usage(3, 2)))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 0 and r.stdout == "on time\n"
    assert "timed out; retrying" in r.stderr
    assert statuses(home) == [("error", "timeout"), ("ok", None)]


def test_retry_after_longer_than_the_budget_gives_up_at_once(cli, home, server):
    setup(home, server, retry_max_wait=5)
    server.queue(json_reply({"error": {"message": "slow down"}}, 429, {"retry-after": "120"}))
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 5
    assert "It asked to wait 120 s, more than retry_max_wait (5 s)" in r.stderr
    assert len(server.requests) == 1


def test_cut_after_text_is_not_retried(cli, home, server):
    setup(home, server)
    server.queue(
        sse_reply([*sse(openai_chunks(["half an ", "answer"], None)[:3], done=False), Cut()])
    )
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 5 and r.stdout == "half an answer\n"
    assert "retrying" not in r.stderr and "What arrived was printed and recorded" in r.stderr
    assert statuses(home) == [("error", "stream_cut")]
    assert ledger_rows(home)[0]["usage_source"] == "estimated"


def test_malformed_json_is_not_retried(cli, home, server):
    setup(home, server)
    server.queue(Reply(200, {}, b'{"choices": [ {"message": '))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert r.exit_code == 5 and r.stdout == ""
    assert statuses(home) == [("error", "bad_response")]


# ------------------------------------------------------------------ fallback


def test_fallback_chain_tries_the_next_model(cli, home, server):
    config = (
        provider_config(
            "down", "openai", "http://127.0.0.1:9/v1", max_retries=0, connect_timeout=2.0
        )
        + provider_config("fake", "openai", server.url + "/v1", prices_from="openai")
        + '[aliases]\nsafe = ["down:gpt-4o-mini", "fake:gpt-4o-mini"]\n'
    )
    write_config(home, config)
    server.queue(json_reply(OK))
    r = cli("run", "-m", "safe", "--no-stream", "q")
    assert r.exit_code == 0 and r.stdout == "fine\n"
    assert "down:gpt-4o-mini failed (network); falling back to fake:gpt-4o-mini." in r.stderr
    rows = ledger_rows(home)
    assert [(x["provider"], x["status"], x["alias"]) for x in rows] == [
        ("down", "error", "safe"),
        ("fake", "ok", "safe"),
    ]


def test_fallback_does_not_hide_a_billing_error(cli, home, server):
    write_config(
        home,
        provider_config("fake", "openai", server.url + "/v1")
        + '[aliases]\nchain = ["fake:a", "mock:echo"]\n',
    )
    server.queue(json_reply({"error": {"message": "Insufficient Balance"}}, 402))
    r = cli("run", "-m", "chain", "q")
    assert r.exit_code == 4 and statuses(home) == [("error", "billing")]


# --------------------------------------------------------------- interruption


def _slow_stream(words: int = 200, delay: float = 0.05):
    return sse_reply(
        sse(openai_chunks([f"w{i} " for i in range(words)], openai_usage(10, words)), pause=delay)
    )


def _wait_for_output(proc, nbytes=10, timeout=15.0):
    import os
    import select

    got = b""
    deadline = time.time() + timeout
    while len(got) < nbytes and time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            got += os.read(proc.stdout.fileno(), 4096)
    assert len(got) >= nbytes, "the answer never started"
    return got


def test_sigint_mid_stream_from_a_real_provider(home, server, tokencli_exe):
    setup(home, server)
    server.queue(_slow_stream())
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "fake:gpt-4o-mini", "a question"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = _wait_for_output(proc)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=15)
    out = (head + rest).decode()
    assert proc.returncode == 130 and b"Traceback" not in err
    assert out.startswith("w0 w1 ") and "w199" not in out
    row = ledger_rows(home)[0]
    assert (row["status"], row["error_kind"], row["usage_source"]) == (
        "interrupted",
        "interrupted",
        "estimated",
    )
    assert row["output_tokens"] > 0 and row["input_tokens"] > 0 and row["cost_pico"] > 0
    assert ledger_rows(home, "SELECT response_text FROM call_texts")[0][0] == out.rstrip("\n")


def test_sigkill_mid_stream_leaves_a_row_the_next_command_settles(cli, home, server, tokencli_exe):
    setup(home, server)
    server.queue(_slow_stream())
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", "fake:gpt-4o-mini", "q"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for_output(proc)
    proc.kill()
    proc.wait(timeout=10)
    assert statuses(home) == [("pending", None)]
    r = cli("logs", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)[0]["status"] == "interrupted"
    assert statuses(home) == [("interrupted", "killed")]


# ------------------------------------------------------------------ rate limits


@pytest.mark.heavy
def test_sixteen_processes_share_one_rate_limit(home, server, tokencli_exe):
    """rpm = 120 is one request every 0.5 s, however many processes ask at once.

    Sixteen processes started together want to send within a few seconds; the
    shared limit makes them queue, and the provider never sees more than the
    configured rate.
    """
    setup(home, server, rpm=120)
    calls = 16
    for _ in range(calls):
        server.queue(json_reply(OK))
    env = subprocess_env(home)
    procs = [
        subprocess.Popen(
            [*tokencli_exe, "run", "-m", "fake:gpt-4o-mini", "--no-stream", f"q{n}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(calls)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * calls, errors[:2]
    assert (
        sum("rate limit (120 requests/min)" in e for e in errors) >= calls // 2
    )  # most had to queue
    rows = ledger_rows(home, "SELECT ts FROM calls ORDER BY ts")
    assert len(rows) == calls and len(server.requests) == calls
    from tokencli.ledger import parse_ts

    sent = [parse_ts(r["ts"]).timestamp() for r in rows]
    # A call's row is written as it is sent. Each process sends no earlier than its
    # slot, 0.5 s after the previous one; a process the busy machine wakes late can
    # land nearer the next, so windows get a little slack: no 4-second window holds
    # more than 8 + 2 calls, and the run takes at least (n - 1) / rate.
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 4.0) <= 10
    assert sent[-1] - sent[0] >= (calls - 1) * 0.5 * 0.95


def test_rate_limiter_paces_and_settles(tmp_path):
    from tokencli.calls.limits import RateLimiter
    from tokencli.ledger import Ledger
    from tokencli.settings.loader import load_settings

    (tmp_path / "config.toml").write_text("[providers.mock]\nrpm = 120\ntpm = 6000\n")
    settings = load_settings({"TOKENCLI_HOME": str(tmp_path)})
    ledger = Ledger.open(tmp_path / "l.db")
    clock = [1000.0]
    limiter = RateLimiter(settings, lambda: ledger, lambda: clock[0])
    # 2 requests/s and 100 tokens/s: the token bucket is the tighter one here.
    first = limiter.acquire("mock", "echo", 50)
    second = limiter.acquire("mock", "echo", 50)
    third = limiter.acquire("mock", "echo", 50)
    assert [first.wait, second.wait, third.wait] == [0.0, 0.5, 1.0]
    limiter.settle("mock", "echo", third, actual_tokens=10)  # 40 tokens refunded: 0.4 s
    clock[0] += 1.5
    assert limiter.acquire("mock", "echo", 0).wait == pytest.approx(0.0)
    other = limiter.acquire("mock", "lorem", 50)  # buckets are per model
    assert other.wait == 0.0


def test_provider_headers_hold_back_later_calls(cli, home, server):
    setup(home, server)
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1.2s",
        "x-request-id": "r1",
    }
    server.queue(json_reply(OK, 200, headers))
    server.queue(json_reply(OK))
    assert cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q").exit_code == 0
    start = time.monotonic()
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert r.exit_code == 0 and "rate limit" in r.stderr
    assert time.monotonic() - start >= 0.9


# ------------------------------------------------------------------ cache


def test_cache_answers_identical_requests_from_the_ledger(cli, home, server):
    setup(home, server)
    server.queue(json_reply(openai_completion("cached answer", openai_usage(1000, 500))))
    first = json.loads(
        cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "--cache", "--json", "q").stdout
    )
    second = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "--cache", "--json", "q")
    assert second.exit_code == 0 and len(server.requests) == 1
    data = json.loads(second.stdout)
    assert data["text"] == "cached answer" and data["status"] == "cached"
    assert data["cost"] == first["cost"] == "0.00045"  # what the cache saved
    assert data["price_source"] == f"saved: cached answer of {first['id']}"
    assert data["usage"]["input_tokens"] == 1000
    # A different temperature is a different request.
    server.queue(json_reply(openai_completion("fresh", openai_usage(1, 1))))
    third = cli(
        "run", "-m", "fake:gpt-4o-mini", "--no-stream", "--cache", "--temperature", "0.5", "q"
    )
    assert third.stdout == "fresh\n" and len(server.requests) == 2
    # Without --cache nothing is reused.
    server.queue(json_reply(openai_completion("uncached", openai_usage(1, 1))))
    assert cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q").stdout == "uncached\n"
    assert [r["status"] for r in ledger_rows(home)] == ["ok", "cached", "ok", "ok"]


def test_cache_from_config_with_ttl(cli, home, server):
    import sqlite3

    setup(home, server, cache=True, cache_ttl=60)
    server.queue(json_reply(OK))
    server.queue(json_reply(OK))
    assert cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q").exit_code == 0
    assert cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q").exit_code == 0
    assert len(server.requests) == 1
    conn = sqlite3.connect(home / "ledger.db")
    conn.execute("UPDATE calls SET ts = '2020-01-01T00:00:00.000000Z'")
    conn.commit()
    conn.close()
    assert cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q").exit_code == 0
    assert len(server.requests) == 2  # the old answer had expired


# ------------------------------------------------------------------ guards


def test_oversized_prompt_is_refused_before_sending(cli, home, server):
    setup(home, server, max_input_tokens=100)
    r = cli("run", "-m", "fake:gpt-4o-mini", "word " * 1000)
    assert r.exit_code == 2
    assert (
        "The prompt is about 1,250 tokens, over the 100-token limit (max_input_tokens) for fake:gpt-4o-mini."
        in r.stderr
    )
    assert server.requests == [] and not (home / "ledger.db").exists()


def test_per_model_guard_overrides_the_provider(cli, home, server):
    setup(home, server, extra='[models."fake:small"]\nmax_input_tokens = 5\n')
    r = cli("run", "-m", "fake:small", "this prompt is longer than five tokens for sure")
    assert r.exit_code == 2 and "5-token limit" in r.stderr


def test_a_prompt_exactly_at_the_input_limit_is_sent_and_one_over_is_refused(cli, home):
    write_config(home, "[defaults]\nmax_input_tokens = 10\n")
    # Latin text is estimated at four characters a token: 40 characters are 10 tokens.
    at_limit = cli("run", "-m", "mock:echo", "abcd" * 10)
    assert at_limit.exit_code == 0, at_limit.stderr
    assert at_limit.stdout == "abcd" * 10 + "\n"
    over = cli("run", "-m", "mock:echo", "abcd" * 11)
    assert (over.exit_code, over.stdout) == (2, "")
    assert (
        "The prompt is about 11 tokens, over the 10-token limit (max_input_tokens) for mock:echo."
        in over.stderr
    )
    assert len(ledger_rows(home)) == 1  # only the call that was sent


# ------------------------------------------------------------------ batch


def test_batch_runs_concurrently_and_reports_failures(cli, home, server, tmp_path):
    setup(home, server, max_retries=0)
    lines = [json.dumps({"id": f"i{n}", "prompt": f"prompt {n}"}) for n in range(6)]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    for n in range(6):
        server.queue(
            json_reply(OK) if n != 3 else json_reply({"error": {"message": "bad key"}}, 401)
        )
    r = cli("batch", str(path), "-m", "fake:gpt-4o-mini", "-c", "3")
    assert r.exit_code == 4  # the failed item's code
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(x["id"] for x in results) == [f"i{n}" for n in range(6)]
    assert sum(1 for x in results if x["status"] == "ok") == 5
    failed = [x for x in results if x["status"] == "error"]
    assert len(failed) == 1 and failed[0]["error"]["kind"] == "auth"
    assert "1 failed" in r.stderr and "line " in r.stderr

    # The rerun pays only for the item that failed.
    server.queue(json_reply(OK))
    again = cli("batch", str(path), "-m", "fake:gpt-4o-mini")
    assert again.exit_code == 0 and len(server.requests) == 7
    results = [json.loads(line) for line in again.stdout.splitlines()]
    assert sum(x["skipped"] for x in results) == 5 and all(x["status"] == "ok" for x in results)


def test_batch_plain_lines_output_file_and_bad_input(cli, home, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("one\n\n# a comment\ntwo\n")
    out = tmp_path / "out.jsonl"
    r = cli("batch", str(path), "-m", "mock:echo", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    assert sorted(json.loads(x)["text"] for x in out.read_text().splitlines()) == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"promt": "typo"}\n')
    r = cli("batch", str(bad), "-m", "mock:echo")
    assert r.exit_code == 2 and "Line 2 has unknown fields: promt." in r.stderr
    r = cli("batch", str(tmp_path / "missing.txt"))
    assert r.exit_code == 2 and "No such file" in r.stderr


def test_interrupted_batch_resumes_without_paying_twice(home, tmp_path, tokencli_exe, cli):
    write_config(home, "[providers.mock]\ndelay_ms = 30\n")
    path = tmp_path / "items.txt"
    path.write_text("".join(f"item number {n}\n" for n in range(12)))
    proc = subprocess.Popen(
        [*tokencli_exe, "batch", str(path), "-m", "mock:lorem", "--max-tokens", "20", "-c", "2"],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if len(ledger_rows(home, "SELECT id FROM calls WHERE status = 'ok'")) >= 3:
                break
        except Exception:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    done_before = {
        json.loads(line)["id"] for line in out.splitlines() if json.loads(line)["status"] == "ok"
    }
    assert 3 <= len(done_before) < 12
    assert "interrupted" in err
    paid_before = len(ledger_rows(home, "SELECT id FROM calls WHERE status = 'ok'"))

    r = cli("batch", str(path), "-m", "mock:lorem", "--max-tokens", "20", "-c", "2")
    assert r.exit_code == 0
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == 12 and all(x["status"] == "ok" for x in results)
    assert {x["id"] for x in results if x["skipped"]} == done_before
    paid_after = len(ledger_rows(home, "SELECT id FROM calls WHERE status = 'ok'"))
    assert paid_after - paid_before == 12 - len(done_before)
