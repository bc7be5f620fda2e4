"""The gateway's Starlette app, its routes, and `serve` (uvicorn).

A metered request, in order: the client's key; the body (size, JSON, a
model); the route to a tokencli model; the client's own rate limit; then, in
a worker thread, the provider (its key from tokencli's key store) and the
shared rate limit, and `Engine.open_call`: guards, budgets' reservations and
the pending row, exactly as `run`. The `Relay` sends the request upstream
and relays the answer; its end finishes the row (`Engine.complete`), again
off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..calls.circuit import CircuitOpen
from ..calls.engine import Engine
from ..calls.guards import PlannedCall
from ..calls.limits import DEFAULT_OUTPUT_RESERVE, Reservation
from ..calls.resolve import ResolvedModel, RunOptions
from ..errors import CallFailed, LimitError, ProviderError, TokencliError, UsageError
from ..ledger import Call
from ..providers.base import ChatRequest, Event
from ..providers.http import transport_errors
from ..providers.http_base import HTTPProvider
from ..redact import redact
from ..settings.loader import Settings
from ..settings.model import GatewayClient
from . import protocols
from .clients import Keys, Pacer
from .deadline import protocol_class
from .metrics import Metrics
from .readers import EmbeddingsReader, ResponsesReader
from .relay import HOP_BY_HOP, Reader, Relay, Send, Tally, Upstreams
from .routing import route
from .translate import Untranslatable, translated_request, translation_for
from .writer import Writer

_NO_RETRY = {"x-should-retry": "false"}
T = TypeVar("T")


class Refusal(Exception):
    """The gateway answers the request itself, in the client's protocol."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.code = code


def error_response(
    protocol: str,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> Response:
    return Response(
        protocols.error_body(protocol, status, message, code),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


@dataclass
class Exchange:
    """One metered request: where it goes, its pending row, how its answer is read."""

    gateway: Gateway
    protocol: str
    client: GatewayClient | None
    target: ResolvedModel
    provider: Any  # an HTTPProvider when relayed; any Provider when translated
    request: ChatRequest
    stream: bool
    hide_usage_chunk: bool = False
    call: Call | None = None
    reservation: Reservation | None = None
    booked: int = 0
    response_started: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    # How the answer is read: the provider itself (chat, messages) or a `readers` class.
    reading: Callable[[str], Reader] | None = None

    @property
    def reader(self) -> Reader:
        if self.reading is None:
            return self.provider
        return self.reading(self.target.provider.name)

    def read_whole(self, data: Any, request_id: str | None) -> Iterator[Event]:
        return self.reader.parse_whole(data, request_id)

    async def send_error(self, send: Send, status: int, message: str) -> None:
        body = protocols.error_body(self.protocol, status, message)
        self.response_started = True
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def finish(self, tally: Tally) -> None:
        try:
            await self.gateway.in_writer(self.gateway.record, self, tally, whole=True)
        finally:
            self.gateway.metrics.ended()


class Gateway:
    """What every request shares: settings, the engine, keys, limits, upstream clients."""

    def __init__(
        self, settings: Settings, engine: Engine, *, log: Any = None, alert_every: float = 10.0
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.keys = Keys(settings.gateway.clients, settings.env)
        self.pacer = Pacer()
        self.upstreams = Upstreams()
        self.metrics = Metrics()
        self.max_body = int(settings.gateway.max_body_mb * 1024 * 1024)
        self.read_timeout = float(settings.gateway.read_timeout)
        self.writer = Writer(lambda: engine.ledger)
        self.alert_every = alert_every
        self.log = log or sys.stderr

    async def in_writer(self, function: Callable[..., T], *args: Any, whole: bool = False) -> T:
        """Run ledger work in the gateway's one writer thread (`writer.Writer`), off the
        event loop: concurrent requests' rows are written in batches that share a commit,
        instead of many threads contending for SQLite's write lock. `whole`: the work
        finishes even if the request is cancelled (a finished row must not be lost when
        the gateway stops); `close` waits for it."""
        future = asyncio.wrap_future(self.writer.submit(function, *args))
        return await (asyncio.shield(future) if whole else future)

    def close(self) -> None:
        """Wait for the rows still being written."""
        self.writer.shutdown()

    def day_rules(self) -> None:
        """Budget thresholds and anomaly rules, as `run` checks them after its answer
        (in the writer: it reads and writes the ledger like the calls do)."""
        from ..alerts.rules import AlertObserver

        for observer in self.engine.observers:
            if isinstance(observer, AlertObserver):
                observer.after_command(self.engine.ledger)

    def deliver(self) -> None:
        """Send the alerts that are pending, bounded, on a connection of its own (a slow
        channel holds up no call)."""
        from ..alerts.dispatch import deliver_pending
        from ..ledger import Ledger

        ledger = Ledger.open(self.settings.paths.db, create=False, clock=self.engine.clock)
        if ledger is None:
            return
        try:
            deliver_pending(ledger, self.settings, stderr=self.log)
        finally:
            ledger.close()

    async def alert_loop(self) -> None:
        """Every `alert_every` seconds while serving: the day rules, then delivery."""
        while True:
            await anyio.sleep(self.alert_every)
            try:
                await self.in_writer(self.day_rules)
                await anyio.to_thread.run_sync(self.deliver)
            except Exception as exc:  # alerts must never stop the gateway
                self.say(f"could not check or send alerts ({type(exc).__name__}: {exc}).")

    def say(self, message: str) -> None:
        try:
            print(f"tokencli serve: {redact(message)}", file=self.log, flush=True)
        except (OSError, ValueError):
            pass

    # ---------------------------------------------------------------- admission

    def authenticate(self, request: Request) -> GatewayClient | None:
        if not self.keys.required:
            return None
        client = self.keys.client(request.headers)
        if client is None:
            raise Refusal(
                401,
                "No known gateway key: send a client's key as 'Authorization: Bearer KEY' or "
                "'x-api-key: KEY' (make one with 'tokencli serve add-client NAME').",
                _NO_RETRY,
                "invalid_api_key",
            )
        return client

    async def read_json(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise Refusal(413, self._too_large(), _NO_RETRY)
        chunks: list[bytes] = []
        size = 0
        # A client trickling its body (slowloris) gets `read_timeout` seconds for all of it.
        with anyio.move_on_after(self.read_timeout) as reading:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise Refusal(413, self._too_large(), _NO_RETRY)
                chunks.append(chunk)
        if reading.cancelled_caught:
            raise Refusal(
                408,
                f"The request body did not arrive within {self.read_timeout:g} s "
                "([gateway] read_timeout).",
                {**_NO_RETRY, "connection": "close"},
                "request_timeout",
            )
        raw = b"".join(chunks)
        try:
            data = json.loads(raw)
        except ValueError:
            raise Refusal(400, "The request body is not valid JSON.", _NO_RETRY) from None
        if not isinstance(data, dict):
            raise Refusal(400, "The request body must be a JSON object.", _NO_RETRY)
        data["\x00raw"] = raw
        return data

    def _too_large(self) -> str:
        return (
            f"The request body is larger than the gateway's limit of "
            f"{self.settings.gateway.max_body_mb} MB ([gateway] max_body_mb)."
        )

    def targets(
        self,
        protocol: str,
        client: GatewayClient | None,
        model: Any,
        *,
        translatable: bool = False,
    ) -> list[ResolvedModel]:
        """The models a request's name goes to; those of another protocol only when
        the door translates (OpenAI chat completions, Anthropic messages)."""
        if not isinstance(model, str) or not model.strip():
            raise Refusal(400, "The request names no model.", _NO_RETRY)
        if client is not None and client.models and model not in client.models:
            raise Refusal(
                403,
                f"Gateway client {client.name!r} may not use {model!r}; it may use: "
                f"{', '.join(client.models)}.",
                _NO_RETRY,
            )
        try:
            chain = route(self.settings, protocol, model)
        except TokencliError as exc:
            raise Refusal(
                404,
                f"Unknown model {model!r}: {exc.message} Known providers: "
                f"{', '.join(sorted(self.settings.providers))}. See GET /v1/models for the "
                "names this gateway maps, or 'tokencli models' for the models tokencli "
                "knows; send PROVIDER:MODEL or a name mapped in [gateway.models].",
                _NO_RETRY,
                "model_not_found",
            ) from None
        if translatable:
            return chain
        same = [t for t in chain if t.provider.type == protocol]
        if not same:
            names = ", ".join(f"{t.ref} ({t.provider.type})" for t in chain)
            raise Refusal(
                400,
                f"{model!r} goes to {names}, which does not speak the {protocol} protocol this "
                "door does; only OpenAI chat completions and Anthropic messages are translated to "
                "other protocols. "
                "Use the door of that provider's protocol, or map the name in [gateway.models] "
                f"to a model of a {protocol}-type provider.",
                _NO_RETRY,
            )
        return same

    def admit_rate(self, client: GatewayClient | None, tokens: int) -> None:
        if client is None or not (client.rpm or client.tpm):
            return
        wait = self.pacer.admit(client, tokens)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise Refusal(
                429,
                f"Gateway client {client.name!r} is over its rate limit "
                f"({', '.join(x for x in (f'{client.rpm} requests/min' if client.rpm else '', f'{client.tpm:,} tokens/min' if client.tpm else '') if x)}); "
                f"retry in {seconds} s.",
                {"retry-after": str(seconds)},
                "rate_limit_exceeded",
            )

    # ------------------------------------------------------- in worker threads

    def prepare(self, ex: Exchange) -> None:
        """The provider (and its key), the shared rate limit's booking, and, unless that
        says wait, the pending row (one trip to the writer on the way out)."""
        ex.provider = self.engine.provider_for(ex.target.provider)
        estimated = PlannedCall.of(ex.target, ex.request, RunOptions(prompt="")).estimated_input
        reservation = self.engine.limiter.acquire(
            ex.target.provider.name,
            ex.target.model,
            estimated + (ex.request.max_tokens or DEFAULT_OUTPUT_RESERVE),
        )
        ex.reservation = reservation
        if reservation.wait <= 0:
            ex.call = self.open(ex)

    def open(self, ex: Exchange) -> Call:
        client = ex.client
        tags = dict(client.tags) if client else {}
        if client is not None:
            tags["client"] = client.name
            if client.user:
                tags["user"] = client.user
        options = RunOptions(
            prompt=ex.request.prompt_text,
            model=ex.target.ref,
            max_tokens=ex.request.max_tokens,
            stream=ex.stream,
            project=client.project if client else None,
            tags=tags,
        )
        plan = PlannedCall.of(ex.target, ex.request, options)

        def note(call: Call) -> None:
            call.extra["gateway"] = ex.protocol
            if client is not None:
                call.extra["client"] = client.name

        return self.engine.open_call(plan, note)

    def record(self, ex: Exchange, tally: Tally) -> None:
        """The finished row, as `run` writes it; never raises (the client has its answer)."""
        call = ex.call
        assert call is not None
        target = ex.target
        try:
            text = "".join(tally.parts)
            ended = tally.ended or time.monotonic()
            call.duration_ms = int((ended - tally.started) * 1000)
            call.ttft_ms = (
                int((tally.first_token - tally.started) * 1000)
                if tally.first_token is not None
                else None
            )
            call.request_id = tally.request_id or call.request_id
            failure = tally.failure
            limiter = self.engine.limiter
            if tally.headers:
                limiter.learn(target.provider.name, target.model, tally.headers)
            if isinstance(failure, ProviderError):
                failure.had_output = bool(text)
                call.request_id = call.request_id or failure.request_id
                if failure.kind == "rate_limit" and failure.retry_after:
                    limiter.hold(target.provider.name, target.model, failure.retry_after)
            self.engine.complete(
                call,
                ex.request,
                target,
                None,
                text,
                tally.usage,
                tally.finished,
                failure,
                tally.provider_cost,
                tally.provider_cost_currency,
            )
            if ex.reservation is not None:
                limiter.settle(
                    target.provider.name, target.model, ex.reservation, call.usage.total_tokens
                )
            if ex.client is not None:
                self.pacer.settle(ex.client, ex.booked, call.usage.total_tokens)
            self.metrics.record(call, ex.client.name if ex.client else "")
        except Exception as exc:
            self.say(
                f"could not record call {call.id} ({type(exc).__name__}: {str(exc)[:200]}); "
                "it stays pending until the next command marks it interrupted."
            )

    # ------------------------------------------------------------------ doors

    async def metered(
        self, request: Request, protocol: str, reading: Callable[[str], Reader] | None = None
    ) -> Any:
        client = self.authenticate(request)
        data = await self.read_json(request)
        raw: bytes = data.pop("\x00raw")
        model = data.get("model")
        path = request.url.path
        translatable = (protocol == protocols.OPENAI and path.endswith("/chat/completions")) or (
            protocol == protocols.ANTHROPIC and path.endswith("/messages")
        )
        chain = self.targets(protocol, client, model, translatable=translatable)
        stream = data.get("stream") is True
        refused: TokencliError | None = None
        for index, target in enumerate(chain):
            translated = target.provider.type != protocol
            if translated:
                chat = self.translated(protocol, data, target)
            else:
                chat = protocols.chat_request(data, target.model)
            booked = 0
            if client is not None:
                booked = PlannedCall.of(target, chat, RunOptions(prompt="")).estimated_input + (
                    chat.max_tokens or DEFAULT_OUTPUT_RESERVE
                )
                self.admit_rate(client, booked)
            ex = Exchange(
                gateway=self,
                protocol=protocol,
                client=client,
                target=target,
                provider=None,  # set just below
                request=chat,
                stream=stream,
                booked=booked,
                reading=reading,
            )
            try:
                await self.in_writer(self.prepare, ex)
                assert ex.reservation is not None
                if ex.call is None:  # the shared rate limit said wait first
                    await anyio.sleep(ex.reservation.wait)
                    ex.call = await self.in_writer(self.open, ex)
            except CircuitOpen as exc:
                refused = exc
                if index + 1 < len(chain):
                    continue
                break
            except CallFailed as failed:
                refused = failed.error if isinstance(failed.error, TokencliError) else None
                if refused is None:
                    raise
                break
            except TokencliError as exc:
                refused = exc
                break
            if translated:
                self.metrics.started()
                return translation_for(ex, data)
            return self.relay(ex, request, data, raw, str(model))
        if client is not None:
            self.pacer.settle(client, booked, 0)  # nothing was sent: its tokens go back
        raise self._refusal(refused)

    def translated(self, protocol: str, data: dict[str, Any], target: ResolvedModel) -> ChatRequest:
        """The request a translating door runs, or the 400 that says what has no translation."""
        try:
            return translated_request(protocol, data, target)
        except Untranslatable as exc:
            raise Refusal(
                400,
                f"{data.get('model')!r} goes to {target.ref}, whose provider speaks "
                f"{target.provider.type}, so the gateway translates the request; "
                f"{exc}. Send a text-only chat, or use a model of an {protocol}-type provider.",
                _NO_RETRY,
            ) from None

    def _refusal(self, error: TokencliError | None) -> Refusal:
        if isinstance(error, LimitError):
            return Refusal(402, error.message, _NO_RETRY, "budget_exceeded")
        if isinstance(error, CircuitOpen):
            return Refusal(503, str(error.message), {"retry-after": "30"}, "circuit_open")
        if isinstance(error, UsageError):
            return Refusal(400, error.message, _NO_RETRY)
        if error is None:
            return Refusal(500, "The gateway could not make the call.", _NO_RETRY)
        return Refusal(500, f"{error.message} {error.hint or ''}".strip(), _NO_RETRY)

    def relay(
        self, ex: Exchange, request: Request, data: dict[str, Any], raw: bytes, model: str
    ) -> Relay:
        """The upstream request: the client's body unchanged, except the model name when the
        gateway routed it elsewhere and, on OpenAI streams, a request for the usage chunk."""
        target, provider = ex.target, ex.provider
        body = data
        changed = False
        if target.model != model:
            body, changed = {**body, "model": target.model}, True
        if (
            ex.protocol == protocols.OPENAI
            and ex.stream
            and target.provider.stream_usage
            and request.url.path.endswith("/chat/completions")
        ):
            options = body.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                body = {
                    **body,
                    "stream_options": {
                        **(options if isinstance(options, dict) else {}),
                        "include_usage": True,
                    },
                }
                changed, ex.hide_usage_chunk = True, True
        content = json.dumps(body, ensure_ascii=False).encode() if changed else raw
        upstream = self.upstream_request(ex.protocol, target, provider, request, content)
        self.metrics.started()
        return Relay(ex, upstream)

    def upstream_request(
        self,
        protocol: str,
        target: ResolvedModel,
        provider: HTTPProvider,
        request: Request,
        content: bytes,
    ) -> httpx.Request:
        """The same path (and query) under the provider's base URL, with tokencli's key."""
        headers = provider.headers()
        if protocol == protocols.ANTHROPIC:
            for name in ("anthropic-beta", "anthropic-version"):
                value = request.headers.get(name)
                if value:
                    headers[name] = value
        path = request.url.path
        url = provider.base + (path.removeprefix("/v1") if protocol == protocols.OPENAI else path)
        if request.url.query:
            url += "?" + request.url.query
        client = self.upstreams.client(target.provider)
        return client.build_request("POST", url, content=content, headers=headers)

    async def unmetered(self, request: Request, protocol: str) -> Response:
        """A free request (Anthropic's count_tokens): forwarded with tokencli's key, its
        answer returned unchanged; no call is made, so no row is written. For a model the
        door translates to, tokencli's own estimate of the translated request's input."""
        client = self.authenticate(request)
        data = await self.read_json(request)
        raw: bytes = data.pop("\x00raw")
        model = data.get("model")
        target = self.targets(protocol, client, model, translatable=True)[0]
        if target.provider.type != protocol:
            chat = self.translated(protocol, data, target)
            plan = await anyio.to_thread.run_sync(
                PlannedCall.of, target, chat, RunOptions(prompt="")
            )
            return JSONResponse({"input_tokens": plan.estimated_input})
        try:
            provider = await self.in_writer(self.engine.provider_for, target.provider)
        except TokencliError as exc:
            raise self._refusal(exc) from None
        assert isinstance(provider, HTTPProvider)
        if target.model != model:
            raw = json.dumps({**data, "model": target.model}, ensure_ascii=False).encode()
        upstream = self.upstream_request(protocol, target, provider, request, raw)
        name = target.provider.name
        try:
            with transport_errors(name, str(upstream.url)):
                answer = await self.upstreams.client(target.provider, request.client).send(upstream)
        except ProviderError as exc:
            raise Refusal(504 if exc.kind == "timeout" else 502, str(exc)) from None
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(answer.content, status_code=answer.status_code, headers=headers)


def _door_of(path: str) -> str:
    return protocols.ANTHROPIC if path.startswith("/v1/messages") else protocols.OPENAI


def build_app(gateway: Gateway) -> Starlette:
    async def openai_chat(request: Request) -> Any:
        return await _door(request, protocols.OPENAI)

    async def anthropic_messages(request: Request) -> Any:
        return await _door(request, protocols.ANTHROPIC)

    async def openai_responses(request: Request) -> Any:
        return await _door(request, protocols.OPENAI, ResponsesReader)

    async def openai_embeddings(request: Request) -> Any:
        return await _door(request, protocols.OPENAI, EmbeddingsReader)

    async def anthropic_count_tokens(request: Request) -> Any:
        return await _door(request, protocols.ANTHROPIC, free=True)

    async def _door(
        request: Request,
        protocol: str,
        reading: Callable[[str], Reader] | None = None,
        free: bool = False,
    ) -> Any:
        try:
            if free:
                return await gateway.unmetered(request, protocol)
            return await gateway.metered(request, protocol, reading)
        except Refusal as refusal:
            client = ""
            try:
                found = gateway.keys.client(request.headers) if gateway.keys.required else None
                client = found.name if found else ""
            except Exception:
                pass
            gateway.metrics.refused(client, refusal.status)
            return error_response(
                protocol, refusal.status, refusal.message, refusal.headers, refusal.code
            )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def root(request: Request) -> Response:
        return PlainTextResponse("tokencli gateway\n")

    async def models(request: Request) -> Response:
        try:
            gateway.authenticate(request)
        except Refusal as refusal:
            return error_response(
                protocols.OPENAI, refusal.status, refusal.message, refusal.headers
            )
        settings = gateway.settings
        names: dict[str, str] = {}
        for name, target in settings.gateway.models.items():
            names[name] = target.partition(":")[0] if ":" in target else "tokencli"
        for alias in settings.aliases:
            names.setdefault(alias, "tokencli")
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": owner}
                    for name, owner in names.items()
                ],
            }
        )

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        protocol = _door_of(request.url.path)
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        elif exc.status_code == 404:
            message = (
                f"The gateway has no {request.url.path}: it serves /v1/chat/completions, "
                "/v1/responses, /v1/embeddings, /v1/models, /v1/messages, "
                "/v1/messages/count_tokens, /health and /metrics."
            )
        else:
            message = str(exc.detail)
        return error_response(protocol, exc.status_code, message, dict(exc.headers or {}))

    routes = [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/health", health, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", openai_chat, methods=["POST"]),
        Route("/v1/responses", openai_responses, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/v1/messages", anthropic_messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic_count_tokens, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            group.start_soon(gateway.alert_loop)
            yield
            group.cancel_scope.cancel()
        await gateway.upstreams.aclose()  # on the loop the clients were made on

    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )


def is_loopback_host(host: str) -> bool:
    from ..providers.http import is_loopback

    return is_loopback(host)


def check_bind(gateway: Gateway, host: str) -> None:
    if not is_loopback_host(host) and not gateway.keys.required:
        raise UsageError(
            f"Refusing to listen on {host} without gateway clients: anyone who can reach it "
            "could spend your provider keys.",
            "Add one with 'tokencli serve add-client NAME' (every request then needs its key), "
            "or listen on 127.0.0.1.",
        )


def serve(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    drain: float = 30.0,
    sockets: list[Any] | None = None,
    ready: Any = None,
) -> None:
    """Run the gateway until SIGTERM or Ctrl-C; streams in flight get `drain` seconds."""
    import uvicorn

    check_bind(gateway, host)
    config = uvicorn.Config(
        build_app(gateway),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(math.ceil(drain), 1),
        lifespan="on",
        timeout_keep_alive=30,
        # A request's headers must arrive within read_timeout (`deadline`); h11 buffers at
        # most this much of an incomplete request line and headers (its default is 16 KiB;
        # Claude Code's beta and tracing headers fit either way).
        http=protocol_class(gateway.read_timeout),
        h11_max_incomplete_event_size=64 * 1024,
        limit_concurrency=gateway.settings.gateway.max_connections,
    )
    server = uvicorn.Server(config)
    if ready is not None:
        ready(server)
    try:
        server.run(sockets=sockets)
    finally:
        gateway.close()
