"""Gateway clients: keys (401), budgets (a non-retryable refusal), rate limits (429),
bad requests, a client that leaves mid-stream, and many streams at once."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib

import httpx
import pytest

from tests.conftest import ledger_rows, run_cli
from tests.fakes import (
    Pause,
    json_reply,
    openai_chunks,
    openai_completion,
    openai_usage,
    sse,
    sse_reply,
)
from tests.gateway_harness import gateway_config, running_gateway, wait_for

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

CLIENTS = """
[gateway.clients.editor]
key_env = "EDITOR_KEY"
project = "writing"
user = "ana"
tags = { team = "docs" }
[gateway.clients.bot]
key_env = "BOT_KEY"
rpm = 2
models = ["gpt-4o-mini"]
"""
KEYS = {"EDITOR_KEY": "tk-editor-secret", "BOT_KEY": "tk-bot-secret"}


def chat(client, model="gpt-4o-mini", **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], **kw
    )


def test_a_request_without_a_known_key_gets_401_in_its_protocol(home, server):
    gateway_config(home, server.url, CLIENTS)
    with running_gateway(KEYS) as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            chat(oa)
        an = anthropic.Anthropic(base_url=gw.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as ainfo:
            an.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        models = httpx.get(gw.openai_base + "/models")
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "No known gateway key" in info.value.message
    assert ainfo.value.body["error"]["type"] == "authentication_error"
    assert models.status_code == 401
    assert server.requests == []  # nothing went upstream
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


def test_a_clients_calls_are_recorded_under_its_project_tags_and_name(home, server):
    gateway_config(home, server.url, CLIENTS)
    server.queue(json_reply(openai_completion("hi", openai_usage(4, 1))))
    with running_gateway(KEYS) as gw:
        # Claude Code style: a bearer token; the SDK's own key header works the same way.
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="tk-editor-secret", max_retries=0)
        chat(oa)
        wait_for(lambda: [r["status"] for r in ledger_rows(home)] == ["ok"])
    row = ledger_rows(home)[0]
    assert row["project"] == "writing"
    assert json.loads(row["tags"]) == {"client": "editor", "team": "docs", "user": "ana"}
    assert json.loads(row["extra"])["client"] == "editor"
    assert server.requests[0].headers["authorization"] == "Bearer sk-upstream-openai"


def test_a_client_may_use_only_its_models(home, server):
    gateway_config(home, server.url, CLIENTS)
    with running_gateway(KEYS) as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="tk-bot-secret", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as info:
            chat(oa, model="gpt-4o")
    assert "may not use 'gpt-4o'" in info.value.message
    assert server.requests == []


def test_over_its_rate_limit_a_client_gets_429_with_retry_after(home, server):
    gateway_config(home, server.url, CLIENTS)
    server.queue(*[json_reply(openai_completion("ok", openai_usage(2, 1))) for _ in range(2)])
    with running_gateway(KEYS) as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="tk-bot-secret", max_retries=0)
        chat(oa)
        chat(oa)
        with pytest.raises(openai.RateLimitError) as info:
            chat(oa)
        wait_for(lambda: len(ledger_rows(home)) == 2)
    retry_after = int(info.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 30
    assert "over its rate limit (2 requests/min)" in info.value.message
    assert len(server.requests) == 2
    assert [r["status"] for r in ledger_rows(home)] == ["ok", "ok"]


def test_over_its_tokens_per_minute_a_client_gets_429_with_retry_after(home, server):
    # tpm = 100: the first call books its estimate (prompt + max_tokens) and then settles
    # at what it used (95 tokens); the next one's estimate no longer fits the minute.
    gateway_config(home, server.url, '[gateway.clients.bot]\nkey_env = "BOT_KEY"\ntpm = 100\n')
    server.queue(json_reply(openai_completion("ok", openai_usage(50, 45))))
    with running_gateway(KEYS) as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="tk-bot-secret", max_retries=0)
        assert chat(oa, max_tokens=60).choices[0].message.content == "ok"
        wait_for(lambda: [r["status"] for r in ledger_rows(home)] == ["ok"])
        with pytest.raises(openai.RateLimitError) as info:
            chat(oa, max_tokens=60)
        an = anthropic.Anthropic(base_url=gw.url, api_key="tk-bot-secret", max_retries=0)
        with pytest.raises(anthropic.RateLimitError) as ainfo:
            an.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=60,
                messages=[{"role": "user", "content": "x"}],
            )
    retry_after = int(info.value.response.headers["retry-after"])
    assert 30 <= retry_after <= 60  # 95 tokens of the minute's 100 are spent
    assert info.value.code == "rate_limit_exceeded"
    assert "over its rate limit (100 tokens/min)" in info.value.message
    assert ainfo.value.body["error"]["type"] == "rate_limit_error"
    assert 30 <= int(ainfo.value.response.headers["retry-after"]) <= 60
    assert len(server.requests) == 1
    assert [r["status"] for r in ledger_rows(home)] == ["ok"]  # a 429 writes no row


def test_a_blocking_budget_refuses_without_inviting_a_retry(home, server):
    gateway_config(
        home,
        server.url,
        CLIENTS
        + '[budgets.editor-cap]\namount = 0.000001\nperiod = "day"\nblock = true\ntag = "client=editor"\n',
    )
    with running_gateway(KEYS) as gw:
        an = anthropic.Anthropic(base_url=gw.url, api_key="tk-editor-secret", max_retries=2)
        started = time.monotonic()
        with pytest.raises(anthropic.APIStatusError) as info:
            an.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=100,
                messages=[{"role": "user", "content": "x"}],
            )
        elapsed = time.monotonic() - started
        wait_for(lambda: len(ledger_rows(home)) == 1)
    assert info.value.status_code == 402
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.body["error"]["type"] == "billing_error"
    assert "Budget 'editor-cap' (day)" in info.value.body["error"]["message"]
    assert elapsed < 0.5 * 2  # not retried (the SDK would back off for ~0.5 s first)
    assert server.requests == []
    row = ledger_rows(home)[0]
    assert (row["status"], row["provider"], row["error_kind"]) == ("blocked", "anthropic", "limit")
    assert json.loads(row["extra"])["budget"] == "editor-cap"


def test_a_budget_a_client_lists_caps_that_client_and_not_the_others(home, server):
    # The budget's own scope covers every call; listed by the bot it counts and caps only
    # the bot's calls (as if it had tag = "client=bot"), so the editor still passes.
    gateway_config(
        home,
        server.url,
        CLIENTS.replace("rpm = 2\n", 'rpm = 2\nbudgets = ["tiny"]\n')
        + '[budgets.tiny]\namount = 0.000001\nperiod = "day"\nblock = true\n',
    )
    server.queue(json_reply(openai_completion("hi", openai_usage(4, 1))))
    with running_gateway(KEYS) as gw:
        bot = openai.OpenAI(base_url=gw.openai_base, api_key="tk-bot-secret", max_retries=2)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as info:
            chat(bot, max_tokens=50)
        elapsed = time.monotonic() - started
        editor = openai.OpenAI(base_url=gw.openai_base, api_key="tk-editor-secret", max_retries=0)
        assert chat(editor, max_tokens=50).choices[0].message.content == "hi"
        wait_for(lambda: len(ledger_rows(home)) == 2)
    assert info.value.status_code == 402
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "Budget 'tiny' (day)" in info.value.message
    assert elapsed < 0.5 * 2  # not retried
    assert len(server.requests) == 1  # only the editor's call went upstream
    blocked, ok = ledger_rows(home)
    assert (blocked["status"], json.loads(blocked["extra"])["budget"]) == ("blocked", "tiny")
    assert json.loads(blocked["tags"])["client"] == "bot"
    assert (ok["status"], json.loads(ok["tags"])["client"]) == ("ok", "editor")
    status = run_cli("budget", "status", "--json")
    assert status.exit_code == 0, status.stderr
    assert '"tag:client": "bot"' in status.stdout


@pytest.mark.parametrize(
    ("clients", "problem"),
    [
        (
            '[gateway.clients.bot]\nkey_env = "BOT_KEY"\nbudgets = ["nope"]\n',
            "gateway.clients.bot.budgets lists budget 'nope' for client 'bot', but no "
            "[budgets.nope] table defines it.",
        ),
        (
            '[gateway.clients.bot]\nkey_env = "BOT_KEY"\nbudgets = ["tiny"]\n'
            '[gateway.clients.zed]\nkey_env = "ZED_KEY"\nbudgets = ["tiny"]\n',
            "gateway.clients.zed.budgets lists budget 'tiny' for client 'zed', but that "
            "budget already counts only client 'bot''s calls.",
        ),
    ],
)
def test_a_client_listing_an_unknown_or_taken_budget_is_a_config_error(home, clients, problem):
    from tests.conftest import write_config

    write_config(home, '[budgets.tiny]\namount = 1\nperiod = "day"\n' + clients)
    result = run_cli("config", "validate")
    assert result.exit_code == 6
    assert problem in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_requests_get_clear_errors_in_their_protocol(home, server):
    gateway_config(home, server.url, "[gateway]\nmax_body_mb = 0.001\n")
    with running_gateway() as gw:
        not_json = httpx.post(gw.openai_base + "/chat/completions", content=b"{nope")
        too_big = httpx.post(
            gw.url + "/v1/messages",
            json={
                "model": "claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "x" * 2000}],
            },
        )
        no_model = httpx.post(gw.openai_base + "/chat/completions", json={"messages": []})
        nowhere = httpx.post(gw.url + "/v2/other", json={})
        untranslatable = httpx.post(
            gw.openai_base + "/chat/completions", json={"model": "gemini:gemini-2.5-flash"}
        )
    assert (not_json.status_code, not_json.json()["error"]["message"]) == (
        400,
        "The request body is not valid JSON.",
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "request_too_large"
    assert no_model.json()["error"]["message"] == "The request names no model."
    assert nowhere.status_code == 404
    assert untranslatable.status_code == 400
    assert (
        "a request without messages cannot be translated"
        in (untranslatable.json()["error"]["message"])
    )
    assert server.requests == []


def stream_count(gw):
    """A streamed chat request through the gateway, read by the caller as it likes."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count"}]}
    return httpx.stream("POST", gw.openai_base + "/chat/completions", json={**body, "stream": True})


def test_a_client_that_leaves_mid_stream_cancels_upstream_and_leaves_an_interrupted_row(
    home, server
):
    gateway_config(home, server.url)
    chunks = openai_chunks(["one ", "two ", "three"], openai_usage(5, 3))
    server.queue(sse_reply(sse(chunks, pause=0.3)))
    with running_gateway() as gw:
        with stream_count(gw) as r:
            first = next(r.iter_raw())
        assert first.startswith(b"data: ")
        wait_for(lambda: [x["status"] for x in ledger_rows(home)] == ["interrupted"])
    row = ledger_rows(home)[0]
    assert row["error_kind"] == "client_disconnected"
    assert row["usage_source"] == "estimated"
    assert row["input_tokens"] > 0


def test_a_client_that_leaves_at_the_streams_end_leaves_an_ok_row(home, server):
    """Clients stop reading at `[DONE]` and close: the answer was whole, though the provider
    had not yet closed its side (here it waits a second after `[DONE]`)."""
    gateway_config(home, server.url)
    chunks = openai_chunks(["one ", "two"], openai_usage(5, 2))
    server.queue(sse_reply([*sse(chunks), Pause(1.0)]))
    with running_gateway() as gw:
        with stream_count(gw) as r:
            for line in r.iter_lines():
                if line == "data: [DONE]":
                    break
        wait_for(lambda: [x["status"] for x in ledger_rows(home)] not in ([], ["pending"]))
    row = ledger_rows(home)[0]
    assert (row["status"], row["error_kind"]) == ("ok", None)
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (5, 2, "reported")


def test_without_the_gateway_extra_serve_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    result = run_cli("serve")
    assert result.exit_code == 6
    assert result.stderr == (
        "tokencli: tokencli serve needs uvicorn, which is not installed. "
        "Install the gateway extra: pip install 'tokencli[gateway]'.\n"
    )


def test_listening_beyond_loopback_needs_clients(home):
    result = run_cli("serve", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "Refusing to listen on 0.0.0.0 without gateway clients" in result.stderr


def test_add_client_writes_only_the_hash_and_prints_the_key_once(home, server):
    from tests.conftest import write_config

    write_config(home, '# my config\n[defaults]\nproject = "p"\n')
    result = run_cli("serve", "add-client", "editor", "--rpm", "30")
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("tk-") and len(key) > 30
    text = (home / "config.toml").read_text()
    assert text.startswith('# my config\n[defaults]\nproject = "p"\n')
    assert key not in text
    import hashlib

    assert f'key_sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"' in text
    assert "rpm = 30" in text
    gateway_config(home, server.url, text[text.index("[gateway.clients.editor]") :])
    server.queue(json_reply(openai_completion("hi", openai_usage(1, 1))))
    with running_gateway() as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key=key, max_retries=0)
        assert chat(oa).choices[0].message.content == "hi"


def test_add_client_gives_a_client_its_budgets_and_a_new_key_keeps_them(home):
    from tests.conftest import write_config

    write_config(
        home,
        '[budgets.editor-month]\namount = 10\nperiod = "month"\n\n'
        '[budgets.shared]\namount = 5\nperiod = "month"\n',
    )
    added = run_cli("serve", "add-client", "editor", "--budget", "editor-month")
    assert added.exit_code == 0, added.stderr
    again = run_cli("serve", "add-client", "editor", "--rpm", "5")  # a new key
    assert again.exit_code == 0, again.stderr
    config = tomllib.loads((home / "config.toml").read_text())
    editor = config["gateway"]["clients"]["editor"]
    assert (editor["budgets"], editor["rpm"]) == (["editor-month"], 5)
    status = json.loads(run_cli("budget", "status", "--json").stdout)
    scopes = {b["name"]: b["scope"] for b in status["budgets"]}
    assert scopes["editor-month"] == {"tag:client": "editor"}  # it counts only its calls

    unknown = run_cli("serve", "add-client", "bot", "--budget", "nosuch")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith(
        "tokencli: No budget is named 'nosuch' (known: editor-month, shared)."
    )
    taken = run_cli("serve", "add-client", "bot", "--budget", "editor-month")
    assert taken.exit_code == 2
    assert "already counts only the calls of client 'editor'" in taken.stderr
    assert "bot" not in tomllib.loads((home / "config.toml").read_text())["gateway"]["clients"]


@pytest.mark.heavy
def test_two_hundred_concurrent_streams_are_all_recorded(home, server):
    gateway_config(home, server.url)
    n = 200
    chunks = sse(openai_chunks(["a", "b"], openai_usage(3, 2)))
    server.queue(*[sse_reply([Pause(0.05), *chunks]) for _ in range(n)])

    async def one(client: httpx.AsyncClient, url: str) -> bytes:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
        }
        async with client.stream("POST", url, json=body) as r:
            return b"".join([c async for c in r.aiter_raw()])

    async def all_of_them(url: str) -> list[bytes]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*[one(client, url) for _ in range(n)])

    with running_gateway() as gw:
        bodies = asyncio.run(all_of_them(gw.openai_base + "/chat/completions"))
        wait_for(
            lambda: [r[0] for r in ledger_rows(home, "SELECT status FROM calls")] == ["ok"] * n,
            timeout=30,
        )
    assert all(b.endswith(b"data: [DONE]\n\n") for b in bodies)
    totals = ledger_rows(home, "SELECT count(*), sum(input_tokens), sum(output_tokens) FROM calls")
    assert tuple(totals[0]) == (n, 3 * n, 2 * n)
