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

from collections.abc import Generator, Iterator, Mapping
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
    Finished,
    ResponseStarted,
    TextDelta,
    UsageUpdate,
)
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
    return {f"{k}_ns": as_count(data[k]) for k in _DURATIONS if k in data}


class OllamaProvider:
    def __init__(
        self,
        config: ProviderConfig,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = config
        self.api_key = api_key
        self.url = f"{api_root(config.base_url or 'http://localhost:11434')}/api/chat"
        http.check_url_safety(config, self.url)
        self.client = http.build_client(config, transport)

    def close(self) -> None:
        self.client.close()

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

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        name = self.config.name
        try:
            with (
                http.transport_errors(name, self.url) as state,
                self.client.stream(
                    "POST", self.url, json=self.body(request), headers=self.headers()
                ) as response,
            ):
                http.raise_for_status(name, response, None)
                state["started"] = "yes"
                yield ResponseStarted(headers=dict(response.headers))
                if request.stream:
                    yield from self._stream(http.iter_ndjson(response.iter_lines()))
                else:
                    yield from self._answer(http.read_json(name, response, None), whole=True)
        except ProviderError as exc:
            if exc.kind == "not_found" and "not found" in exc.message:
                # Ollama's 404 is `model "x" not found, try pulling it first`.
                exc.hint = f"Pull it first: ollama pull {request.model}"
            raise

    def _stream(self, lines: Iterator[Any]) -> Iterator[Event]:
        for data in lines:
            done = yield from self._answer(data, whole=False)
            if done:
                return
        raise http.stream_cut_error(self.config.name)

    def _answer(self, data: Any, *, whole: bool) -> Generator[Event, None, bool]:
        """One NDJSON line (or the whole answer); returns True on the `done` line."""
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
            if whole:
                raise http.bad_response_error(name, "an answer without done: true")
            return False
        yield UsageUpdate(parse_usage(data))
        raw = data.get("done_reason")
        yield Finished(
            finish_reason=_FINISH.get(raw, raw) if raw else STOP,
            raw_finish_reason=raw,
            response_model=data.get("model"),
            extra=durations(data),
        )
        return True
