"""Readers for the OpenAI endpoints tokencli's providers do not call themselves:
Responses (`/v1/responses`) and embeddings (`/v1/embeddings`).

A reader has the parsing half of an `HTTPProvider` (`parse_event`,
`parse_whole`, `stream_complete`, `done_marker`), so the relay reads them the
same way it reads chat. Chat and Messages are read by the providers' own code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..calls.usage import Usage, as_count, as_mapping
from ..providers import http
from ..providers.base import LENGTH, STOP, Event, Finished, TextDelta, UsageUpdate
from ..providers.http_base import StreamState


def responses_usage(u: Mapping[str, Any]) -> Usage:
    """Responses API usage → normalized (input includes cached; output includes reasoning)."""
    details = as_mapping(u.get("input_tokens_details"))
    out_details = as_mapping(u.get("output_tokens_details"))
    return Usage(
        input_tokens=as_count(u.get("input_tokens")),
        cached_input_tokens=as_count(details.get("cached_tokens")),
        cache_write_tokens=as_count(details.get("cache_write_tokens")),
        output_tokens=as_count(u.get("output_tokens")),
        reasoning_tokens=as_count(out_details.get("reasoning_tokens")),
    )


_TERMINAL = {"response.completed": STOP, "response.incomplete": LENGTH, "response.failed": None}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


class ResponsesReader:
    done_marker: str | None = None

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def _summary(self, response: Mapping[str, Any]) -> Iterator[Event]:
        if isinstance(response.get("usage"), dict):
            yield UsageUpdate(responses_usage(response["usage"]))

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        if not isinstance(data, dict):
            return
        kind = data.get("type") or kind
        if kind == "response.output_text.delta" and data.get("delta"):
            yield TextDelta(str(data["delta"]))
        elif kind in _TERMINAL:
            response = as_mapping(data.get("response"))
            state.model, state.response_id = response.get("model"), response.get("id")
            yield from self._summary(response)
            if kind == "response.failed":
                raise http.classify(
                    self.provider,
                    0,
                    http.dumps(response.get("error") or data),
                    request_id=request_id,
                )
            state.done = True
            state.finish = state.raw_finish = _TERMINAL[kind]
        elif kind == "error":
            raise http.classify(self.provider, 0, http.dumps(data), request_id=request_id)

    def stream_complete(self, state: StreamState) -> bool:
        return state.done

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        if not isinstance(data, dict) or data.get("object") != "response":
            raise http.bad_response_error(
                self.provider, "JSON that is not a response", request_id=request_id
            )
        text = "".join(
            str(part.get("text", ""))
            for item in _list(data.get("output"))
            if isinstance(item, dict)
            for part in _list(item.get("content"))
            if isinstance(part, dict) and part.get("type") == "output_text"
        )
        if text:
            yield TextDelta(text)
        yield from self._summary(data)
        status = data.get("status")
        finish = STOP if status == "completed" else LENGTH if status == "incomplete" else None
        yield Finished(finish, status, data.get("model"), data.get("id"))


class EmbeddingsReader:
    done_marker: str | None = None

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        return iter(())

    def stream_complete(self, state: StreamState) -> bool:
        return True

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise http.bad_response_error(
                self.provider, "JSON that is not a list of embeddings", request_id=request_id
            )
        from ..providers.openai import parse_usage

        if isinstance(data.get("usage"), dict):
            yield UsageUpdate(parse_usage(data["usage"]))
        yield Finished(STOP, None, data.get("model"), None)
