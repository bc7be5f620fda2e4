"""OpenAI clients on models of other protocols: mock, Anthropic, a local transformers model.
The text-chat subset is translated both ways, streamed; the rest is refused clearly."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import ledger_rows
from tests.fakes import anthropic_events, json_reply, sse, sse_reply
from tests.gateway_harness import finished_rows, gateway_config, running_gateway

openai = pytest.importorskip("openai")


def test_openai_client_on_the_mock_streamed_and_not(home, server):
    gateway_config(home, server.url)
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        whole = client.chat.completions.create(
            model="mock:echo", messages=[{"role": "user", "content": "one two three"}]
        )
        stream = client.chat.completions.create(
            model="mock:echo",
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "four five"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        rows = finished_rows(home, 2)
    assert whole.choices[0].message.content == "one two three"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens == rows[0]["input_tokens"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "four five"
    assert (
        chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == rows[1]["output_tokens"]
    )
    assert [(r["provider"], r["model"], r["status"], r["usage_source"]) for r in rows] == [
        ("mock", "echo", "ok", "counted")
    ] * 2
    assert rows[1]["stream"] == 1
    assert server.requests == []


def test_openai_client_on_an_anthropic_model_is_translated_both_ways(home, server):
    gateway_config(home, server.url, '[gateway.models]\n"gpt-4o" = "anthropic:claude-sonnet-4-5"\n')
    events = anthropic_events(["Bon", "jour"], input_tokens=9, output_tokens=3)
    server.queue(sse_reply(sse(events, named=True, done=False)))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "system", "content": "Be French."},
                {"role": "user", "content": "Hello"},
            ],
            max_tokens=20,
            stop="\n\n",
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        row = finished_rows(home)[0]
    assert text == "Bonjour"
    sent = server.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.json["system"] == "Be French."
    assert sent.json["messages"] == [{"role": "user", "content": "Hello"}]
    assert sent.json["max_tokens"] == 20
    assert sent.json["stop_sequences"] == ["\n\n"]  # OpenAI's `stop`, passed on
    assert (row["provider"], row["model"], row["status"]) == (
        "anthropic",
        "claude-sonnet-4-5",
        "ok",
    )
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (9, 3, "reported")
    assert json.loads(row["extra"])["gateway"] == "openai"


def test_an_anthropic_error_reaches_the_openai_client_in_its_shape(home, server):
    gateway_config(home, server.url, '[gateway.models]\n"gpt-4o" = "anthropic:claude-sonnet-4-5"\n')
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "too long"}}
    server.queue(json_reply(error, status=400))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
        row = finished_rows(home)[0]
    assert "too long" in info.value.message
    assert (row["status"], row["error_kind"]) == ("error", "bad_request")


def test_what_cannot_be_translated_is_refused_before_anything_is_sent(home, server):
    gateway_config(home, server.url)
    with running_gateway() as gw:
        body = {
            "model": "mock:echo",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
        answer = httpx.post(gw.openai_base + "/chat/completions", json=body)
        on_anthropic_door = httpx.post(
            gw.url + "/v1/messages",
            json={
                "model": "mock:echo",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            },
        )
    assert answer.status_code == 400
    assert "tools cannot be translated" in answer.json()["error"]["message"]
    assert on_anthropic_door.status_code == 400
    assert on_anthropic_door.json()["error"]["type"] == "invalid_request_error"
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


@pytest.mark.local
def test_a_local_transformers_model_through_the_openai_door(home, server, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_model import build

    model = build(tmp_path / "tiny")
    gateway_config(home, server.url)
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model=f"local:{model}",
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        row = finished_rows(home)[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage.completion_tokens == row["output_tokens"] == 6
    assert (row["provider"], row["status"], row["usage_source"]) == ("local", "ok", "counted")
