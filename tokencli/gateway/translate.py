"""Chat clients on models whose provider speaks another protocol: OpenAI chat clients
on Anthropic, Gemini, Ollama, a local transformers model or mock; Anthropic Messages
clients (Claude Code, the anthropic SDKs) on OpenAI-protocol, Gemini, Ollama, local or
mock models. The text-chat subset, both ways.

The request becomes tokencli's own `ChatRequest` and runs through the
provider's `generate` (the code `run` uses: its wire format, its usage
parser, a local model's own tokenizer) in a worker thread; the events come
back as OpenAI chat completion chunks or one completion (`Translation`), or
as Anthropic's Messages events or one message (`MessagesTranslation`). What
has no translation (tools, images, documents, audio, thinking, several
choices, a response format) is refused with a 400 that says so, before
anything is sent or recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from ..errors import ProviderError
from ..providers.base import (
    CONTENT_FILTER,
    LENGTH,
    ChatRequest,
    Finished,
    Message,
    ResponseStarted,
)
from . import protocols
from .relay import MeteredResponse, Send, Tally, send_whole

if TYPE_CHECKING:
    from .app import Exchange

_NOT_TRANSLATED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "audio",
    "modalities",
    "logprobs",
    "prediction",
)


class Untranslatable(Exception):
    pass


def openai_chat_request(body: Mapping[str, Any], model: str) -> ChatRequest:
    """An OpenAI chat body → tokencli's request, or `Untranslatable` naming what is not."""
    present = [k for k in _NOT_TRANSLATED if body.get(k) not in (None, False, [], {})]
    if present:
        raise Untranslatable(f"{', '.join(present)} cannot be translated")
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise Untranslatable("n > 1 (several choices) cannot be translated")
    system: list[str] = []
    messages: list[Message] = []
    for role, content in _turns(body):
        if isinstance(content, list):
            if not all(isinstance(p, Mapping) and p.get("type") == "text" for p in content):
                raise Untranslatable("only text parts of messages can be translated")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise Untranslatable(f"a {role} message without text cannot be translated")
        if role in ("system", "developer"):
            system.append(content)
        elif role in ("user", "assistant"):
            messages.append(Message(role, content))
        else:
            raise Untranslatable(f"{role!r} messages cannot be translated")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    stop = body.get("stop")  # OpenAI allows one string or a list of them
    stops = _stops([stop] if isinstance(stop, str) else stop, "stop")
    return _request(body, model, messages, "\n\n".join(system), limit, stops)


def _stops(value: Any, field: str) -> tuple[str, ...]:
    """A request's stop sequences, or `Untranslatable` when they are not non-empty strings."""
    if value is None:
        return ()
    if not (isinstance(value, list) and all(isinstance(s, str) and s for s in value)):
        raise Untranslatable(f"{field} must be a list of non-empty strings")
    return tuple(value)


def _turns(body: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """Each message's (role, content), or `Untranslatable` when there are none to read."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise Untranslatable("a request without messages cannot be translated")
    if not all(isinstance(m, Mapping) for m in raw):
        raise Untranslatable("a message that is not an object cannot be translated")
    return [(m.get("role"), m.get("content")) for m in raw]


def _request(
    body: Mapping[str, Any],
    model: str,
    messages: list[Message],
    system: str | None,
    limit: Any,
    stop: tuple[str, ...] = (),
) -> ChatRequest:
    temperature = body.get("temperature")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        system=system or None,
        max_tokens=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        temperature=float(temperature)
        if isinstance(temperature, int | float) and not isinstance(temperature, bool)
        else None,
        stream=body.get("stream") is True,
        stop=stop,
    )


# Messages fields that have no translation (when present and not empty or off).
_MESSAGES_NOT_TRANSLATED = ("tools", "tool_choice", "mcp_servers", "container", "output_format")


def _text_blocks(blocks: list[Any], where: str) -> str:
    """The text of a list of Messages content blocks, or `Untranslatable` naming the
    first block that is not text (tool_use, tool_result, image, document, thinking…)."""
    texts: list[str] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            name = f"{kind} blocks" if isinstance(kind, str) else "content blocks without a type"
            raise Untranslatable(f"{name} in {where} cannot be translated (only text is)")
        texts.append(block["text"])
    return "".join(texts)


def anthropic_messages_request(body: Mapping[str, Any], model: str) -> ChatRequest:
    """An Anthropic Messages body → tokencli's request, or `Untranslatable` naming what is not."""
    present = [k for k in _MESSAGES_NOT_TRANSLATED if body.get(k) not in (None, False, [], {})]
    thinking = body.get("thinking")
    if thinking is not None and not (
        isinstance(thinking, Mapping) and thinking.get("type") == "disabled"
    ):
        present.append("thinking")
    if present:
        raise Untranslatable(f"{', '.join(present)} cannot be translated")
    system = body.get("system")
    if isinstance(system, list):
        system = _text_blocks(system, "system")
    elif system is not None and not isinstance(system, str):
        raise Untranslatable("a system prompt that is not text cannot be translated")
    messages: list[Message] = []
    for role, content in _turns(body):
        if role not in ("user", "assistant"):
            raise Untranslatable(f"{role!r} messages cannot be translated")
        if isinstance(content, list):
            content = _text_blocks(content, f"a {role} message")
        if not isinstance(content, str):
            raise Untranslatable(f"a {role} message without text cannot be translated")
        messages.append(Message(role, content))
    stops = _stops(body.get("stop_sequences"), "stop_sequences")
    return _request(body, model, messages, system, body.get("max_tokens"), stops)


def translated_request(protocol: str, body: Mapping[str, Any], target: Any) -> ChatRequest:
    """The door's body as the `ChatRequest` the target's provider runs (`Untranslatable` if
    it cannot be): OpenAI chat on the OpenAI door, Messages on the Anthropic door."""
    anthropic = protocol == protocols.ANTHROPIC
    if anthropic:
        chat = anthropic_messages_request(body, target.model)
    else:
        chat = openai_chat_request(body, target.model)
    if chat.stop and target.provider.type in ("transformers", "mock"):
        field = "stop_sequences" if anthropic else "stop"
        raise Untranslatable(f"{field} cannot be honoured by a {target.provider.type} model")
    return chat


def translation_for(exchange: Exchange, body: Mapping[str, Any]) -> Translation:
    """The ASGI response that answers a translated exchange in its door's protocol."""
    if exchange.protocol == protocols.ANTHROPIC:
        return MessagesTranslation(exchange, include_usage=False)
    options = body.get("stream_options")
    return Translation(
        exchange,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def _finish(finished: Finished | None) -> str:
    reason = finished.finish_reason if finished else None
    return {LENGTH: "length", CONTENT_FILTER: "content_filter"}.get(reason or "", "stop")


def _usage(tally: Tally) -> dict[str, Any] | None:
    u = tally.usage
    if u is None:
        return None
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Translation(MeteredResponse):
    """The ASGI response of a translated exchange (see the module's doc)."""

    def __init__(self, exchange: Exchange, *, include_usage: bool) -> None:
        self.exchange = exchange
        self.include_usage = include_usage
        self.tally = Tally()
        self.stop = threading.Event()
        self.created = int(time.time())
        self._started = False

    def _stopping(self) -> None:
        self.stop.set()  # the worker stops reading (and closes) the provider's answer

    async def _pump(self, send: Send) -> None:
        ex, tally = self.exchange, self.tally
        sender, events = anyio.create_memory_object_stream[Any](max_buffer_size=32)
        provider, request, stop = ex.provider, ex.request, self.stop

        def produce() -> None:
            generator = provider.generate(request)
            try:
                for event in generator:
                    if stop.is_set():
                        return
                    anyio.from_thread.run(sender.send, event)
            except anyio.BrokenResourceError:
                return
            except BaseException as exc:
                try:
                    anyio.from_thread.run(sender.send, _Failed(exc))
                except Exception:
                    pass
            finally:
                generator.close()
                try:
                    anyio.from_thread.run(sender.send, _END)
                except Exception:
                    pass

        async with anyio.create_task_group() as workers:
            workers.start_soon(self._worker, produce)
            async with events:
                async for item in events:
                    if item is _END:
                        break
                    if isinstance(item, _Failed):
                        error = item.error
                        tally.fail(
                            error if isinstance(error, Exception) else RuntimeError(str(error))
                        )
                        break
                    if isinstance(item, ResponseStarted):
                        tally.request_id = item.request_id
                        tally.headers = dict(item.headers)
                        continue
                    tally.take(item)
                    text = getattr(item, "text", None)
                    if text and ex.stream:
                        await self._chunk(send, {"content": text})
        await self._end(send)
        tally.done = True

    async def _worker(self, produce: Any) -> None:
        await anyio.to_thread.run_sync(produce, abandon_on_cancel=True)

    def _chunk_bytes(
        self, delta: dict[str, Any], finish: str | None = None, usage: Any = None
    ) -> bytes:
        ex = self.exchange
        data: dict[str, Any] = {
            "id": f"chatcmpl-{ex.call.id if ex.call else ''}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": ex.target.model,
            "choices": [] if usage is not None else [
                {"index": 0, "delta": delta, "finish_reason": finish}
            ],
        }  # fmt: skip
        if self.include_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    async def _chunk(self, send: Send, delta: dict[str, Any], finish: str | None = None) -> None:
        if not self._started:
            self._started = True
            self.exchange.response_started = True
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            first = {"role": "assistant", "content": ""}
            await send(
                {"type": "http.response.body", "body": self._chunk_bytes(first), "more_body": True}
            )
        await send(
            {
                "type": "http.response.body",
                "body": self._chunk_bytes(delta, finish),
                "more_body": True,
            }
        )

    async def _end(self, send: Send) -> None:
        ex, tally = self.exchange, self.tally
        error = tally.failure
        if error is not None and not self._started:
            status = 502
            headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
            if isinstance(error, ProviderError) and error.status_code:
                status = error.status_code if error.status_code < 500 else 502
                if error.retry_after:
                    headers.append((b"retry-after", str(int(error.retry_after + 0.999)).encode()))
            body = protocols.error_body(ex.protocol, status, str(error))
            ex.response_started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if error is not None:
            event = protocols.stream_error_event(ex.protocol, str(error))
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._answer(send)

    async def _answer(self, send: Send) -> None:
        """The end of an answer that did not fail: the stream's last chunks, or the whole."""
        ex, tally = self.exchange, self.tally
        if ex.stream:
            await self._chunk(send, {}, _finish(tally.finished))
            tail = b""
            if self.include_usage:
                tail += self._chunk_bytes({}, usage=_usage(tally))
            tail += b"data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            return
        completion = {
            "id": f"chatcmpl-{ex.call.id if ex.call else ''}",
            "object": "chat.completion",
            "created": self.created,
            "model": ex.target.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tally.parts)},
                    "finish_reason": _finish(tally.finished),
                }
            ],
            "usage": _usage(tally),
        }
        body = json.dumps(completion, ensure_ascii=False).encode()
        ex.response_started = True
        await send_whole(send, 200, [(b"content-type", b"application/json")], body)


def _stop_reason(finished: Finished | None) -> str:
    reason = finished.finish_reason if finished else None
    return {LENGTH: "max_tokens", CONTENT_FILTER: "refusal"}.get(reason or "", "end_turn")


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class MessagesTranslation(Translation):
    """A translated exchange answered in Anthropic's Messages format: one message, or the
    stream message_start, content_block_start, ping, content_block_delta (text_delta)…,
    content_block_stop, message_delta (stop_reason, usage), message_stop."""

    def _id(self) -> str:
        call = self.exchange.call
        return f"msg_{call.id if call else ''}"

    def _usage(self) -> dict[str, int]:
        u = self.tally.usage
        if u is None:
            return {"input_tokens": 0, "output_tokens": 0}
        return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}

    async def _chunk(self, send: Send, delta: dict[str, Any], finish: str | None = None) -> None:
        body = b""
        if not self._started:
            self._started = True
            self.exchange.response_started = True
            await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
            message: dict[str, Any] = {
                "id": self._id(),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": self.exchange.target.model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            body += _event("message_start", {"type": "message_start", "message": message})
            body += _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )  # fmt: skip
            body += _event("ping", {"type": "ping"})
        text = delta.get("content")
        if text:
            body += _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            )  # fmt: skip
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def _answer(self, send: Send) -> None:
        ex, tally = self.exchange, self.tally
        stop_reason = _stop_reason(tally.finished)
        if ex.stream:
            await self._chunk(send, {})  # opens the stream when no text came
            tail = _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            tail += _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": self._usage(),
                },
            )
            tail += _event("message_stop", {"type": "message_stop"})
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            return
        message: dict[str, Any] = {
            "id": self._id(),
            "type": "message",
            "role": "assistant",
            "model": ex.target.model,
            "content": [{"type": "text", "text": "".join(tally.parts)}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(),
        }
        body = json.dumps(message, ensure_ascii=False).encode()
        ex.response_started = True
        await send_whole(send, 200, [(b"content-type", b"application/json")], body)
