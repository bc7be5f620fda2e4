"""Ollama's native chat API (`POST /api/chat`), streamed as NDJSON.

Why native rather than Ollama's OpenAI-compatible /v1: the native answer
carries Ollama's own counts (`prompt_eval_count`, `eval_count`) and its
timings (`total_duration`, `load_duration`, ... in nanoseconds), which the
ledger keeps in `extra`. The /v1 route still works through a provider of
`type = "openai"`.

Wire facts (reference/providers.md §4): `stream` defaults to true, so it is
always sent; the metrics arrive only on the `done: true` line and are left
out when zero; a failure mid-stream is a line `{"error": "..."}` under HTTP
200; there is no terminator line, so a stream that ends without `done: true`
was cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx

from ..calls.usage import Usage, as_count
from ..errors import ProviderError
from . import http
from .base import (
    LENGTH,
    STOP,
    ChatRequest,
    Event,
    TextDelta,
    UsageUpdate,
)
from .http_base import HTTPProvider, StreamState
from .registry import ProviderConfig

_FINISH = {"stop": STOP, "length": LENGTH}
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def api_root(base_url: str) -> str:
    """The server root: Ollama's native API lives under /api, its OpenAI one under /v1.

    A base_url written for the old OpenAI-compatible preset (`.../v1`) or
    Ollama cloud's documented `https://ollama.com/api` still finds /api/chat.
    """
    root = base_url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def parse_usage(data: Mapping[str, Any]) -> Usage:
    # Zero counts are omitted from the JSON (omitempty), so absent means 0.
    return Usage(
        input_tokens=as_count(data.get("prompt_eval_count")),
        output_tokens=as_count(data.get("eval_count")),
    )


def durations(data: Mapping[str, Any]) -> dict[str, int]:
    """Ollama's timings, nanoseconds as sent, named with their unit."""
    return {f"{k}_ns": _nanoseconds(data[k]) for k in _DURATIONS if k in data}


def _nanoseconds(value: object) -> int:
    """A duration as sent; one that is no number of nanoseconds from 0 to ~11 days is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return 0
    try:
        return int(value) if 0 <= value <= 10**15 else 0  # NaN compares false (or raises)
    except ArithmeticError:
        return 0


class OllamaProvider(HTTPProvider):
    # No request ids; the stream is NDJSON, not SSE.

    def api_root(self, config: ProviderConfig) -> str:
        return api_root(config.base_url or "http://localhost:11434")

    def url(self, request: ChatRequest) -> str:
        return f"{self.base}/api/chat"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        options: dict[str, Any] = {}
        max_tokens = (
            request.max_tokens if request.max_tokens is not None else self.config.default_max_tokens
        )
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.stop:
            options["stop"] = list(request.stop)
        if "num_ctx" in self.config.options:
            options["num_ctx"] = self.config.options["num_ctx"]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": request.stream,
        }
        if options:
            body["options"] = options
        if "keep_alive" in self.config.options:
            body["keep_alive"] = self.config.options["keep_alive"]
        return body

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:  # Ollama cloud; a local server ignores it
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def refine_error(self, error: ProviderError, request: ChatRequest) -> None:
        if error.kind == "not_found" and "not found" in error.message:
            # Ollama's 404 is `model "x" not found, try pulling it first`.
            error.hint = f"Pull it first: ollama pull {request.model}"

    def stream_items(
        self, response: httpx.Response, state: StreamState, request_id: str | None
    ) -> Iterator[tuple[str | None, Any]]:
        for data in http.iter_ndjson(self.lines(response, state, request_id)):
            yield None, data

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        state = StreamState()
        yield from self._answer(data, state)
        if not state.done:
            raise http.bad_response_error(self.config.name, "an answer without done: true")
        yield state.finished()

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        return self._answer(data, state)

    def _answer(self, data: Any, state: StreamState) -> Iterator[Event]:
        """One NDJSON line (or the whole answer); the `done` line completes `state`."""
        name = self.config.name
        if not isinstance(data, dict):
            raise http.bad_response_error(name, "JSON that is not an Ollama chat answer")
        if data.get("error"):
            raise http.classify(name, 0, http.dumps(data))
        message = data.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if content:
            yield TextDelta(str(content))
        if not data.get("done"):
            return
        yield UsageUpdate(parse_usage(data))
        raw = data.get("done_reason")
        state.finish = _FINISH.get(raw, raw) if raw else STOP
        state.raw_finish = raw
        state.model = data.get("model")
        state.extra = durations(data)
        state.done = True
