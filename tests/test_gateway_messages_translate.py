"""Anthropic Messages clients (the anthropic SDK, Claude Code) on models whose provider
speaks another protocol: the text subset translated both ways, streamed and not,
metered like the OpenAI door's translation; the rest refused with Anthropic's 400."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import ledger_rows
from tests.fakes import json_reply, openai_chunks, openai_completion, openai_usage, sse, sse_reply
from tests.gateway_harness import finished_rows, gateway_config, running_gateway

anthropic = pytest.importorskip("anthropic")


def client_of(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)


def test_anthropic_client_on_the_mock_streamed_and_not(home, server):
    gateway_config(home, server.url)
    with running_gateway() as gw:
        client = client_of(gw)
        whole = client.messages.create(
            model="mock:echo",
            max_tokens=50,
            system=[{"type": "text", "text": "Be brief."}],
            messages=[{"role": "user", "content": [{"type": "text", "text": "one two three"}]}],
        )
        with client.messages.stream(
            model="mock:echo",
            max_tokens=50,
            system="s",
            messages=[{"role": "user", "content": "four five"}],
        ) as stream:
            deltas = list(stream.text_stream)
            final = stream.get_final_message()
        rows = finished_rows(home, 2)
    assert whole.type == "message" and whole.role == "assistant"
    assert [(b.type, b.text) for b in whole.content] == [("text", "one two three")]
    assert (whole.stop_reason, whole.stop_sequence) == ("end_turn", None)
    assert whole.usage.input_tokens == rows[0]["input_tokens"]
    assert whole.usage.output_tokens == rows[0]["output_tokens"]
    assert whole.id == f"msg_{rows[0]['id']}"
    assert "".join(deltas) == "four five"
    assert [(b.type, b.text) for b in final.content] == [("text", "four five")]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == rows[1]["output_tokens"] > 0
    assert [(r["provider"], r["model"], r["status"], r["usage_source"]) for r in rows] == [
        ("mock", "echo", "ok", "counted")
    ] * 2
    assert [r["stream"] for r in rows] == [0, 1]
    assert [json.loads(r["extra"])["gateway"] for r in rows] == ["anthropic"] * 2
    assert server.requests == []


def test_the_stream_is_anthropics_event_sequence(home, server):
    gateway_config(home, server.url)
    with running_gateway() as gw:
        answer = httpx.post(
            gw.url + "/v1/messages?beta=true",
            json={
                "model": "mock:echo",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi there"}],
            },
        )
        finished_rows(home)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in answer.text.strip().split("\n\n"):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == name.removeprefix("event: ")
        events.append(payload)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "hi there"
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] > 0


def test_anthropic_client_on_an_openai_model_streamed(home, server):
    gateway_config(home, server.url)
    server.queue(sse_reply(sse(openai_chunks(["Bon", "jour"], openai_usage(9, 3)))))
    with running_gateway() as gw:
        with client_of(gw).messages.stream(
            model="openai:gpt-4o-mini",
            max_tokens=20,
            stop_sequences=["END"],
            system="Be French.",
            messages=[
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "Salut"}]},
                {"role": "user", "content": "Again"},
            ],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        row = finished_rows(home)[0]
    assert text == "Bonjour"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 3)
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-upstream-openai"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "Again"},
    ]
    assert sent.json["stop"] == ["END"]
    assert sent.json["stream"] is True
    assert (row["provider"], row["model"], row["status"], row["stream"]) == (
        "openai",
        "gpt-4o-mini",
        "ok",
        1,
    )
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (9, 3, "reported")
    assert row["cost_pico"] == (9 * 1 + 3 * 2) * 10**6  # $1 and $2 per million tokens
    assert json.loads(row["extra"])["gateway"] == "anthropic"


def test_anthropic_client_on_an_openai_model_not_streamed(home, server):
    gateway_config(home, server.url, '[gateway.models]\n"my-gpt" = "openai:gpt-4o-mini"\n')
    server.queue(json_reply(openai_completion("Cut sh", openai_usage(7, 4), finish="length")))
    with running_gateway() as gw:
        message = client_of(gw).messages.create(
            model="my-gpt",
            max_tokens=4,
            extra_body={"temperature": 0.5},
            messages=[{"role": "user", "content": "Say more"}],
        )
        row = finished_rows(home)[0]
    assert [b.text for b in message.content] == ["Cut sh"]
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 4)
    assert message.model == "gpt-4o-mini"
    assert server.requests[0].json["max_completion_tokens"] == 4
    assert server.requests[0].json["temperature"] == 0.5
    assert "stream" not in server.requests[0].json or server.requests[0].json["stream"] is False
    assert (row["provider"], row["status"], row["input_tokens"], row["output_tokens"]) == (
        "openai",
        "ok",
        7,
        4,
    )
    assert row["stream"] == 0


def test_an_openai_error_reaches_the_anthropic_client_in_its_shape(home, server):
    gateway_config(home, server.url)
    error = {"error": {"message": "context too long", "type": "invalid_request_error"}}
    server.queue(json_reply(error, status=400))
    with running_gateway() as gw:
        with pytest.raises(anthropic.BadRequestError) as info:
            client_of(gw).messages.create(
                model="openai:gpt-4o-mini",
                max_tokens=5,
                messages=[{"role": "user", "content": "x"}],
            )
        row = finished_rows(home)[0]
    assert "context too long" in info.value.message
    assert info.value.body["type"] == "error"
    assert (row["status"], row["error_kind"]) == ("error", "bad_request")


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"tools": [{"name": "f", "input_schema": {"type": "object"}}]}, "tools"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                    },
                ]
            },
            "tool_use blocks",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "data": "AA=="}}
                        ],
                    }
                ]
            },
            "image blocks",
        ),
        ({"stop_sequences": ["x"]}, "stop_sequences cannot be honoured by a mock model"),
    ],
)
def test_what_cannot_be_translated_is_refused_in_anthropics_shape(home, server, extra, named):
    gateway_config(home, server.url)
    body = {"model": "mock:echo", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    with running_gateway() as gw, pytest.raises(anthropic.BadRequestError) as info:
        client_of(gw).messages.create(**{**body, **extra})
    assert info.value.status_code == 400
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert named in info.value.body["error"]["message"]
    assert "mock:echo" in info.value.body["error"]["message"]
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []
    assert server.requests == []


def test_count_tokens_for_a_translated_model_is_tokencli_s_estimate(home, server):
    gateway_config(home, server.url)
    messages = [{"role": "user", "content": "one two three four"}]
    with running_gateway() as gw:
        client = client_of(gw)
        counted = client.messages.count_tokens(model="mock:echo", system="s", messages=messages)
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.count_tokens(
                model="mock:echo",
                messages=messages,
                tools=[{"name": "f", "input_schema": {"type": "object"}}],
            )
        whole = client.messages.create(
            model="mock:echo", max_tokens=20, system="s", messages=messages
        )
        finished_rows(home)
    assert counted.input_tokens == whole.usage.input_tokens > 0
    assert "tools cannot be translated" in info.value.body["error"]["message"]
    assert len(ledger_rows(home)) == 1  # counting is free: no row
    assert server.requests == []
