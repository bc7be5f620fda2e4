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

from ..calls.usage import MAX_COUNT, Usage, as_count
from . import http
from .base import (
    CONTENT_FILTER,
    LENGTH,
    STOP,
    ChatRequest,
    Event,
    TextDelta,
    TokenTally,
    UsageUpdate,
)
from .http_base import HTTPProvider, StreamState

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


class GeminiProvider(HTTPProvider):
    request_id_headers = ("x-goog-request-id",)

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
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if config:
            body["generationConfig"] = config
        return body

    def count_tokens(self, request: ChatRequest, *, raw: bool = False) -> TokenTally:
        """The free count endpoint (`models/MODEL:countTokens`): exact, one request."""
        model = request.model.removeprefix("models/")
        body = self.body(request)
        body.pop("generationConfig", None)
        url = f"{self.base}/models/{quote(model, safe='-._')}:countTokens"
        data = self.post_json(url, {"generateContentRequest": {"model": f"models/{model}", **body}})
        tokens = data.get("totalTokens") if isinstance(data, dict) else None
        count = as_count(tokens)  # a count no count can be (-5, "abc", 1e30) is none
        if tokens is None or not 0 <= count <= MAX_COUNT:
            raise http.bad_response_error(self.config.name, "a count without totalTokens")
        return TokenTally(count, "Gemini's countTokens endpoint")

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return headers

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        if not isinstance(data, dict):
            raise http.bad_response_error(
                self.config.name, "JSON that is not a response", request_id=request_id
            )
        state = StreamState()
        yield from self._chunk(data, state, request_id)
        yield state.finished()

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        if isinstance(data, list):  # a bare error array
            data = data[0] if data else {}
        if isinstance(data, dict):
            yield from self._chunk(data, state, request_id)

    def _chunk(
        self, data: Mapping[str, Any], state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        """Events of one GenerateContentResponse; its finish and ids go into `state`."""
        if "error" in data:
            raise http.classify(self.config.name, 0, http.dumps(data), request_id=request_id)
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            state.raw_finish = str(feedback["blockReason"])
            state.finish = CONTENT_FILTER
        for candidate in (data.get("candidates") or [])[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part, dict) and part.get("text") and not part.get("thought"):
                    yield TextDelta(str(part["text"]))
            if candidate.get("finishReason"):
                raw = str(candidate["finishReason"])
                state.raw_finish, state.finish = raw, _FINISH.get(raw, raw.lower())
        if isinstance(data.get("usageMetadata"), dict):
            yield UsageUpdate(parse_usage(data["usageMetadata"]))
        state.model = state.model or data.get("modelVersion")
        state.response_id = state.response_id or data.get("responseId")
