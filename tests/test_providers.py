"""Each wire protocol, streamed and not, against a loopback server speaking it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes import (
    Cut,
    FakeServer,
    Reply,
    anthropic_events,
    anthropic_message,
    gemini_response,
    gemini_usage,
    json_reply,
    openai_chunks,
    openai_completion,
    openai_usage,
    sse,
    sse_reply,
)
from tokencli.calls.usage import Usage
from tokencli.errors import ExitCode, ProviderError, ProviderRefused, ProviderUnavailable
from tokencli.providers.anthropic import AnthropicProvider
from tokencli.providers.base import (
    ChatRequest,
    Finished,
    Message,
    ResponseStarted,
    TextDelta,
    UsageUpdate,
)
from tokencli.providers.gemini import GeminiProvider
from tokencli.providers.openai import OpenAIProvider
from tokencli.providers.registry import PRESETS, ProviderConfig


def run(provider, stream: bool = True, **kw):
    request = ChatRequest(
        model=kw.pop("model", "m"), messages=(Message("user", "hi"),), stream=stream, **kw
    )
    events = list(provider.generate(request))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usages = [e for e in events if isinstance(e, UsageUpdate)]
    finished = [e for e in events if isinstance(e, Finished)]
    started = [e for e in events if isinstance(e, ResponseStarted)]
    return text, (usages[-1] if usages else None), (finished[0] if finished else None), started


def cfg(server: FakeServer, name: str = "openai", **kw) -> ProviderConfig:
    from dataclasses import replace

    base = PRESETS[name]
    suffix = "/v1" if base.type == "openai" else ""
    return replace(base, base_url=server.url + suffix, **kw)


# ----------------------------------------------------------------- OpenAI


class TestOpenAI:
    def test_stream_text_usage_and_request(self, server):
        server.queue(
            sse_reply(
                sse(openai_chunks(["Hel", "lo", "!"], openai_usage(20, 3, cached=8, reasoning=1))),
                {"x-request-id": "req_1"},
            )
        )
        text, usage, fin, started = run(
            OpenAIProvider(cfg(server), "sk-test-key-123456789"), max_tokens=50, temperature=0.2
        )
        assert text == "Hello!"
        assert usage.usage == Usage(
            input_tokens=20, cached_input_tokens=8, output_tokens=3, reasoning_tokens=1
        )
        assert fin.finish_reason == "stop" and fin.response_model == "gpt-4o-mini-2024-07-18"
        assert started[0].request_id == "req_1"
        sent = server.requests[0]
        assert sent.path == "/v1/chat/completions"
        assert sent.headers["authorization"] == "Bearer sk-test-key-123456789"
        body = sent.json
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        # OpenAI's own API wants max_completion_tokens (max_tokens is rejected by o-series).
        assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
        assert body["temperature"] == 0.2
        assert body["messages"] == [{"role": "user", "content": "hi"}]

    def test_system_prompt_and_compatible_max_tokens(self, server):
        server.queue(json_reply(openai_completion("ok", openai_usage(5, 1))))
        provider = OpenAIProvider(cfg(server, "deepseek"), "k" * 20)
        request = ChatRequest(
            model="deepseek-chat",
            messages=(Message("user", "hi"),),
            system="be brief",
            max_tokens=9,
            stream=False,
        )
        list(provider.generate(request))
        body = server.requests[0].json
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
        assert body["max_tokens"] == 9 and "stream_options" not in body

    def test_whole_response(self, server):
        server.queue(json_reply(openai_completion("Paris.", openai_usage(11, 2))))
        text, usage, fin, _ = run(OpenAIProvider(cfg(server), "k" * 20), stream=False)
        assert text == "Paris." and usage.usage.total_tokens == 13 and fin.finish_reason == "stop"

    def test_deepseek_cache_fields_and_blank_lines_before_json(self, server):
        usage = {
            "prompt_tokens": 100,
            "completion_tokens": 7,
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 36,
        }
        body = b"\n\n\n" + json_reply(openai_completion("x", usage)).body
        server.queue(Reply(200, {}, body))
        _, u, _, _ = run(OpenAIProvider(cfg(server, "deepseek"), "k" * 20), stream=False)
        assert u.usage == Usage(input_tokens=100, cached_input_tokens=64, output_tokens=7)

    def test_keepalive_comments_are_ignored(self, server):
        chunks = [
            b": keep-alive\n\n",
            b": OPENROUTER PROCESSING\n\n",
            *sse(openai_chunks(["a"], openai_usage(1, 1))),
        ]
        server.queue(sse_reply(chunks))
        text, u, _, _ = run(OpenAIProvider(cfg(server), "k" * 20))
        assert text == "a" and u.usage.input_tokens == 1

    def test_moonshot_usage_inside_choice(self, server):
        usage = {
            "prompt_tokens": 30,
            "completion_tokens": 4,
            "total_tokens": 34,
            "cached_tokens": 10,
        }
        server.queue(sse_reply(sse(openai_chunks(["k", "imi"], usage, usage_in_choice=True))))
        text, u, _, _ = run(OpenAIProvider(cfg(server, "moonshot"), "k" * 20))
        assert text == "kimi"
        assert u.usage == Usage(input_tokens=30, cached_input_tokens=10, output_tokens=4)

    def test_openrouter_reported_cost_is_exact(self, server):
        usage = openai_usage(1000, 500, cost=0.000450000000000001)
        server.queue(sse_reply(sse(openai_chunks(["x"], usage))))
        _, u, _, _ = run(OpenAIProvider(cfg(server, "openrouter"), "k" * 20))
        assert u.provider_cost == Decimal("0.000450000000000001")
        assert u.provider_cost_currency == "USD"

    def test_openrouter_byok_adds_upstream(self, server):
        usage = openai_usage(
            10, 5, cost=0.0001, is_byok=True, cost_details={"upstream_inference_cost": 0.002}
        )
        server.queue(json_reply(openai_completion("x", usage)))
        _, u, _, _ = run(OpenAIProvider(cfg(server, "openrouter"), "k" * 20), stream=False)
        assert u.provider_cost == Decimal("0.0021")

    def test_sglang_top_level_reasoning(self, server):
        usage = {"prompt_tokens": 3, "completion_tokens": 9, "reasoning_tokens": 6}
        server.queue(json_reply(openai_completion("x", usage)))
        _, u, _, _ = run(OpenAIProvider(cfg(server, "vllm"), None), stream=False)
        assert u.usage.reasoning_tokens == 6
        assert "authorization" not in server.requests[0].headers  # no key, none sent

    def test_stream_without_usage_chunk(self, server):
        server.queue(sse_reply(sse(openai_chunks(["a", "b"], None))))
        text, u, fin, _ = run(OpenAIProvider(cfg(server), "k" * 20))
        assert text == "ab" and u is None and fin.finish_reason == "stop"

    def test_error_object_inside_stream(self, server):
        chunks = [
            *sse(openai_chunks(["par"], None)[:2], done=False),
            b'data: {"error": {"code": 502, "message": "upstream provider died"}, "choices": [{"finish_reason": "error"}]}\n\n',
        ]
        server.queue(sse_reply(chunks))
        with pytest.raises(ProviderUnavailable, match="upstream provider died"):
            run(OpenAIProvider(cfg(server, "openrouter"), "k" * 20))

    def test_cut_stream(self, server):
        server.queue(sse_reply([*sse(openai_chunks(["a", "b"], None)[:2], done=False), Cut()]))
        provider = OpenAIProvider(cfg(server), "k" * 20)
        seen = []
        with pytest.raises(ProviderUnavailable) as info:
            for event in provider.generate(ChatRequest("m", (Message("user", "x"),))):
                seen.append(event)
        assert info.value.kind == "stream_cut"
        assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "a"

    def test_stream_ended_without_done_or_finish_is_cut(self, server):
        server.queue(sse_reply(sse(openai_chunks(["a"], None)[:2], done=False)))
        with pytest.raises(ProviderUnavailable) as info:
            run(OpenAIProvider(cfg(server), "k" * 20))
        assert info.value.kind == "stream_cut"

    def test_events_without_blank_lines_between(self, server):
        import json

        chunks = openai_chunks(["x", "y"], openai_usage(2, 2))
        body = "".join(f"data: {json.dumps(c)}\n" for c in chunks) + "data: [DONE]\n"
        server.queue(sse_reply([body.encode()]))
        text, u, _, _ = run(OpenAIProvider(cfg(server), "k" * 20))
        assert text == "xy" and u.usage.total_tokens == 4

    def test_non_json_200(self, server):
        server.queue(
            Reply(200, {"content-type": "text/html"}, b"<html><title>Gateway login</title></html>")
        )
        with pytest.raises(ProviderUnavailable) as info:
            run(OpenAIProvider(cfg(server), "k" * 20), stream=False)
        assert info.value.kind == "bad_response"
        assert "HTML page (Gateway login)" in info.value.message


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "kind", "exit_code"),
    [
        (
            401,
            {
                "error": {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            "auth",
            4,
        ),
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            "billing",
            4,
        ),
        (
            429,
            {
                "error": {
                    "message": "Rate limit reached for requests",
                    "type": "requests",
                    "code": "rate_limit_exceeded",
                }
            },
            "rate_limit",
            5,
        ),
        (402, {"error": {"message": "Insufficient Balance"}}, "billing", 4),
        (
            400,
            {"error": {"code": "1113", "message": "余额不足或无可用资源包,请充值。"}},
            "billing",
            4,
        ),
        (
            400,
            {
                "error": {
                    "code": "Arrearage",
                    "message": "Access denied, please make sure your account is in good standing.",
                }
            },
            "billing",
            4,
        ),
        (
            404,
            {
                "error": {
                    "message": "The model `gpt-9` does not exist or you do not have access to it.",
                    "code": "model_not_found",
                }
            },
            "unknown_model",
            6,
        ),
        (
            400,
            {"error": {"message": "Invalid 'temperature': decimal above maximum value."}},
            "bad_request",
            4,
        ),
        (500, {"error": {"message": "The server had an error"}}, "server", 5),
        (503, {"error": {"message": "The engine is currently overloaded"}}, "overloaded", 5),
        (
            400,
            {
                "code": 20012,
                "message": "Model does not exist. Please check it carefully.",
                "data": None,
            },
            "unknown_model",
            6,
        ),
        (
            400,
            {
                "object": "error",
                "message": "content management policy",
                "type": "BadRequestError",
                "code": 400,
            },
            "content_filter",
            4,
        ),
    ],
)
def test_http_errors_are_classified(server, status, body, kind, exit_code):
    server.queue(json_reply(body, status))
    with pytest.raises(ProviderError) as info:
        run(OpenAIProvider(cfg(server), "k" * 20))
    assert info.value.kind == kind
    assert int(info.value.exit_code) == exit_code
    assert info.value.status_code == status


def test_html_error_page(server):
    server.queue(
        Reply(
            502,
            {"content-type": "text/html"},
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>",
        )
    )
    with pytest.raises(ProviderUnavailable) as info:
        run(OpenAIProvider(cfg(server), "k" * 20))
    assert "HTML page (502 Bad Gateway)" in info.value.message
    assert info.value.exit_code == ExitCode.UNAVAILABLE


def test_retry_after_headers_are_read(server):
    server.queue(
        json_reply(
            {"error": {"message": "slow down"}}, 429, {"retry-after-ms": "1500", "retry-after": "9"}
        )
    )
    with pytest.raises(ProviderUnavailable) as info:
        run(OpenAIProvider(cfg(server), "k" * 20))
    assert info.value.retry_after == 1.5 and info.value.retryable


def test_echoed_key_is_redacted(server):
    key = "sk-proj-SECRETSECRETSECRET1234"
    server.queue(json_reply({"error": {"message": f"Incorrect API key provided: {key}."}}, 401))
    with pytest.raises(ProviderRefused) as info:
        run(OpenAIProvider(cfg(server), key))
    assert key not in str(info.value) and "[redacted]" in str(info.value)


def test_connection_refused():
    from dataclasses import replace

    config = replace(PRESETS["openai"], base_url="http://127.0.0.1:9/v1", connect_timeout=2.0)
    with pytest.raises(ProviderUnavailable) as info:
        run(OpenAIProvider(config, "k" * 20))
    assert info.value.kind == "network"


def test_plain_http_to_remote_host_is_refused():
    from dataclasses import replace

    from tokencli.errors import ConfigError

    with pytest.raises(ConfigError, match="plain http"):
        OpenAIProvider(replace(PRESETS["openai"], base_url="http://api.example.com/v1"), "k" * 20)
    # allowed when the user says so
    OpenAIProvider(
        replace(PRESETS["openai"], base_url="http://api.example.com/v1", allow_http=True), "k" * 20
    ).close()


# --------------------------------------------------------------- Anthropic


class TestAnthropic:
    def test_stream_with_cache_counts(self, server):
        events = anthropic_events(
            ["Hi", " there"], input_tokens=1000, output_tokens=42, cache_read=8000, cache_write=1000
        )
        server.queue(sse_reply(sse(events, named=True, done=False), {"request-id": "req_011"}))
        text, u, fin, started = run(
            AnthropicProvider(cfg(server, "anthropic"), "sk-ant-test-000000000000"), system="sys"
        )
        assert text == "Hi there"
        # Anthropic's input_tokens excludes both cache counts; normalized input includes them.
        assert u.usage == Usage(
            input_tokens=10000, cached_input_tokens=8000, cache_write_tokens=1000, output_tokens=42
        )
        assert fin.finish_reason == "stop" and fin.response_model == "claude-sonnet-4-5-20250929"
        assert started[0].request_id == "req_011"
        sent = server.requests[0]
        assert sent.path == "/v1/messages"
        assert sent.headers["x-api-key"] == "sk-ant-test-000000000000"
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.json["system"] == "sys" and sent.json["max_tokens"] == 4096

    def test_whole_message(self, server):
        server.queue(
            json_reply(
                anthropic_message(
                    "Bonjour",
                    {
                        "input_tokens": 12,
                        "output_tokens": 3,
                        "cache_read_input_tokens": 0,
                        "cache_creation_input_tokens": 0,
                    },
                )
            )
        )
        text, u, fin, _ = run(
            AnthropicProvider(cfg(server, "anthropic"), "k" * 20), stream=False, max_tokens=7
        )
        assert text == "Bonjour" and u.usage.total_tokens == 15 and fin.finish_reason == "stop"
        assert server.requests[0].json["max_tokens"] == 7

    def test_error_event_after_200(self, server):
        events = anthropic_events(["par"], input_tokens=5, output_tokens=1, end=False)
        events.append(
            (
                "error",
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            )
        )
        server.queue(sse_reply(sse(events, named=True, done=False)))
        with pytest.raises(ProviderUnavailable) as info:
            run(AnthropicProvider(cfg(server, "anthropic"), "k" * 20))
        assert info.value.kind == "overloaded" and info.value.retryable

    def test_cut_before_message_delta_keeps_input_counts(self, server):
        events = anthropic_events(["a", "b"], input_tokens=50, output_tokens=0, end=False)
        server.queue(sse_reply([*sse(events, named=True, done=False), Cut()]))
        seen = []
        with pytest.raises(ProviderUnavailable):
            for event in AnthropicProvider(cfg(server, "anthropic"), "k" * 20).generate(
                ChatRequest("m", (Message("user", "x"),))
            ):
                seen.append(event)
        usages = [e.usage for e in seen if isinstance(e, UsageUpdate)]
        assert usages[-1].input_tokens == 50

    def test_529_overloaded(self, server):
        server.queue(
            json_reply(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                529,
            )
        )
        with pytest.raises(ProviderUnavailable) as info:
            run(AnthropicProvider(cfg(server, "anthropic"), "k" * 20))
        assert info.value.kind == "overloaded"

    def test_billing_error(self, server):
        body = {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        }
        server.queue(json_reply(body, 400))
        with pytest.raises(ProviderRefused) as info:
            run(AnthropicProvider(cfg(server, "anthropic"), "k" * 20))
        assert info.value.kind == "billing" and "Top up" in str(info.value)

    def test_refusal_is_content_filter(self, server):
        server.queue(
            json_reply(
                anthropic_message("", {"input_tokens": 3, "output_tokens": 0}, stop="refusal")
            )
        )
        _, _, fin, _ = run(AnthropicProvider(cfg(server, "anthropic"), "k" * 20), stream=False)
        assert fin.finish_reason == "content_filter"


# ------------------------------------------------------------------ Gemini


class TestGemini:
    def test_stream_with_thoughts(self, server):
        chunks = [
            gemini_response(["Hel"], {"promptTokenCount": 9, "totalTokenCount": 9}, finish=None),
            gemini_response(["lo"], gemini_usage(9, 2, thoughts=30, cached=4)),
        ]
        server.queue(sse_reply(sse(chunks, done=False)))
        text, u, fin, _ = run(
            GeminiProvider(cfg(server, "gemini"), "AIzaTESTKEY"),
            model="gemini-2.5-flash",
            system="s",
            max_tokens=20,
        )
        assert text == "Hello"
        # thoughts are billed as output: output = candidates + thoughts
        assert u.usage == Usage(
            input_tokens=9, cached_input_tokens=4, output_tokens=32, reasoning_tokens=30
        )
        assert fin.finish_reason == "stop" and fin.response_model == "gemini-2.5-flash"
        sent = server.requests[0]
        assert sent.path == "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        assert sent.headers["x-goog-api-key"] == "AIzaTESTKEY"
        assert sent.json["systemInstruction"] == {"parts": [{"text": "s"}]}
        assert sent.json["generationConfig"] == {"maxOutputTokens": 20}

    def test_whole_response_skips_thought_parts(self, server):
        data = gemini_response(["answer"], gemini_usage(4, 1))
        data["candidates"][0]["content"]["parts"].insert(
            0, {"text": "thinking...", "thought": True}
        )
        server.queue(json_reply(data))
        text, _, _, _ = run(
            GeminiProvider(cfg(server, "gemini"), "k"), stream=False, model="models/gemini-2.5-pro"
        )
        assert text == "answer"
        assert server.requests[0].path == "/models/gemini-2.5-pro:generateContent"

    def test_safety_block(self, server):
        server.queue(
            json_reply(
                {
                    "promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                }
            )
        )
        _, u, fin, _ = run(GeminiProvider(cfg(server, "gemini"), "k"), stream=False)
        assert fin.finish_reason == "content_filter" and u.usage.input_tokens == 5

    def test_rate_limit_retry_delay_from_body(self, server):
        body = {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}
                ],
            }
        }
        server.queue(json_reply(body, 429))
        with pytest.raises(ProviderUnavailable) as info:
            run(GeminiProvider(cfg(server, "gemini"), "k"))
        assert info.value.kind == "rate_limit" and info.value.retry_after == 38.0

    def test_bare_json_error_mid_stream(self, server):
        chunks = sse([gemini_response(["a"], None, finish=None)], done=False)
        chunks.append(
            b'{\n  "error": {\n    "code": 503,\n    "message": "The model is overloaded.",\n    "status": "UNAVAILABLE"\n  }\n}\n'
        )
        server.queue(sse_reply(chunks))
        with pytest.raises(ProviderUnavailable, match="overloaded"):
            run(GeminiProvider(cfg(server, "gemini"), "k"))

    def test_stream_without_finish_is_cut(self, server):
        server.queue(sse_reply(sse([gemini_response(["a"], None, finish=None)], done=False)))
        with pytest.raises(ProviderUnavailable) as info:
            run(GeminiProvider(cfg(server, "gemini"), "k"))
        assert info.value.kind == "stream_cut"
