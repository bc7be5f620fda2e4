"""One request through the gateway: sent upstream, relayed back, its usage read on the way.

The response goes to the client as the provider sent it: the status, the
headers (less hop-by-hop ones), and the body byte for byte; a stream is
relayed one SSE event at a time, each sent as soon as its blank line arrives.
A copy of each event is read by the provider's own parser
(`HTTPProvider.parse_event` / `parse_whole`), so usage, the finish reason and
the text (for estimates) come from the same code that reads `run`'s calls.

`Relay` is the ASGI response. It watches for the client leaving: then the
upstream request is closed (cancelled) and the call recorded `interrupted`
with estimated usage. Whatever ends the exchange (an answer, an upstream
error or cut, a client gone, the gateway stopping), the row is finished once,
in a worker thread, shielded from cancellation.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpx

from ..errors import Interrupted, ProviderError
from ..providers.base import Event, Finished, TextDelta, UsageUpdate
from ..providers.http import (
    USER_AGENT,
    bad_response_error,
    classify,
    iter_sse,
    loads,
    stream_cut_error,
    transport_errors,
)
from ..providers.http_base import StreamState, guarded
from ..providers.registry import ProviderConfig
from . import protocols

if TYPE_CHECKING:
    from .app import Exchange

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Not forwarded either way (RFC 9110 §7.6.1), nor what the relay itself sets.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
    "set-cookie",
}


class ClientGone(Interrupted):
    """The gateway's client disconnected before the answer ended."""

    kind = "client_disconnected"


class GatewayStopped(Interrupted):
    """The gateway stopped (SIGTERM past its drain time) before the answer ended."""

    kind = "gateway_stopped"


class Upstreams:
    """Pooled async HTTP clients per provider, kept for the gateway's life.

    Each provider gets `SHARDS` clients rather than one: httpcore's pool looks at every
    connection it holds (is it idle, has it expired, is its socket still readable) each
    time a request starts or ends, so one pool of 64 busy connections cost the event loop
    about a third of its time at 64 clients. A request takes the pool of its client's
    connection (`affinity`: the peer's address), so one client keeps reusing the same
    upstream connection (no new TLS handshake per request) and many clients spread over
    small pools."""

    SHARDS = 16

    def __init__(self) -> None:
        self._clients: dict[str, list[httpx.AsyncClient]] = {}

    def client(self, config: ProviderConfig, affinity: Any = None) -> httpx.AsyncClient:
        found = self._clients.get(config.name)
        if found is None:
            timeout = httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=60.0,
                pool=None,
            )
            found = [
                httpx.AsyncClient(
                    timeout=timeout,
                    headers={"user-agent": USER_AGENT, **config.headers},
                    follow_redirects=False,
                    limits=httpx.Limits(
                        max_connections=None, max_keepalive_connections=256 // self.SHARDS
                    ),
                )
                for _ in range(self.SHARDS)
            ]
            self._clients[config.name] = found
        return found[hash(affinity) % self.SHARDS if affinity is not None else 0]

    async def aclose(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.aclose()
        self._clients.clear()


@dataclass
class Tally:
    """What passed through: everything the finished row is made of."""

    parts: list[str] = field(default_factory=list)
    usage: Any = None
    provider_cost: Decimal | None = None
    provider_cost_currency: str | None = None
    finished: Finished | None = None
    failure: Exception | None = None
    request_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    ended: float | None = None
    done: bool = False  # the exchange ran to its end (whatever the outcome)

    def take(self, event: Any) -> None:
        if isinstance(event, TextDelta):
            if self.first_token is None:
                self.first_token = time.monotonic()
            self.parts.append(event.text)
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
            if event.provider_cost is not None:
                self.provider_cost = event.provider_cost
                self.provider_cost_currency = event.provider_cost_currency
        elif isinstance(event, Finished):
            self.finished = event

    def fail(self, error: Exception) -> None:
        if self.failure is None:
            self.failure = error


class Reader(Protocol):
    """The parsing half of an `HTTPProvider` (or of a `readers` class)."""

    done_marker: str | None

    def parse_event(
        self, kind: str | None, data: Any, state: StreamState, request_id: str | None
    ) -> Iterator[Event]: ...

    def parse_whole(self, data: Any, request_id: str | None) -> Iterator[Event]: ...

    def stream_complete(self, state: StreamState) -> bool: ...


class SSETap:
    """Splits a relayed stream into whole SSE events and reads a copy of each.

    `feed` returns the events to send on, unchanged; an event is held back only
    when it is the usage chunk the gateway asked for on a client's behalf.
    """

    def __init__(
        self, provider: Reader, tally: Tally, name: str, *, hide_usage_chunk: bool = False
    ) -> None:
        self.provider = provider
        self.name = name  # the provider's, for the error a malformed event becomes
        self.tally = tally
        self.state = StreamState()
        self.hide_usage_chunk = hide_usage_chunk
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        out: list[bytes] = []
        while True:
            lf = self._buffer.find(b"\n\n")
            crlf = self._buffer.find(b"\r\n\r\n")
            if lf < 0 and crlf < 0:
                return out
            end = crlf + 4 if crlf >= 0 and (lf < 0 or crlf < lf) else lf + 2
            block, self._buffer = self._buffer[:end], self._buffer[end:]
            if self._read(block):
                out.append(block)

    def end(self) -> bytes:
        """What is left after the stream closed (an event without its blank line)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self._read(rest)
        return rest

    @property
    def complete(self) -> bool:
        return self.provider.stream_complete(self.state)

    def _read(self, block: bytes) -> bool:
        """Read one event's copy; whether to send the event on."""
        text = block.decode("utf-8", "replace")
        keep = True
        for event in iter_sse(iter(text.splitlines())):
            marker = self.provider.done_marker
            if marker is not None and event.data.strip() == marker:
                self.state.done = True
                continue
            try:
                data = loads(event.data)
            except ValueError:
                continue  # relayed as it came; nothing to meter in it
            if (
                self.hide_usage_chunk
                and isinstance(data, dict)
                and data.get("choices") == []
                and isinstance(data.get("usage"), dict)
            ):
                keep = False
            request_id = self.tally.request_id
            try:
                for item in guarded(
                    self.provider.parse_event(event.event, data, self.state, request_id),
                    self.name,
                    request_id,
                ):
                    self.tally.take(item)
            except ProviderError as exc:  # an error event: relayed, and recorded
                self.tally.fail(exc)
        return keep


def response_headers(upstream: httpx.Response, *, stream: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream.headers.items()
        if k.lower() not in HOP_BY_HOP
    ]
    if stream:
        headers.append((b"x-accel-buffering", b"no"))
        headers.append((b"cache-control", b"no-cache"))
    return headers


async def send_whole(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """A whole (not streamed) answer: its status, its headers plus content-length, its body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class MeteredResponse:
    """The ASGI skeleton of a metered exchange's answer (`Relay`, `Translation`).

    `_pump` sends the answer while a watcher waits for the client to leave: a
    disconnect before the answer is delivered is `ClientGone` and cancels the pump.
    The answer is delivered once its last byte is on its way, or, for a stream, once
    its closing event is (`delivered`: clients stop reading at `[DONE]` and close,
    while the provider may not have closed its side yet). Whatever ends it,
    `_closing` runs (a subclass releases the upstream) and the row is finished once,
    shielded from cancellation."""

    exchange: Exchange
    tally: Tally
    affinity: Any = None  # the client's address: which upstream pool it uses
    delivered = False  # the stream's closing event has been sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tally = self.tally
        self.affinity = scope.get("client")
        answered = False

        async def send_on(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body"):
                # Set before the send, which may yield: a client that reads the last
                # byte and leaves at once must not look like one that left early.
                answered = True
            await send(message)

        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            # (a server says so after the answer, too)
                            if not (answered or self.delivered):
                                tally.fail(
                                    ClientGone("The client disconnected before the answer ended.")
                                )
                                group.cancel_scope.cancel()
                            return

                group.start_soon(watch)
                try:
                    await self._pump(send_on)
                except OSError:  # writing to a client that is gone
                    tally.fail(ClientGone("The client disconnected before the answer ended."))
                group.cancel_scope.cancel()
        finally:
            self._stopping()
            with anyio.CancelScope(shield=True):
                if not tally.done:
                    tally.fail(GatewayStopped("The gateway stopped before the answer ended."))
                tally.ended = time.monotonic()
                await self._closing()
                await self.exchange.finish(tally)

    async def _pump(self, send: Send) -> None:
        raise NotImplementedError

    def _stopping(self) -> None:
        """The exchange is ending: anything still producing its answer should stop."""

    async def _closing(self) -> None:
        """Release what the exchange holds upstream (before its row is finished)."""


class Relay(MeteredResponse):
    """The ASGI response of one metered exchange."""

    def __init__(self, exchange: Exchange, upstream_request: httpx.Request) -> None:
        self.exchange = exchange
        self.upstream_request = upstream_request
        self.tally = Tally()
        self._upstream: httpx.Response | None = None

    async def _closing(self) -> None:
        if self._upstream is not None:
            try:
                await self._upstream.aclose()  # cancels what the provider still sends
            except Exception:  # (its client may be closed already: shutting down)
                pass

    async def _pump(self, send: Send) -> None:
        ex, tally = self.exchange, self.tally
        provider, name = ex.provider, ex.target.provider.name
        url = str(self.upstream_request.url)
        client = ex.gateway.upstreams.client(ex.target.provider, self.affinity)
        try:
            with transport_errors(name, url) as state:
                upstream = await client.send(self.upstream_request, stream=True)
                self._upstream = upstream
                tally.request_id = provider.request_id(upstream)
                state["request_id"] = tally.request_id
                tally.headers = dict(upstream.headers)
                if upstream.status_code >= 400:
                    body = await upstream.aread()
                    await self._upstream_error(send, upstream, body)
                    tally.done = True
                    return
                state["started"] = "yes"
                is_sse = "text/event-stream" in upstream.headers.get("content-type", "")
                if ex.stream and is_sse:
                    await self._relay_stream(send, upstream)
                else:
                    await self._relay_whole(send, upstream, await upstream.aread())
        except ProviderError as exc:  # could not reach it, timed out, or cut mid-stream
            tally.fail(exc)
            if not ex.response_started:
                await ex.send_error(send, 504 if exc.kind == "timeout" else 502, str(exc))
            else:
                await send(
                    {
                        "type": "http.response.body",
                        "body": protocols.stream_error_event(ex.protocol, str(exc)),
                        "more_body": True,
                    }
                )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        tally.done = True

    async def _upstream_error(self, send: Send, upstream: httpx.Response, body: bytes) -> None:
        """The provider said no: its own error, unchanged, when it is JSON (clients such as
        Claude Code match on its wording); a clear error in the client's protocol if not."""
        ex, tally = self.exchange, self.tally
        text = body.decode("utf-8", "replace")
        error = classify(
            ex.target.provider.name,
            upstream.status_code,
            text,
            upstream.headers,
            request_id=tally.request_id,
        )
        error.headers = dict(upstream.headers)
        tally.fail(error)
        try:
            loads(body)
        except ValueError:
            await ex.send_error(send, 502, str(error))
            return
        ex.response_started = True
        await send_whole(send, upstream.status_code, response_headers(upstream, stream=False), body)

    async def _relay_whole(self, send: Send, upstream: httpx.Response, body: bytes) -> None:
        ex, tally = self.exchange, self.tally
        try:
            data = loads(body)
        except ValueError:
            from ..providers.http import _describe_non_json

            error = bad_response_error(
                ex.target.provider.name,
                _describe_non_json(body.decode("utf-8", "replace")) or "an empty answer",
                request_id=tally.request_id,
            )
            tally.fail(error)
            await ex.send_error(send, 502, str(error))
            return
        try:
            for event in guarded(
                ex.read_whole(data, tally.request_id), ex.target.provider.name, tally.request_id
            ):
                tally.take(event)
        except ProviderError as exc:
            tally.fail(exc)
        ex.response_started = True
        await send_whole(send, upstream.status_code, response_headers(upstream, stream=False), body)

    async def _relay_stream(self, send: Send, upstream: httpx.Response) -> None:
        ex, tally = self.exchange, self.tally
        tap = SSETap(
            ex.reader, tally, ex.target.provider.name, hide_usage_chunk=ex.hide_usage_chunk
        )
        ex.response_started = True
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status_code,
                "headers": response_headers(upstream, stream=True),
            }
        )
        async for chunk in upstream.aiter_bytes():
            for event in tap.feed(chunk):
                await send({"type": "http.response.body", "body": event, "more_body": True})
                # The client may leave now; the provider's usage may still follow.
                self.delivered = self.delivered or tap.complete
        rest = tap.end()
        if rest:
            await send({"type": "http.response.body", "body": rest, "more_body": True})
        if tap.complete:
            tally.finished = tap.state.finished()
        elif tally.failure is None:
            raise stream_cut_error(ex.target.provider.name, request_id=tally.request_id)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
