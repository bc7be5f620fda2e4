"""Anthropic Messages API (`POST /v1/messages`).

Usage arrives in two parts in a stream: `message_start` carries input and
cache counts, each `message_delta` the cumulative output. Anthropic's
`input_tokens` excludes cache reads and writes; the normalized input adds
them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..calls.usage import MAX_COUNT, Usage, as_count, as_mapping
from . import http
from .base import (
    CONTENT_FILTER,
    LENGTH,
    STOP,
    ChatRequest,
    Event,
    Finished,
    TextDelta,
    TokenTally,
    UsageUpdate,
)
from .http_base import HTTPProvider, StreamState

API_VERSION = "2023-06-01"
_FINISH = {"end_turn": STOP, "stop_sequence": STOP, "max_tokens": LENGTH, "refusal": CONTENT_FILTER}


def parse_usage(u: Mapping[str, Any], previous: Usage | None = None) -> Usage:
    """Anthropic usage → normalized. Fields missing here keep `previous` values
    (a `message_delta` may carry only `output_tokens`)."""
    prev = previous or Usage()
    uncached = as_count(u["input_tokens"]) if u.get("input_tokens") is not None else None
    read = (
        as_count(u["cache_read_input_tokens"])
        if u.get("cache_read_input_tokens") is not None
        else None
    )
    write = (
        as_count(u["cache_creation_input_tokens"])
        if u.get("cache_creation_input_tokens") is not None
        else None
    )
    cached = prev.cached_input_tokens if read is None else read
    written = prev.cache_write_tokens if write is None else write
    if uncached is None:
        input_tokens = (
            prev.input_tokens
            - prev.cached_input_tokens
            - prev.cache_write_tokens
            + cached
            + written
        )
    else:
        input_tokens = uncached + cached + written
    output = prev.output_tokens if u.get("output_tokens") is None else as_count(u["output_tokens"])
    details = as_mapping(u.get("output_tokens_details"))
    thinking = details.get("thinking_tokens")
    return Usage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        reasoning_tokens=prev.reasoning_tokens if thinking is None else as_count(thinking),
    )


class AnthropicProvider(HTTPProvider):
    request_id_headers = ("request-id",)

    def url(self, request: ChatRequest) -> str:
        return f"{self.base}/v1/messages"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            # Required by the API; 4096 unless the user or config says otherwise.
            "max_tokens": request.max_tokens or self.config.default_max_tokens or 4096,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": request.stream,
        }
        if request.system:
            body["system"] = request.system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        return body

    def count_tokens(self, request: ChatRequest, *, raw: bool = False) -> TokenTally:
        """The free count endpoint (`POST /v1/messages/count_tokens`): exact, one request."""
        body = self.body(request)
        count_body: dict[str, Any] = {
            k: body[k] for k in ("model", "messages", "system") if k in body
        }
        data = self.post_json(f"{self.base}/v1/messages/count_tokens", count_body)
        tokens = data.get("input_tokens") if isinstance(data, dict) else None
        count = as_count(tokens)  # a count no count can be (-5, "abc", 1e30) is none
        if tokens is None or not 0 <= count <= MAX_COUNT:
            raise http.bad_response_error(self.config.name, "a count without input_tokens")
        return TokenTally(count, "Anthropic's count_tokens endpoint")

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        name = self.config.name
        if not isinstance(data, dict):
            raise http.bad_response_error(name, "JSON that is not a message", request_id=request_id)
        if data.get("type") == "error":
            raise http.classify(name, 0, http.dumps(data), request_id=request_id)
        if not isinstance(data.get("content"), list):
            raise http.bad_response_error(name, "a message without content", request_id=request_id)
        text = "".join(
            str(block.get("text", ""))
            for block in data["content"]
            if isinstance(block, dict) and block.get("type") == "text"
        )
        if text:
            yield TextDelta(text)
        if isinstance(data.get("usage"), dict):
            yield UsageUpdate(parse_usage(data["usage"]))
        raw = data.get("stop_reason")
        yield Finished(
            _FINISH.get(raw, raw) if raw else None, raw, data.get("model"), data.get("id")
        )

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        if not isinstance(data, dict):
            return
        kind = data.get("type") or kind
        if kind == "message_start":
            message = data.get("message") or {}
            state.model, state.response_id = message.get("model"), message.get("id")
            if isinstance(message.get("usage"), dict):
                state.usage = parse_usage(message["usage"])
                yield UsageUpdate(state.usage)
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield TextDelta(str(delta["text"]))
        elif kind == "message_delta":
            stop = (data.get("delta") or {}).get("stop_reason") or state.raw_finish
            state.raw_finish = stop
            state.finish = _FINISH.get(stop, stop) if stop else None
            if isinstance(data.get("usage"), dict):
                state.usage = parse_usage(data["usage"], state.usage)
                yield UsageUpdate(state.usage)
        elif kind == "message_stop":
            state.done = True
        elif kind == "error":
            raise http.classify(self.config.name, 0, http.dumps(data), request_id=request_id)
        # ping, content_block_start/stop and future event types: nothing to do.

    def stream_complete(self, state: StreamState) -> bool:
        # A stop_reason without message_stop is still a cut stream.
        return state.done
