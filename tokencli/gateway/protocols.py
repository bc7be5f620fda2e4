"""The two front doors' wire details: error bodies clients' SDKs understand, and
what the gateway reads from a request body (model, stream flag, text to estimate).

OpenAI errors: `{"error": {"message", "type", "param", "code"}}`; Anthropic
errors: `{"type": "error", "error": {"type", "message"}}` (reference/gateway.md
§1.3, §3.3). The gateway's own refusals that a retry cannot help (budgets,
keys, bad requests) carry `x-should-retry: false`, which the official SDKs obey.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..providers.base import ChatRequest, Message

OPENAI = "openai"
ANTHROPIC = "anthropic"

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def error_body(protocol: str, status: int, message: str, code: str | None = None) -> bytes:
    """An error in the shape `protocol`'s SDKs parse."""
    if protocol == ANTHROPIC:
        data: dict[str, Any] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message},
        }
    else:
        data = {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(status, "server_error"),
                "param": None,
                "code": code,
            }
        }
    return json.dumps(data, ensure_ascii=False).encode()


def stream_error_event(protocol: str, message: str) -> bytes:
    """An error inside a stream that already answered 200: the SDKs raise on it."""
    if protocol == ANTHROPIC:
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return f"event: error\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
    data = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or parts of which text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def chat_request(body: Mapping[str, Any], model: str) -> ChatRequest:
    """What guards and estimates need from a chat body (either door): the text, the
    output limit, the stream flag. The body itself goes upstream as it came."""
    system_parts: list[str] = []
    messages: list[Message] = []
    raw_messages = body.get("messages")
    for m in raw_messages if isinstance(raw_messages, list) else []:
        if not isinstance(m, Mapping):
            continue
        role, text = m.get("role"), _text_of(m.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
        else:
            # Every earlier turn is input the model reads: all of it counts.
            messages.append(Message("user", text))
    system = body.get("system")
    if system is not None:
        system_parts.insert(0, _text_of(system))
    if "input" in body:  # Responses and embeddings
        raw_input = body["input"]
        texts = raw_input if isinstance(raw_input, list) else [raw_input]
        for item in texts:
            text = (
                item
                if isinstance(item, str)
                else _text_of(item.get("content") if isinstance(item, Mapping) else None)
            )
            messages.append(Message("user", text))
    if isinstance(body.get("instructions"), str):
        system_parts.append(body["instructions"])
    limit = next(
        (
            body[k]
            for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
            if isinstance(body.get(k), int) and not isinstance(body.get(k), bool)
        ),
        None,
    )
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        system="\n\n".join(p for p in system_parts if p) or None,
        max_tokens=limit,
        temperature=None,
        stream=body.get("stream") is True,
    )
