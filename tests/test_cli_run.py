"""The `run` contract: stdout holds only the text, exit codes, --json, ledger rows."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import (
    Cut,
    Reply,
    anthropic_events,
    gemini_response,
    gemini_usage,
    json_reply,
    openai_chunks,
    openai_completion,
    openai_usage,
    sse,
    sse_reply,
)

JSON_KEYS = {
    "id",
    "provider",
    "model",
    "text",
    "usage",
    "cost",
    "currency",
    "duration_ms",
    "status",
}
USAGE_KEYS = {
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
}


def fake_openai(home, server, name="fake", **fields):
    fields.setdefault("prices_from", "openai")
    write_config(home, provider_config(name, "openai", server.url + "/v1", **fields))


def no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


# ------------------------------------------------------------------ success


def test_stdout_holds_only_the_text(cli, home, server):
    fake_openai(home, server)
    server.queue(sse_reply(sse(openai_chunks(["The ", "answer", "."], openai_usage(12, 3)))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "question?")
    assert r.exit_code == 0
    assert r.stdout == "The answer.\n"
    assert r.stderr == ""  # stderr is not a terminal and -u was not given


def test_usage_line_on_stderr(cli, home, server):
    fake_openai(home, server)
    server.queue(sse_reply(sse(openai_chunks(["ok"], openai_usage(1000, 500)))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "-u", "q")
    assert r.stdout == "ok\n"
    line = r.stderr.strip()
    assert line.startswith("tokencli: fake:gpt-4o-mini · 1,000 in · 500 out · $0.000450")
    row = ledger_rows(home)[0]
    assert line.endswith(row["id"])


def test_usage_line_when_stderr_is_a_terminal(cli):
    r = cli("run", "-m", "mock:echo", "hi", stderr_tty=True)
    assert "tokencli: mock:echo · 1 in · 1 out" in r.stderr


def test_json_shape(cli, home, server):
    fake_openai(home, server)
    server.queue(
        sse_reply(sse(openai_chunks(["Hi"], openai_usage(1000, 500, cached=200, reasoning=100))))
    )
    r = cli(
        "run", "-m", "fake:gpt-4o-mini", "--json", "--project", "blog", "--tag", "client=acme", "q"
    )
    assert r.exit_code == 0
    data = json.loads(r.stdout)  # one JSON document, nothing else on stdout
    assert set(data) >= JSON_KEYS
    assert set(data["usage"]) >= USAGE_KEYS
    assert data["text"] == "Hi" and data["status"] == "ok"
    assert data["usage"]["input_tokens"] == 1000 and data["usage"]["cached_input_tokens"] == 200
    assert data["usage"]["total_tokens"] == 1500 and data["usage"]["usage_source"] == "reported"
    # 800 uncached × $0.15/M + 200 cached × $0.075/M + 500 × $0.60/M
    assert Decimal(data["cost"]) == Decimal("0.000435") and data["currency"] == "USD"
    assert data["project"] == "blog" and data["tags"] == {"client": "acme"}
    assert data["price_source"].startswith("genai-prices")


def test_no_stream(cli, home, server):
    fake_openai(home, server)
    server.queue(json_reply(openai_completion("whole", openai_usage(3, 1))))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert r.stdout == "whole\n"
    assert server.requests[0].json["stream"] is False
    assert ledger_rows(home)[0]["stream"] == 0


def test_stdin_is_material_and_prompt_the_instruction(cli):
    r = cli("run", "-m", "mock:echo", "summarize", input="line one\nline two\n")
    assert r.stdout == "line one\nline two\n\nsummarize\n"


def test_stdin_alone_is_the_prompt(cli):
    r = cli("run", "-m", "mock:echo", input="just this")
    assert r.stdout == "just this\n"


def test_row_records_everything(cli, home, server):
    fake_openai(home, server)
    server.queue(
        sse_reply(sse(openai_chunks(["ok"], openai_usage(10, 2))), {"x-request-id": "req_abc"})
    )
    r = cli(
        "run",
        "-m",
        "fake:gpt-4o-mini",
        "-s",
        "sys",
        "-p",
        "p1",
        "--tag",
        "a=1",
        "--tag",
        "b=2",
        "--max-tokens",
        "5",
        "q",
    )
    assert r.exit_code == 0
    row = ledger_rows(home)[0]
    assert (row["provider"], row["model"], row["response_model"]) == (
        "fake",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert (
        row["status"] == "ok" and row["request_id"] == "req_abc" and row["finish_reason"] == "stop"
    )
    assert row["project"] == "p1" and json.loads(row["tags"]) == {"a": "1", "b": "2"}
    assert json.loads(row["params"]) == {"max_tokens": 5}
    assert row["duration_ms"] is not None and row["ttft_ms"] is not None
    assert row["cost_pico"] == (
        10 * 150_000 + 2 * 600_000
    )  # $0.15/M and $0.60/M in picos per token
    texts = ledger_rows(home, "SELECT * FROM call_texts")[0]
    assert (texts["system_text"], texts["prompt_text"], texts["response_text"]) == (
        "sys",
        "q",
        "ok",
    )
    tags = ledger_rows(home, "SELECT key, value FROM call_tags ORDER BY key")
    assert [tuple(t) for t in tags] == [("a", "1"), ("b", "2")]


def test_store_text_false_keeps_no_text(cli, home):
    write_config(home, "[defaults]\nstore_text = false\n")
    assert cli("run", "-m", "mock:echo", "secret plans").exit_code == 0
    assert ledger_rows(home, "SELECT * FROM call_texts") == []
    assert ledger_rows(home)[0]["output_tokens"] == 2


def test_alias_and_defaults(cli, home):
    write_config(
        home,
        '[defaults]\nmodel = "quick"\nproject = "default-proj"\n[aliases]\nquick = "mock:echo"\n',
    )
    r = cli("run", "hello")
    assert r.stdout == "hello\n"
    row = ledger_rows(home)[0]
    assert (row["provider"], row["model"], row["alias"], row["project"]) == (
        "mock",
        "echo",
        "quick",
        "default-proj",
    )


def test_anthropic_and_gemini_through_the_cli(cli, home, server):
    write_config(
        home,
        provider_config("ant", "anthropic", server.url, prices_from="anthropic")
        + provider_config("gem", "gemini", server.url, prices_from="google"),
    )
    server.queue(
        sse_reply(
            sse(
                anthropic_events(
                    ["A"], input_tokens=2000, output_tokens=500, cache_read=8000, cache_write=0
                ),
                named=True,
                done=False,
            )
        )
    )
    server.queue(
        sse_reply(sse([gemini_response(["G"], gemini_usage(100, 10, thoughts=90))], done=False))
    )
    assert cli("run", "-m", "ant:claude-sonnet-4-5", "q").stdout == "A\n"
    assert cli("run", "-m", "gem:gemini-2.5-flash", "q").stdout == "G\n"
    ant, gem = ledger_rows(home)
    assert (ant["input_tokens"], ant["cached_input_tokens"], ant["output_tokens"]) == (
        10000,
        8000,
        500,
    )
    assert (gem["input_tokens"], gem["output_tokens"], gem["reasoning_tokens"]) == (100, 100, 90)
    assert ant["cost_pico"] > 0 and gem["cost_pico"] > 0


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "input", "code", "message"),
    [
        (
            ["run", "-m", "nope:model", "hi"],
            None,
            6,
            "Unknown provider 'nope'. Known providers: anthropic,",
        ),
        (
            ["run", "-m", "mock:nope", "hi"],
            None,
            6,
            "Unknown model mock:nope. Known models: mock:echo, mock:lorem.",
        ),
        (
            ["run", "-m", "gpt-4o", "hi"],
            None,
            6,
            "Unknown model 'gpt-4o': not an alias and not PROVIDER:MODEL.",
        ),
        (
            ["run", "-m", "openai:gpt-4o-mini", "hi"],
            None,
            6,
            "No API key for openai. Set OPENAI_API_KEY or run 'tokencli keys set openai'.",
        ),
        (["run", "-m", "gemini:gemini-2.5-flash", "hi"], None, 6, "Set GEMINI_API_KEY"),
        (["run", "-m", "mock:echo", "   "], None, 2, "The prompt is empty."),
        (["run", "-m", "mock:echo"], "", 2, "Stdin was empty and no PROMPT was given."),
        (
            ["run", "-m", "mock:echo"],
            b"\x89PNG\r\n\x1a\n\x00\x00",
            2,
            "Stdin holds binary data, not text.",
        ),
        (["run", "-m", "mock:echo"], b"caf\xe9", 2, "Stdin is not UTF-8 text."),
        (
            ["run", "-m", "mock:echo", "--wibble", "hi"],
            None,
            2,
            "No such option: --wibble.",
        ),
        (
            ["run", "-m", "mock:echo", "--tag", "novalue", "hi"],
            None,
            2,
            "--tag 'novalue' is not KEY=VALUE.",
        ),
        (["run", "-m", "mock:echo", "--temperature", "9", "hi"], None, 2, "--temperature"),
        (["run", "-m", "mock:echo", "--max-tokens", "0", "hi"], None, 2, "--max-tokens"),
        (
            ["run", "-m", "openai:gpt-4o", "--price-as", "openai:gpt-4o", "hi"],
            None,
            2,
            "--price-as only applies to mock and self-hosted providers",
        ),
        (["run"], None, 2, "No prompt given."),
    ],
)
def test_bad_input_one_sentence_and_exit_code(cli, home, args, input, code, message):
    r = cli(*args, input=input)
    assert r.exit_code == code, r.stderr
    assert message in r.stderr
    assert r.stderr.startswith("tokencli: ") and r.stderr.count("\n") == 1  # one line
    assert r.stdout == ""
    no_traceback(r)
    # Nothing was sent, so nothing is recorded.
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


def test_no_arguments_prints_help(cli):
    r = cli()
    assert r.exit_code == 0 and "Usage: tokencli" in r.stdout and "run" in r.stdout


def test_version(cli):
    from tokencli import __version__

    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"tokencli {__version__}"


# --------------------------------------------------------- provider failures


@pytest.mark.parametrize(
    ("reply", "code", "kind", "message"),
    [
        (
            json_reply({"error": {"message": "Incorrect API key provided"}}, 401),
            4,
            "auth",
            "fake answered 401: Incorrect API key provided.",
        ),
        (
            json_reply(
                {
                    "error": {
                        "message": "You exceeded your current quota",
                        "type": "insufficient_quota",
                    }
                },
                429,
            ),
            4,
            "billing",
            "out of credit or quota",
        ),
        (json_reply({"error": {"message": "boom"}}, 500), 5, "server", "fake answered 500: boom."),
        (
            Reply(
                502,
                {"content-type": "text/html"},
                b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            ),
            5,
            "server",
            "an HTML page (502 Bad Gateway) instead of JSON",
        ),
        (Reply(200, {}, b"this is not json"), 5, "bad_response", "fake sent this is not json."),
    ],
)
def test_provider_failures_are_recorded(cli, home, server, reply, code, kind, message):
    fake_openai(home, server, api_key_env="FAKE_KEY", key_required=True, max_retries=0)
    server.queue(reply)
    import os

    os.environ["FAKE_KEY"] = "sk-fake-abcdefghijklmnop"
    try:
        r = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    finally:
        del os.environ["FAKE_KEY"]
    assert r.exit_code == code
    # Out of credit also raises a `refill` alert (stderr is the channel when none is set).
    alert = "tokencli alert: fake: out of credit:" in r.stderr
    assert alert == (kind == "billing")
    assert message in r.stderr and r.stderr.count("\n") == 1 + alert
    assert r.stdout == ""
    no_traceback(r)
    row = ledger_rows(home)[0]
    assert row["status"] == "error" and row["error_kind"] == kind
    assert "sk-fake-abcdefghijklmnop" not in r.stderr


def test_cut_stream_prints_partial_text_and_records_estimate(cli, home, server):
    fake_openai(home, server)
    server.queue(
        sse_reply([*sse(openai_chunks(["partial ", "answer"], None)[:3], done=False), Cut()])
    )
    r = cli("run", "-m", "fake:gpt-4o-mini", "some question here")
    assert r.exit_code == 5
    assert r.stdout == "partial answer\n"
    assert "closed before the answer was complete" in r.stderr
    row = ledger_rows(home)[0]
    assert row["status"] == "error" and row["error_kind"] == "stream_cut"
    assert (
        row["usage_source"] == "estimated" and row["output_tokens"] > 0 and row["input_tokens"] > 0
    )
    assert row["cost_pico"] > 0  # an estimate of what the partial call cost


def _cut_anthropic_stream(home, server, pieces, *, reported_output, with_delta):
    """An Anthropic stream of `pieces` (input 25 reported) cut before message_stop."""
    write_config(home, provider_config("ant", "anthropic", server.url, prices_from="anthropic"))
    events = anthropic_events(
        pieces, input_tokens=25, output_tokens=reported_output, end=with_delta
    )
    if with_delta:
        events = events[:-1]  # message_delta arrived; message_stop never does
    server.queue(sse_reply([*sse(events, named=True, done=False), Cut()]))


def test_cut_stream_records_the_estimate_when_more_text_arrived_than_reported(cli, home, server):
    # message_start reports 1 output token; 40 characters (about 10 tokens) arrive.
    _cut_anthropic_stream(
        home, server, ["abcd" * 5, "abcd" * 5], reported_output=1, with_delta=False
    )
    r = cli("run", "-m", "ant:claude-sonnet-4-5", "q")
    assert r.exit_code == 5 and r.stdout == "abcd" * 10 + "\n"
    row = ledger_rows(home)[0]
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (25, 10, "estimated")


def test_cut_stream_keeps_the_reported_output_when_it_exceeds_the_estimate(cli, home, server):
    # message_delta reports 50 output tokens; 4 characters (about 1 token) were shown.
    _cut_anthropic_stream(home, server, ["abcd"], reported_output=50, with_delta=True)
    r = cli("run", "-m", "ant:claude-sonnet-4-5", "q")
    assert r.exit_code == 5 and r.stdout == "abcd\n"
    row = ledger_rows(home)[0]
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (25, 50, "estimated")


def test_content_filter_exit_4(cli, home, server):
    fake_openai(home, server)
    server.queue(
        sse_reply(sse(openai_chunks(["I can"], openai_usage(5, 2), finish="content_filter")))
    )
    r = cli("run", "-m", "fake:gpt-4o-mini", "q")
    assert r.exit_code == 4 and r.stdout == "I can\n"
    assert "content filter" in r.stderr
    row = ledger_rows(home)[0]
    assert (row["status"], row["error_kind"], row["input_tokens"]) == ("error", "content_filter", 5)


def test_json_on_failure_prints_the_record(cli, home, server):
    fake_openai(home, server)
    server.queue(json_reply({"error": {"message": "nope"}}, 401))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--json", "q")
    assert r.exit_code == 4
    data = json.loads(r.stdout)
    assert data["status"] == "error" and data["error"]["kind"] == "auth"


def test_unreachable_provider(cli, home):
    write_config(
        home, provider_config("down", "openai", "http://127.0.0.1:9/v1", connect_timeout=2.0)
    )
    r = cli("run", "-m", "down:m", "q")
    assert r.exit_code == 5
    assert "Could not reach down at 127.0.0.1:9" in r.stderr or "connection to down" in r.stderr
    assert ledger_rows(home)[0]["error_kind"] == "network"


def test_key_never_reaches_the_ledger(cli, home, server, monkeypatch):
    key = "sk-live-SUPERSECRETKEY0123456789"
    monkeypatch.setenv("FAKE_API_KEY", key)
    fake_openai(home, server, key_required=True)
    server.queue(json_reply({"error": {"message": f"Invalid key {key}"}}, 401))
    r = cli("run", "-m", "fake:gpt-4o-mini", "--json", "q")
    assert r.exit_code == 4
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    dump = (home / "ledger.db").read_bytes()
    assert key.encode() not in dump
    assert key not in r.stdout + r.stderr


# --------------------------------------------------------------- pricing


def test_unknown_price_is_recorded_unknown_with_a_one_time_hint(cli, home, server):
    write_config(home, provider_config("sf", "openai", server.url + "/v1"))
    for _ in range(2):
        server.queue(sse_reply(sse(openai_chunks(["x"], openai_usage(5, 1)))))
    first = cli("run", "-m", "sf:Qwen/Qwen3-8B", "q")
    second = cli("run", "-m", "sf:Qwen/Qwen3-8B", "q")
    assert first.exit_code == second.exit_code == 0
    assert (
        "No price known for sf:Qwen/Qwen3-8B" in first.stderr
        and '[prices."sf:Qwen/Qwen3-8B"]' in first.stderr
    )
    assert "No price known" not in second.stderr
    rows = ledger_rows(home)
    assert all(r["cost_pico"] is None and r["price_source"] == "unknown" for r in rows)


def test_price_override_in_cny(cli, home, server):
    write_config(
        home,
        provider_config("dash", "openai", server.url + "/v1")
        + '[prices."dash:qwen-max"]\ninput = 2.4\noutput = 9.6\ncached_input = 0.96\ncurrency = "CNY"\n',
    )
    server.queue(
        sse_reply(sse(openai_chunks(["x"], openai_usage(1_000_000, 500_000, cached=250_000))))
    )
    r = cli("run", "-m", "dash:qwen-max", "--json", "q")
    data = json.loads(r.stdout)
    # 750k × 2.4 + 250k × 0.96 + 500k × 9.6, per million
    assert Decimal(data["cost"]) == Decimal("1.8") + Decimal("0.24") + Decimal("4.8")
    assert data["currency"] == "CNY" and data["price_source"] == "config config.toml:4"


def test_openrouter_cost_is_what_was_charged(cli, home, server):
    write_config(
        home, provider_config("or", "openai", server.url + "/v1", prices_from="openrouter")
    )
    server.queue(sse_reply(sse(openai_chunks(["x"], openai_usage(100, 10, cost=0.0123)))))
    data = json.loads(cli("run", "-m", "or:openai/gpt-4o-mini", "--json", "q").stdout)
    assert data["cost"] == "0.0123" and data["price_source"] == "or (reported)"


def test_mock_is_free_and_price_as_estimates(cli, home):
    free = json.loads(cli("run", "-m", "mock:echo", "--json", "a b c d").stdout)
    assert free["cost"] == "0" and free["price_source"] == "self-hosted (free)"
    assert free["usage"]["usage_source"] == "counted"
    priced = json.loads(
        cli(
            "run",
            "-m",
            "mock:lorem",
            "--max-tokens",
            "1000",
            "--price-as",
            "openai:gpt-4o-mini",
            "--json",
            "x",
        ).stdout
    )
    assert priced["usage"]["output_tokens"] == 1001  # 1000 words and the final period
    assert (
        Decimal(priced["cost"])
        == (Decimal(1) * Decimal("0.15") + Decimal(1001) * Decimal("0.6")) / 1_000_000
    )
    assert priced["usage"]["usage_source"] == "estimated"
    assert priced["price_source"].startswith("as openai:gpt-4o-mini")


def test_hourly_cost_for_self_hosted(cli, home):
    write_config(home, '[providers.mock]\nhourly_cost = 3.6\ncurrency = "EUR"\ndelay_ms = 20\n')
    data = json.loads(cli("run", "-m", "mock:echo", "--json", "one two three").stdout)
    # 3.6 per hour = 0.000001 per millisecond
    assert Decimal(data["cost"]) == Decimal(data["duration_ms"]) * Decimal("0.000001")
    assert data["currency"] == "EUR"
