"""OpenAI Chat Completions, and every server that speaks it.

OpenAI, DeepSeek, Qwen (DashScope compatible mode), Moonshot, Zhipu,
SiliconFlow, OpenRouter, vLLM/SGLang and Ollama's /v1 all answer here. Their
differences live in `parse_usage` and in reading usage from both
`chunk.usage` and Moonshot's `chunk.choices[0].usage`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from ..calls.usage import Usage, as_count, as_mapping
from . import http
from .base import (
    CONTENT_FILTER,
    LENGTH,
    STOP,
    ChatRequest,
    Event,
    Finished,
    TextDelta,
    UsageUpdate,
)
from .http_base import HTTPProvider, StreamState

_FINISH = {"stop": STOP, "length": LENGTH, "content_filter": CONTENT_FILTER, "eos": STOP}


def parse_usage(u: Mapping[str, Any]) -> Usage:
    """OpenAI-shaped usage → normalized usage, with each vendor's extras."""
    details = as_mapping(u.get("prompt_tokens_details"))
    completion_details = as_mapping(u.get("completion_tokens_details"))
    input_tokens = as_count(u.get("prompt_tokens"))
    # DeepSeek: prompt_tokens = prompt_cache_hit_tokens + prompt_cache_miss_tokens.
    hit = u.get("prompt_cache_hit_tokens")
    if hit is not None:
        cached = as_count(hit)
        if not input_tokens:
            input_tokens = cached + as_count(u.get("prompt_cache_miss_tokens"))
    else:
        # OpenAI nests cached_tokens; Moonshot also puts it at the top level.
        cached = as_count(details.get("cached_tokens")) or as_count(u.get("cached_tokens"))
    reasoning = as_count(completion_details.get("reasoning_tokens")) or as_count(
        u.get("reasoning_tokens")
    )
    return Usage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=as_count(details.get("cache_write_tokens")),
        output_tokens=as_count(u.get("completion_tokens")),
        reasoning_tokens=reasoning,
    )


def reported_cost(u: Mapping[str, Any]) -> Decimal | None:
    """OpenRouter's `cost` (USD credits); with BYOK the upstream bill comes on top."""
    cost = u.get("cost")
    if not isinstance(cost, int | Decimal) or isinstance(cost, bool):
        return None
    total = Decimal(cost)
    if u.get("is_byok"):
        upstream = as_mapping(u.get("cost_details")).get("upstream_inference_cost")
        if isinstance(upstream, int | Decimal) and not isinstance(upstream, bool):
            total += Decimal(upstream)
    return total


def _usage_event(u: Mapping[str, Any]) -> UsageUpdate:
    cost = reported_cost(u)
    return UsageUpdate(
        parse_usage(u),
        provider_cost=cost,
        provider_cost_currency="USD" if cost is not None else None,
    )


class OpenAIProvider(HTTPProvider):
    request_id_headers = ("x-request-id", "request-id")
    done_marker = "[DONE]"

    def url(self, request: ChatRequest) -> str:
        return f"{self.base}/chat/completions"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": request.stream,
        }
        if request.stream and self.config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if request.max_tokens is not None:
            body[self.config.max_tokens_field] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        name = self.config.name
        if not isinstance(data, dict):
            raise http.bad_response_error(
                name, "JSON that is not a chat completion", request_id=request_id
            )
        if "error" in data and not data.get("choices"):
            raise http.classify(name, 0, http.dumps(data), request_id=request_id)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise http.bad_response_error(
                name, "a completion without choices", request_id=request_id
            )
        message = choices[0].get("message") or {}
        text = message.get("content") or message.get("refusal") or ""
        if text:
            yield TextDelta(str(text))
        usage = data.get("usage") or choices[0].get("usage")
        if isinstance(usage, dict):
            yield _usage_event(usage)
        raw = choices[0].get("finish_reason")
        yield Finished(
            finish_reason=_FINISH.get(raw, raw) if raw else None,
            raw_finish_reason=raw,
            response_model=data.get("model"),
            response_id=data.get("id"),
        )

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        if not isinstance(data, dict):
            return
        if data.get("error") or data.get("object") == "error":
            raise http.classify(self.config.name, 0, http.dumps(data), request_id=request_id)
        state.model = state.model or data.get("model")
        state.response_id = state.response_id or data.get("id")
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                yield TextDelta(str(content))
            if choice.get("finish_reason"):
                raw = choice["finish_reason"]
                state.raw_finish, state.finish = raw, _FINISH.get(raw, raw)
            if isinstance(choice.get("usage"), dict):  # Moonshot
                yield _usage_event(choice["usage"])
        if isinstance(data.get("usage"), dict):
            yield _usage_event(data["usage"])
