"""The gateway's other doors: Responses (Codex CLI), embeddings, count_tokens, /metrics."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from tests.conftest import ledger_rows
from tests.fakes import json_reply, openai_completion, openai_usage, sse, sse_reply
from tests.gateway_harness import gateway_config, running_gateway, wait_for

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

RESPONSE_USAGE = {
    "input_tokens": 30,
    "input_tokens_details": {"cached_tokens": 10},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 36,
}


def response_object(text: str, status: str = "completed") -> dict:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1760000000,
        "model": "gpt-4o-mini-2024-07-18",
        "status": status,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": RESPONSE_USAGE,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def one_row(home):
    wait_for(lambda: [r["status"] != "pending" for r in ledger_rows(home)] == [True])
    return ledger_rows(home)[0]


def test_responses_non_streamed(home, server):
    gateway_config(home, server.url)
    server.queue(json_reply(response_object("Hi from responses")))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        answer = client.responses.create(model="gpt-4o-mini", input="hello")
        row = one_row(home)
    assert answer.output_text == "Hi from responses"
    assert server.requests[0].path == "/v1/responses"
    assert (row["input_tokens"], row["cached_input_tokens"]) == (30, 10)
    assert (row["output_tokens"], row["reasoning_tokens"], row["status"]) == (6, 2, "ok")


def test_responses_streamed(home, server):
    gateway_config(home, server.url)
    events = [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": {**response_object(""), "status": "in_progress", "output": [], "usage": None}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1,
                                        "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                        "delta": "Hel", "logprobs": []}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2,
                                        "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                        "delta": "lo", "logprobs": []}),
        ("response.completed", {"type": "response.completed", "sequence_number": 3,
                                "response": response_object("Hello")}),
    ]  # fmt: skip
    server.queue(sse_reply(sse(events, named=True, done=False)))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        stream = client.responses.create(model="gpt-4o-mini", input="hello", stream=True)
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        row = one_row(home)
    assert deltas == ["Hel", "lo"]
    assert "stream_options" not in server.requests[0].json  # chat only
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (30, 6, "ok")
    assert row["usage_source"] == "reported"


def test_embeddings_are_metered(home, server):
    gateway_config(
        home,
        server.url,
        '[prices."openai:text-embedding-3-small"]\ninput = 0.02\noutput = 0\n',
    )
    reply = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    server.queue(json_reply(reply))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        got = client.embeddings.create(
            model="text-embedding-3-small", input="hello world", encoding_format="float"
        )
        row = one_row(home)
    assert got.data[0].embedding == [0.1, 0.2]
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == (
        "text-embedding-3-small",
        8,
        0,
    )
    assert Decimal(row["cost_pico"]) / 10**12 == Decimal("0.00000016")


def test_count_tokens_is_forwarded_and_writes_no_row(home, server):
    gateway_config(home, server.url)
    server.queue(json_reply({"input_tokens": 14}))
    with running_gateway() as gw:
        client = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)
        counted = client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello"}]
        )
    assert counted.input_tokens == 14
    assert server.requests[0].path == "/v1/messages/count_tokens"
    assert server.requests[0].headers["x-api-key"] == "sk-ant-upstream"
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


def test_metrics_count_requests_tokens_and_cost_by_client_provider_and_model(home, server):
    gateway_config(home, server.url)
    server.queue(json_reply(openai_completion("hi", openai_usage(12, 3))))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
        one_row(home)
        text = httpx.get(gw.url + "/metrics").text
    labels = 'client="",provider="openai",model="gpt-4o-mini"'
    assert f'tokencli_gateway_requests_total{{{labels},status="ok"}} 1' in text
    assert f'tokencli_gateway_tokens_total{{{labels},kind="input"}} 12' in text
    assert f'tokencli_gateway_tokens_total{{{labels},kind="output"}} 3' in text
    assert f'tokencli_gateway_cost_total{{{labels},currency="USD"}} 0.000018' in text
    assert "tokencli_gateway_in_flight 0" in text


def test_alerts_fire_and_are_delivered_while_serving(home, server):
    gateway_config(home, server.url, "[alerts]\nmax_call_tokens = 10\n")
    server.queue(json_reply(openai_completion("hi", openai_usage(12, 3))))
    with running_gateway(alert_every=0.2) as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
        wait_for(
            lambda: (
                [r["status"] for r in ledger_rows(home, "SELECT status FROM alerts")] == ["sent"]
            )
        )
    log = gw.log.getvalue()
    assert log.startswith("tokencli alert: One call used 15 tokens: Call ")
    assert "above max_call_tokens = 10." in log
    rows = ledger_rows(home, "SELECT kind, channel FROM alerts")
    assert [tuple(r) for r in rows] == [("anomaly", "stderr")]


def test_an_unknown_provider_is_404_in_the_clients_protocol_and_says_where_to_look(home, server):
    # PROVIDER:MODEL with a provider tokencli does not have is a mistake, not a vendor's
    # model name: nothing goes upstream. OpenAI's fine-tunes (ft:...) still go to openai.
    gateway_config(home, server.url)
    server.queue(json_reply(openai_completion("tuned", openai_usage(1, 1))))
    with running_gateway() as gw:
        oa = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=2)
        with pytest.raises(openai.NotFoundError) as info:
            oa.chat.completions.create(
                model="nope:gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        an = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=2)
        with pytest.raises(anthropic.NotFoundError) as ainfo:
            an.messages.create(
                model="nope:claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        tuned = oa.chat.completions.create(
            model="ft:gpt-4o-mini:acme::abc", messages=[{"role": "user", "content": "x"}]
        )
        wait_for(lambda: len(ledger_rows(home)) == 1)
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.code == "model_not_found"
    message = info.value.body["message"]
    assert message.startswith("Unknown model 'nope:gpt-4o-mini': Unknown provider 'nope'. ")
    assert "Known providers: anthropic, deepseek," in message
    assert "See GET /v1/models" in message and "'tokencli models'" in message
    assert ainfo.value.body["error"]["type"] == "not_found_error"
    assert ainfo.value.body["error"]["message"].startswith("Unknown model 'nope:claude'")
    assert tuned.choices[0].message.content == "tuned"
    assert [r.json["model"] for r in server.requests] == ["ft:gpt-4o-mini:acme::abc"]
    assert [(r["provider"], r["model"]) for r in ledger_rows(home)] == [
        ("openai", "ft:gpt-4o-mini:acme::abc")
    ]


def test_a_gateway_model_mapped_to_an_unknown_provider_is_a_config_error(home):
    from tests.conftest import run_cli, write_config

    write_config(home, '[gateway.models]\n"fast" = "nope:model"\n')
    result = run_cli("config", "validate")
    assert result.exit_code == 6
    assert "gateway.models.fast names an unknown provider 'nope'." in result.stderr
