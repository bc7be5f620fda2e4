"""A loopback HTTP server that answers like the real providers.

Tests queue `Reply`s; the server records each request (path, headers, JSON
body) and answers with the next reply: a whole body, or chunks streamed with
chunked encoding, with pauses and an abrupt cut where a test wants them. The
payload builders below produce the providers' real wire formats (see
../shared/reference/providers.md).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Pause:
    seconds: float


@dataclass
class Cut:
    """Close the connection without finishing the chunked body."""


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # Any iterable: a generator makes an endless stream.
    chunks: Iterable[bytes | Pause | Cut] | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as separate writes; without this, Nagle's
                # algorithm and delayed ACKs add ~40 ms to every loopback answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append(
                        Recorded(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = (
                        server.replies.popleft()
                        if server.replies
                        else Reply(500, body=b'{"error":{"message":"no reply queued"}}')
                    )
                self.send_response(reply.status)
                headers = {"content-type": "application/json", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                if reply.chunks is None:
                    data = reply.body or b""
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                for chunk in reply.chunks:
                    if isinstance(chunk, Pause):
                        time.sleep(chunk.seconds)
                        continue
                    if isinstance(chunk, Cut):
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    try:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # bursts of connections (the gateway's tests)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up mid-answer are what some tests are about

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------ payloads


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, headers or {}, json.dumps(data).encode())


def sse(
    events: list[Any], *, done: bool = True, named: bool = False, pause: float = 0.0
) -> list[bytes | Pause | Cut]:
    """SSE chunks, one event each. `named` events are (name, data) pairs."""
    out: list[bytes | Pause | Cut] = []
    for event in events:
        if isinstance(event, Pause | Cut):
            out.append(event)
            continue
        if isinstance(event, bytes):
            out.append(event)
            continue
        if named:
            name, data = event
            out.append(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        else:
            out.append(f"data: {json.dumps(event)}\n\n".encode())
        if pause:
            out.append(Pause(pause))
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def sse_reply(chunks: list[bytes | Pause | Cut], headers: dict[str, str] | None = None) -> Reply:
    return Reply(200, {"content-type": "text/event-stream", **(headers or {})}, chunks=chunks)


# OpenAI Chat Completions -------------------------------------------------------


def openai_usage(
    prompt: int, completion: int, cached: int = 0, reasoning: int = 0, **extra: Any
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }
    usage.update(extra)
    return usage


def openai_completion(
    text: str,
    usage: dict[str, Any] | None,
    model: str = "gpt-4o-mini-2024-07-18",
    finish: str = "stop",
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1760000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
        "service_tier": "default",
    }


def openai_chunks(
    pieces: list[str],
    usage: dict[str, Any] | None,
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    finish: str = "stop",
    usage_in_choice: bool = False,
) -> list[Any]:
    """Chat completion chunks as OpenAI streams them (usage chunk last, choices empty)."""
    base = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": model,
    }
    chunks: list[Any] = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
            "usage": None,
        }
    ]
    for piece in pieces:
        chunks.append(
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                "usage": None,
            }
        )
    final_choice: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": finish}
    if usage_in_choice and usage is not None:  # Moonshot
        final_choice["usage"] = usage
    chunks.append({**base, "choices": [final_choice], "usage": None})
    if usage is not None and not usage_in_choice:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


# Anthropic Messages ---------------------------------------------------------------


def anthropic_message(
    text: str,
    usage: dict[str, Any],
    model: str = "claude-sonnet-4-5-20250929",
    stop: str = "end_turn",
) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def anthropic_events(
    pieces: list[str],
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    model: str = "claude-sonnet-4-5-20250929",
    stop: str = "end_turn",
    end: bool = True,
) -> list[Any]:
    start_usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": 1,
    }
    events: list[Any] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "usage": start_usage,
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        )
    if end:
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
    return events


# Gemini -----------------------------------------------------------------------------


def gemini_response(
    pieces: list[str] | str,
    usage: dict[str, Any] | None,
    finish: str | None = "STOP",
    model: str = "gemini-2.5-flash",
) -> dict[str, Any]:
    parts = [{"text": p} for p in ([pieces] if isinstance(pieces, str) else pieces)]
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    data: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": "resp-xyz",
    }
    if usage is not None:
        data["usageMetadata"] = usage
    return data


def gemini_usage(
    prompt: int, candidates: int, thoughts: int = 0, cached: int = 0
) -> dict[str, Any]:
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
    return usage
