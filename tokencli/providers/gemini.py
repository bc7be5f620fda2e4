"""Google Gemini `generateContent` / `streamGenerateContent?alt=sse`.

Gemini reports thinking (`thoughtsTokenCount`) apart from the answer
(`candidatesTokenCount`); both are billed as output, so the normalized output
is their sum. Streams have no terminator: the chunk with a `finishReason`
ends the answer, and its `usageMetadata` is the complete one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..calls.usage import Usage, as_count
from . import http
from .base import (
    CONTENT_FILTER,
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

_FINISH = {
    "STOP": STOP,
    "MAX_TOKENS": LENGTH,
    "SAFETY": CONTENT_FILTER,
    "RECITATION": CONTENT_FILTER,
    "BLOCKLIST": CONTENT_FILTER,
    "PROHIBITED_CONTENT": CONTENT_FILTER,
    "SPII": CONTENT_FILTER,
    "IMAGE_SAFETY": CONTENT_FILTER,
}


def parse_usage(u: Mapping[str, Any]) -> Usage:
    thoughts = as_count(u.get("thoughtsTokenCount"))
    return Usage(
        # Tool-use prompt tokens are input the model read, billed as input.
        input_tokens=as_count(u.get("promptTokenCount"))
        + as_count(u.get("toolUsePromptTokenCount")),
        cached_input_tokens=as_count(u.get("cachedContentTokenCount")),
        output_tokens=as_count(u.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
    )


class GeminiProvider:
    def __init__(
        self,
        config: ProviderConfig,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = config
        self.api_key = api_key
        self.base = (config.base_url or "").rstrip("/")
        http.check_url_safety(config, self.base)
        self.client = http.build_client(config, transport)

    def close(self) -> None:
        self.client.close()

    def url(self, request: ChatRequest) -> str:
        model = request.model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        return f"{self.base}/models/{quote(model, safe='-._')}:{method}"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in request.messages
        ]
        body: dict[str, Any] = {"contents": contents}
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        config: dict[str, Any] = {}
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if config:
            body["generationConfig"] = config
        return body

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return headers

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        name = self.config.name
        url = self.url(request)
        with (
            http.transport_errors(name, url) as state,
            self.client.stream(
                "POST", url, json=self.body(request), headers=self.headers()
            ) as response,
        ):
            request_id = response.headers.get("x-goog-request-id")
            state["request_id"] = request_id
            http.raise_for_status(name, response, request_id)
            state["started"] = "yes"
            yield ResponseStarted(request_id=request_id, headers=dict(response.headers))
            if request.stream:
                yield from self._stream(response, request_id)
            else:
                data = http.read_json(name, response, request_id)
                if not isinstance(data, dict):
                    raise http.bad_response_error(
                        name, "JSON that is not a response", request_id=request_id
                    )
                finish, finish_raw, meta = yield from self._chunk(data, request_id)
                yield Finished(finish, finish_raw, meta[0], meta[1])

    def _chunk(self, data: Mapping[str, Any], request_id: str | None):
        """Events of one GenerateContentResponse; returns (finish, raw finish, (model, id))."""
        name = self.config.name
        if "error" in data:
            raise http.classify(name, 0, http.dumps(data), request_id=request_id)
        finish: str | None = None
        raw: str | None = None
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            raw = str(feedback["blockReason"])
            finish = CONTENT_FILTER
        for candidate in (data.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part, dict) and part.get("text") and not part.get("thought"):
                    yield TextDelta(str(part["text"]))
            if candidate.get("finishReason"):
                raw = str(candidate["finishReason"])
                finish = _FINISH.get(raw, raw.lower())
        if isinstance(data.get("usageMetadata"), dict):
            yield UsageUpdate(parse_usage(data["usageMetadata"]))
        return finish, raw, (data.get("modelVersion"), data.get("responseId"))

    def _stream(self, response: httpx.Response, request_id: str | None) -> Iterator[Event]:
        name = self.config.name
        finish = raw = model = response_id = None
        for event in http.iter_sse(response.iter_lines()):
            try:
                data = http.loads(event.data)
            except ValueError:
                raise http.bad_response_error(
                    name,
                    f"a stream event that is not JSON ({event.data[:60]!r})",
                    request_id=request_id,
                ) from None
            if isinstance(data, list):  # a bare error array
                data = data[0] if data else {}
            if not isinstance(data, dict):
                continue
            chunk_finish, chunk_raw, (chunk_model, chunk_id) = yield from self._chunk(
                data, request_id
            )
            finish, raw = chunk_finish or finish, chunk_raw or raw
            model, response_id = model or chunk_model, response_id or chunk_id
        if finish is None:
            raise http.stream_cut_error(name, request_id=request_id)
        yield Finished(finish, raw, model, response_id)
