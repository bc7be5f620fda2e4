"""The gateway with the official SDKs as clients and a loopback upstream speaking the real formats:
bodies and events relayed unchanged, every request a ledger row with exact tokens and cost."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.fakes import (
    Cut,
    anthropic_events,
    anthropic_message,
    json_reply,
    openai_chunks,
    openai_completion,
    openai_usage,
    sse,
    sse_reply,
)
from tests.gateway_harness import finished_rows, gateway_config, running_gateway

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


def cost_of(row) -> Decimal:
    return Decimal(row["cost_pico"]) / Decimal(10**12)


def test_openai_sdk_non_streamed(home, server):
    gateway_config(home, server.url)
    reply = openai_completion("Hello there", openai_usage(12, 3), model="gpt-4o-mini-2024-07-18")
    server.queue(json_reply(reply, headers={"x-request-id": "req_up_1"}))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="anything", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello"}],
            max_tokens=50,
            extra_body={"tools_like_field": {"kept": True}},
        )
        assert answer.choices[0].message.content == "Hello there"
        row = finished_rows(home)[0]
    sent = server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-upstream-openai"
    assert sent.json["tools_like_field"] == {"kept": True}  # every field the client sent
    assert (row["provider"], row["model"], row["status"]) == ("openai", "gpt-4o-mini", "ok")
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (12, 3, "reported")
    assert cost_of(row) == Decimal("0.000018")  # 12 × 1 + 3 × 2 per million
    assert row["request_id"] == "req_up_1"
    assert row["stream"] == 0
    assert json.loads(row["extra"])["gateway"] == "openai"


def test_openai_sdk_streamed_gets_usage_without_seeing_the_usage_chunk(home, server):
    gateway_config(home, server.url)
    chunks = openai_chunks(["Hel", "lo"], openai_usage(9, 2))
    server.queue(sse_reply(sse(chunks)))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        got = list(stream)
        row = finished_rows(home)[0]
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == "Hello"
    assert all(c.choices for c in got)  # the usage chunk the gateway asked for is not shown
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (9, 2, "ok")
    assert row["usage_source"] == "reported"
    assert cost_of(row) == Decimal("0.000013")


def test_a_client_that_asked_for_usage_sees_it_and_the_bytes_are_unchanged(home, server):
    gateway_config(home, server.url)
    events = sse(openai_chunks(["a", "b"], openai_usage(5, 2)))
    server.queue(sse_reply(events))
    with running_gateway() as gw:
        import httpx

        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        raw = json.dumps(body, indent=1).encode()  # any spelling: it goes upstream as sent
        url = gw.openai_base + "/chat/completions"
        with httpx.stream("POST", url, content=raw) as r:
            relayed = b"".join(r.iter_raw())
        finished_rows(home)
    assert relayed == b"".join(e for e in events if isinstance(e, bytes))
    assert server.requests[0].body == raw


def test_anthropic_sdk_non_streamed_with_beta_query_and_header(home, server):
    gateway_config(home, server.url)
    usage = {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 7}
    server.queue(json_reply(anthropic_message("Hi!", usage), headers={"request-id": "req_a1"}))
    with running_gateway() as gw:
        client = anthropic.Anthropic(base_url=gw.url, api_key="anything", max_retries=0)
        message = client.beta.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "hello"}],
            betas=["context-1m-2025-08-07"],
            extra_query={"beta": "true"},  # as Claude Code sends it
        )
        assert message.content[0].text == "Hi!"
        row = finished_rows(home)[0]
    sent = server.requests[0]
    assert sent.path == "/v1/messages?beta=true"
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert sent.headers["x-api-key"] == "sk-ant-upstream"
    assert (row["provider"], row["model"]) == ("anthropic", "claude-sonnet-4-5")
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (25, 5, 7)
    assert row["request_id"] == "req_a1"


def test_anthropic_sdk_streamed(home, server):
    gateway_config(home, server.url)
    events = anthropic_events(["Hel", "lo"], input_tokens=11, output_tokens=4)
    server.queue(sse_reply(sse(events, named=True, done=False)))
    with running_gateway() as gw:
        client = anthropic.Anthropic(base_url=gw.url, api_key="k", max_retries=0)
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            text = "".join(stream.text_stream)
        row = finished_rows(home)[0]
    assert text == "Hello"
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (11, 4, "ok")
    assert row["stream"] == 1
    assert cost_of(row) == Decimal("0.000093")  # 11 × 3 + 4 × 15 per million


def test_upstream_error_is_relayed_unchanged_and_recorded(home, server):
    gateway_config(home, server.url)
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}}
    server.queue(json_reply(error, status=400))
    with running_gateway() as gw:
        client = anthropic.Anthropic(base_url=gw.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as info:
            client.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        row = finished_rows(home)[0]
    assert info.value.body == error
    assert (row["status"], row["error_kind"]) == ("error", "bad_request")


def test_upstream_cut_mid_stream_reaches_the_client_as_an_error_and_is_recorded(home, server):
    gateway_config(home, server.url)
    events = openai_chunks(["partial ", "answer"], None)[:2]
    server.queue(sse_reply([*sse(events, done=False), Cut()]))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            list(stream)
        row = finished_rows(home)[0]
    assert (row["status"], row["error_kind"]) == ("error", "stream_cut")
    assert row["usage_source"] == "estimated"
    assert row["output_tokens"] > 0


def test_upstream_answering_html_is_a_clear_error_in_the_clients_protocol(home, server):
    from tests.fakes import Reply

    gateway_config(home, server.url)
    page = b"<html><head><title>Proxy login</title></head><body>log in</body></html>"
    server.queue(Reply(200, {"content-type": "text/html"}, page))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        row = finished_rows(home)[0]
    assert info.value.status_code == 502
    assert "HTML page (Proxy login)" in info.value.message
    assert (row["status"], row["error_kind"]) == ("error", "bad_response")


def test_aliases_and_gateway_models_route_to_tokencli_models(home, server):
    gateway_config(
        home,
        server.url,
        '[aliases]\nfast = "openai:gpt-4o-mini"\n[gateway.models]\n"my-model" = "fast"\n',
    )
    server.queue(
        json_reply(openai_completion("a", openai_usage(1, 1))),
        json_reply(openai_completion("b", openai_usage(1, 1))),
    )
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        for name in ("my-model", "fast"):
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        rows = finished_rows(home, 2)
    assert [r.json["model"] for r in server.requests] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [(r["model"], r["alias"]) for r in rows] == [("gpt-4o-mini", "fast")] * 2


def test_health_head_and_models(home, server):
    import httpx

    gateway_config(home, server.url, '[aliases]\nfast = "openai:gpt-4o-mini"\n')
    with running_gateway() as gw:
        assert httpx.get(gw.url + "/health").json() == {"status": "ok"}
        assert httpx.head(gw.url + "/").status_code == 200
        client = openai.OpenAI(base_url=gw.openai_base, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["fast"]
        wrong = httpx.get(gw.openai_base + "/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["message"] == "GET is not allowed on /v1/chat/completions."
    assert server.requests == []


def test_absurd_usage_relayed_through_the_gateway_is_not_trusted(home, server):
    """A provider's impossible usage (10**30 tokens, a negative cost) is checked on the
    gateway's path as on run's: the row is estimated and priced from the table."""
    gateway_config(home, server.url)
    usage = {"prompt_tokens": 10**30, "completion_tokens": 3, "total_tokens": 10**30, "cost": -5}
    reply = openai_completion("Hello there", usage, model="gpt-4o-mini-2024-07-18")
    server.queue(json_reply(reply, headers={"x-request-id": "req\x1b]0;x\x07id"}))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="anything", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert answer.choices[0].message.content == "Hello there"
        row = finished_rows(home)[0]
    assert row["status"] == "ok"
    assert row["usage_source"] == "estimated"
    assert 0 < row["input_tokens"] < 1000 and row["cost_pico"] >= 0
    assert "\x1b" not in (row["request_id"] or "")


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_of_the_wrong_shape_is_recorded_and_relayed_not_a_crash(home, server, stream):
    """A malformed upstream answer (a list where an object belongs) is a bad response: the
    row records it, and the gateway keeps serving the next request."""
    gateway_config(home, server.url)
    if stream:
        server.queue(sse_reply(sse([{"choices": [{"delta": ["not", "an", "object"]}]}])))
    else:
        server.queue(json_reply({"object": "chat.completion", "choices": "x", "usage": [1]}))
    reply = openai_completion("fine", openai_usage(3, 1))
    server.queue(json_reply(reply))
    with running_gateway() as gw:
        client = openai.OpenAI(base_url=gw.openai_base, api_key="anything", max_retries=0)
        try:
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=stream
            )
            if stream:
                list(answer)
        except openai.APIError:
            pass  # relayed as it came (bytes unchanged), or ended as an error
        again = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert again.choices[0].message.content == "fine"
        rows = finished_rows(home, 2)
    assert sorted((r["status"], r["error_kind"]) for r in rows) == [
        ("error", "bad_response"),
        ("ok", None),
    ]
