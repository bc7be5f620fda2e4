"""`HTTPProvider`: the skeleton every HTTP protocol fills in with its wire format.

Imported only when a remote provider is built (it imports httpx).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ..errors import ProviderError
from .base import ChatRequest, Event, Finished, ResponseStarted, TextDelta
from .http import (
    Bounds,
    TextMeter,
    bad_response_error,
    build_client,
    call_deadline,
    check_url_safety,
    iter_body,
    iter_lines,
    iter_sse,
    loads,
    raise_for_status,
    read_body,
    read_json,
    stream_cut_error,
    transport_errors,
)
from .registry import ProviderConfig


@dataclass
class StreamState:
    """What a stream has said so far, filled in by `HTTPProvider.parse_event`."""

    finish: str | None = None  # normalized finish reason
    raw_finish: str | None = None  # as the provider sent it
    model: str | None = None
    response_id: str | None = None
    # The provider said the answer is complete (a terminator, a done line).
    done: bool = False
    # Protocol-specific memory between events (Anthropic's partial usage).
    usage: Any = None
    extra: Mapping[str, object] = field(default_factory=dict)
    # The call's limits (deadline, sizes), for reading the stream.
    bounds: Bounds | None = None
    # The body, already read whole (a stream sent as application/json).
    body: bytes | None = None

    def finished(self) -> Finished:
        return Finished(self.finish, self.raw_finish, self.model, self.response_id, self.extra)


class HTTPProvider:
    """One POST per call, streamed or whole; subclasses state only their wire format.

    `generate` opens the request, maps transport failures and error statuses
    (with the request id and rate-limit headers), yields `ResponseStarted`,
    then reads the answer through the hooks below: `parse_event` for each
    stream item (SSE events decoded as JSON, unless `stream_items` is
    overridden), `parse_whole` for a non-streamed body, or for one JSON
    document sent in place of a stream. Everything is read within the call's
    `Bounds` (call_timeout, sizes, a stream's text against max_tokens).
    """

    # Response headers holding the provider's request id, tried in order.
    request_id_headers: tuple[str, ...] = ()
    # An SSE data line that ends the stream (OpenAI's "[DONE]").
    done_marker: str | None = None

    def __init__(
        self,
        config: ProviderConfig,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
    ):
        self.config = config
        self.api_key = api_key
        # A query string in base_url (`?key=…`, as some gateways want) stays a query:
        # request paths hang off the URL's path, the parameters go with every request.
        base_url, _, query = (config.base_url or "").partition("?")
        rooted = replace(config, base_url=base_url) if query else config
        self.base = self.api_root(rooted)
        check_url_safety(config, self.base)
        self.client = build_client(config, transport)
        if query.partition("#")[0]:
            params = httpx.QueryParams(query.partition("#")[0])

            def with_query(request: httpx.Request) -> None:
                # The request's own parameters (Gemini's alt=sse) win over the base_url's.
                request.url = request.url.copy_with(params=params.merge(request.url.params))

            hooks = self.client.event_hooks
            self.client.event_hooks = {**hooks, "request": [*hooks["request"], with_query]}

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ hooks

    def api_root(self, config: ProviderConfig) -> str:
        """The URL every request path hangs off."""
        return (config.base_url or "").rstrip("/")

    def url(self, request: ChatRequest) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def body(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]:
        """Events of one stream item (`kind`: the SSE event name); updates `state`."""
        raise NotImplementedError

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        """Events of a non-streamed answer, ending with `Finished`."""
        raise NotImplementedError

    def stream_complete(self, state: StreamState) -> bool:
        """Whether a stream that ended here was whole (else it was cut)."""
        return state.done or state.finish is not None

    def refine_error(self, error: ProviderError, request: ChatRequest) -> None:
        """Adjust a failure's message or hint for this protocol (in place)."""

    def request_id(self, response: httpx.Response) -> str | None:
        found: str | None = None
        for name in self.request_id_headers:
            found = found or response.headers.get(name)
        return found

    def lines(
        self, response: httpx.Response, state: StreamState, request_id: str | None
    ) -> Iterator[str]:
        """The stream's text lines, within the call's bounds (deadline, line size)."""
        chunks = (
            iter((state.body,))
            if state.body is not None
            else iter_body(response, state.bounds, request_id, None, self.config.name)
        )
        return iter_lines(chunks, self.config.name, request_id)

    def stream_items(
        self, response: httpx.Response, state: StreamState, request_id: str | None
    ) -> Iterator[tuple[str | None, Any]]:
        """(SSE event name, decoded JSON) of each event, until `done_marker`."""
        events = iter_sse(
            self.lines(response, state, request_id),
            provider=self.config.name,
            request_id=request_id,
        )
        for event in events:
            if self.done_marker is not None and event.data.strip() == self.done_marker:
                state.done = True
                return
            try:
                data = loads(event.data)
            except ValueError:
                raise bad_response_error(
                    self.config.name,
                    f"a stream event that is not JSON ({event.data[:60]!r})",
                    request_id=request_id,
                ) from None
            yield event.event, data

    # --------------------------------------------------------- template

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        name = self.config.name
        url = self.url(request)
        bounds = Bounds(self.config, request.max_tokens)
        try:
            with (
                call_deadline(bounds),
                transport_errors(name, url) as state,
                self.client.stream(
                    "POST", url, json=self.body(request), headers=self.headers()
                ) as response,
            ):
                request_id = self.request_id(response)
                state["request_id"] = request_id
                raise_for_status(name, response, request_id)
                state["started"] = "yes"
                yield ResponseStarted(request_id=request_id, headers=dict(response.headers))
                if request.stream and _content_type(response) == "application/json":
                    yield from self._read_unstreamed(response, request_id, bounds)
                elif request.stream:
                    yield from self._read_stream(response, request_id, bounds)
                else:
                    data = read_json(name, response, request_id, bounds)
                    yield from self._guarded(self.parse_whole(data, request_id), request_id)
        except ProviderError as exc:
            if exc.kind in ("timeout", "stream_cut", "network") and bounds.expired():
                # A socket wait cut short by the call's deadline: say which bound it was.
                raise bounds.timeout_error(exc.request_id) from None
            self.refine_error(exc, request)
            raise

    def post_json(self, url: str, body: dict[str, Any]) -> Any:
        """POST `body` and return the decoded answer (a side request: count endpoints)."""
        name = self.config.name
        bounds = Bounds(self.config, None)
        try:
            with (
                call_deadline(bounds),  # the whole request, as for a call: not each read alone
                transport_errors(name, url) as state,
                self.client.stream("POST", url, json=body, headers=self.headers()) as response,
            ):
                request_id = self.request_id(response)
                state["request_id"] = request_id
                raise_for_status(name, response, request_id)
                return read_json(name, response, request_id, bounds)
        except ProviderError as exc:
            if exc.kind in ("timeout", "stream_cut", "network") and bounds.expired():
                raise bounds.timeout_error(exc.request_id, answer=False) from None
            raise

    def _guarded(self, events: Iterator[Event], request_id: str | None) -> Iterator[Event]:
        return guarded(events, self.config.name, request_id)

    def _read_unstreamed(
        self, response: httpx.Response, request_id: str | None, bounds: Bounds
    ) -> Iterator[Event]:
        """A stream was asked for and one JSON document came (a server or proxy that
        ignores `stream: true`): the whole answer is the answer, its text never dropped.
        A JSON list is a stream's events in one document (Gemini without alt=sse); a
        body that is not JSON is read as the stream it may still be."""
        body = read_body(response, bounds, request_id, bounds.max_body, self.config.name)
        try:
            data = loads(body)
        except ValueError:
            yield from self._read_stream(response, request_id, bounds, body)
            return
        if isinstance(data, dict):
            yield from self._guarded(self.parse_whole(data, request_id), request_id)
            return
        if not isinstance(data, list):
            raise bad_response_error(
                self.config.name, "JSON that is not an answer", request_id=request_id
            )
        state = StreamState(bounds=bounds)
        for item in data:
            yield from self._guarded(self.parse_event(None, item, state, request_id), request_id)
            if state.done:
                break
        if not self.stream_complete(state):
            raise bad_response_error(
                self.config.name, "a list of events without an end", request_id=request_id
            )
        yield state.finished()

    def _read_stream(
        self,
        response: httpx.Response,
        request_id: str | None,
        bounds: Bounds,
        body: bytes | None = None,
    ) -> Iterator[Event]:
        state = StreamState(bounds=bounds, body=body)
        meter = TextMeter(bounds)
        for kind, data in self.stream_items(response, state, request_id):
            for event in self._guarded(self.parse_event(kind, data, state, request_id), request_id):
                yield event
                if isinstance(event, TextDelta):
                    meter.add(event.text, request_id)
            if state.done:
                break
        if not self.stream_complete(state):
            raise stream_cut_error(self.config.name, request_id=request_id)
        yield state.finished()


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


def guarded(events: Iterator[Event], provider: str, request_id: str | None) -> Iterator[Event]:
    """A protocol's events; an answer of a shape its parser cannot read (a list where an
    object belongs, nesting deeper than Python recurses) is a bad response, not a bug.
    Every reader of provider answers goes through it: the providers and the gateway's relay."""
    try:
        yield from events
    except ProviderError:
        raise
    except (
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
        ValueError,
        ArithmeticError,
        RecursionError,
    ) as exc:
        raise bad_response_error(
            provider,
            f"an answer tokencli cannot read ({type(exc).__name__})",
            request_id=request_id,
        ) from None
