"""What every HTTP protocol shares: the client, stream framing, error mapping.

Imported only when a remote provider is built (httpx costs ~0.2 s to import).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ConfigError, ExitCode, ProviderError, ProviderRefused, ProviderUnavailable
from ..redact import redact
from .http_headers import parse_duration, retry_after_seconds
from .registry import ProviderConfig

USER_AGENT = f"tokencli/{__version__}"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url_safety(config: ProviderConfig, url: str) -> None:
    """Keys travel only over https, except to this machine or when allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (config.allow_http or is_loopback(parts.hostname or "")):
        return
    raise ConfigError(
        f"Refusing to call {config.name} at {parts.scheme}://{parts.hostname}: plain http would expose your key.",
        f"Use an https base_url, or set allow_http = true in [providers.{config.name}].",
    )


def build_client(
    config: ProviderConfig, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=config.connect_timeout,
        read=config.read_timeout,
        write=60.0,
        pool=config.connect_timeout,
    )
    return httpx.Client(
        timeout=timeout,
        headers={"user-agent": USER_AGENT, **config.headers},
        follow_redirects=False,
        transport=transport,
    )


def dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def loads(text: str | bytes) -> Any:
    """JSON with floats kept as Decimal, so reported money stays exact."""
    return json.loads(text, parse_float=Decimal)


# ---------------------------------------------------------------- stream framing


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


def iter_sse(lines: Iterator[str]) -> Iterator[SSEEvent]:
    """Server-sent events from text lines.

    Comments (`: keep-alive`, `: OPENROUTER PROCESSING`) and blank lines are
    skipped. A line outside the SSE grammar (Gemini sends bare JSON errors
    mid-stream) comes out as an event named "raw" once its JSON is complete.
    """
    event: str | None = None
    data: list[str] = []
    raw: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and field in ("data", "event", "id", "retry"):
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                if data and _complete(data):
                    # A server that forgot the blank line between events.
                    yield SSEEvent(event, "\n".join(data))
                    event, data = None, []
                data.append(value)
            elif field == "event":
                event = value
            continue
        raw.append(line)
        joined = "\n".join(raw)
        if _is_json(joined):
            yield SSEEvent("raw", joined)
            raw = []
    if data:
        yield SSEEvent(event, "\n".join(data))
    if raw:
        yield SSEEvent("raw", "\n".join(raw))


def _complete(data: list[str]) -> bool:
    text = "\n".join(data)
    return text == "[DONE]" or _is_json(text)


def _is_json(text: str) -> bool:
    text = text.strip()
    if not text or text[0] not in "{[":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def iter_ndjson(lines: Iterator[str]) -> Iterator[Any]:
    for line in lines:
        line = line.strip()
        if line:
            try:
                yield loads(line)
            except ValueError:
                raise bad_response_error("", f"a line that is not JSON: {line[:80]!r}") from None


# ----------------------------------------------------------------------- errors

# Words providers use when an account is out of money or quota (never retried).
_BILLING_CODES = {
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
    "billing_error",
    "billing_not_active",
    "arrearage",
    "1113",
    "enforced_spend_limit_reached",
    "exceeded_current_quota_error",
    "insufficient_balance",
}
_BILLING_WORDS = re.compile(
    r"insufficient (?:balance|credits?|quota|funds)|credit balance is too low|"
    r"balance is not enough|out of credits|exceeded your current quota|arrearage|"
    r"account is not in good standing|余额不足|欠费",
    re.IGNORECASE,
)
_CONTENT_WORDS = re.compile(
    r"content[_ ]?(?:filter|policy|management)|data_inspection_failed|1301|moderation", re.I
)
_MODEL_WORDS = re.compile(
    r"model[_ ]not[_ ]found|does not exist|unknown model|no such model|invalid model|not a valid model",
    re.I,
)


@dataclass(frozen=True)
class ErrorBody:
    message: str
    codes: tuple[str, ...]
    retry_delay: float | None


def parse_error_body(text: str) -> ErrorBody:
    """The message and codes of any provider's error body (JSON or not)."""
    stripped = text.strip()
    if not stripped:
        return ErrorBody("", (), None)
    try:
        data = json.loads(stripped)
    except ValueError:
        return ErrorBody(_describe_non_json(stripped), (), None)
    codes: list[str] = []
    message = ""
    retry_delay = None
    nodes: list[Any] = [data]
    if isinstance(data, list):
        nodes = list(data)
    for node in nodes:
        if not isinstance(node, dict):
            continue
        err = node.get("error", node)
        if isinstance(err, str):
            message = message or err
            err = node
        if not isinstance(err, dict):
            continue
        for key in ("code", "type", "status"):
            value = err.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                codes.append(str(value).lower())
        for key in ("code", "type"):
            value = node.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool):
                codes.append(str(value).lower())
        message = message or str(
            err.get("message") or node.get("message") or node.get("detail") or ""
        )
        for detail in err.get("details") or []:
            if isinstance(detail, dict) and "retryDelay" in detail:
                retry_delay = parse_duration(str(detail["retryDelay"]))
    return ErrorBody(message.strip(), tuple(dict.fromkeys(codes)), retry_delay)


def _describe_non_json(text: str) -> str:
    if text.lstrip().lower().startswith(("<!doctype", "<html")) or "<body" in text[:2000].lower():
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        name = " ".join(title.group(1).split()) if title else ""
        return f"an HTML page{f' ({name[:80]})' if name else ''} instead of JSON"
    return " ".join(text.split())[:200]


def classify(
    provider: str,
    status: int,
    body_text: str,
    headers: Mapping[str, str] | None = None,
    *,
    request_id: str | None = None,
) -> ProviderError:
    """An HTTP failure (or an error object inside a 200 stream) → a ProviderError."""
    headers = headers or {}
    body = parse_error_body(body_text)
    message = redact(body.message) or "no details given"
    codes = set(body.codes)
    said = f"{provider} answered {status}" if status else f"{provider} reported an error"
    detail = f"{said}: {message.rstrip('.')}."
    common: dict[str, Any] = {"status_code": status or None, "request_id": request_id}

    if status == 402 or codes & _BILLING_CODES or _BILLING_WORDS.search(body.message):
        return ProviderRefused(
            f"{provider} refused the call: the account is out of credit or quota ({message.rstrip('.')}).",
            f"Top up or raise the limit in {provider}'s console, then run again.",
            kind="billing",
            **common,
        )
    if status in (401,) or "authentication_error" in codes or "invalidapikey" in codes:
        return ProviderRefused(
            detail,
            f"Check the key for {provider} ('tokencli keys list' shows where it comes from).",
            kind="auth",
            **common,
        )
    if status == 403:
        return ProviderRefused(
            detail,
            f"The key for {provider} is not allowed to do this.",
            kind="permission",
            **common,
        )
    if _CONTENT_WORDS.search(body.message) or codes & {
        "content_filter",
        "1301",
        "data_inspection_failed",
    }:
        return ProviderRefused(
            detail,
            "The provider's content filter blocked the request.",
            kind="content_filter",
            **common,
        )
    if _MODEL_WORDS.search(body.message) and status in (400, 404, 422):
        error = ProviderRefused(
            detail,
            f"Check the model name; 'tokencli models --provider {provider}' lists known models.",
            kind="unknown_model",
            **common,
        )
        error.exit_code = ExitCode.CONFIG
        return error
    if status == 404:
        error = ProviderRefused(
            detail,
            f"Check the model name and the base_url of {provider}.",
            kind="not_found",
            **common,
        )
        error.exit_code = ExitCode.CONFIG
        return error
    retry_after = retry_after_seconds(headers)
    if retry_after is None:
        retry_after = body.retry_delay
    if status == 429:
        return ProviderUnavailable(
            f"{provider} is rate limiting this key ({message.rstrip('.')}).",
            "Wait and run again, or lower the request rate.",
            kind="rate_limit",
            retry_after=retry_after,
            retryable=True,
            **common,
        )
    if status in (408, 409) or status >= 500:
        kind = "overloaded" if status in (503, 529) or "overloaded_error" in codes else "server"
        return ProviderUnavailable(
            detail,
            f"{provider} is having trouble; try again shortly.",
            kind=kind,
            retry_after=retry_after,
            retryable=True,
            **common,
        )
    if 400 <= status < 500:
        return ProviderRefused(
            detail,
            "The request was not accepted; check the flags and the model.",
            kind="bad_request",
            **common,
        )
    # An error object inside a successful stream, with no status to go by.
    retryable = bool(
        codes
        & {
            "overloaded_error",
            "api_error",
            "server_error",
            "503",
            "500",
            "502",
            "unavailable",
            "internal",
        }
    )
    return ProviderUnavailable(
        detail,
        f"{provider} stopped the answer with an error; try again.",
        kind="overloaded" if "overloaded_error" in codes else "server",
        retryable=retryable,
        **common,
    )


def bad_response_error(
    provider: str, what: str, *, request_id: str | None = None
) -> ProviderUnavailable:
    who = provider or "the provider"
    return ProviderUnavailable(
        f"{who} sent {what}.",
        "It may be down or behind a proxy that changed the answer; check the base_url and try again.",
        kind="bad_response",
        request_id=request_id,
    )


def stream_cut_error(provider: str, *, request_id: str | None = None) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"The connection to {provider} closed before the answer was complete.",
        "What arrived was printed and recorded; run again for the rest.",
        kind="stream_cut",
        request_id=request_id,
        retryable=True,
    )


@contextlib.contextmanager
def transport_errors(provider: str, url: str) -> Iterator[dict[str, str | None]]:
    """Turn httpx's transport exceptions into ProviderUnavailable (exit 5).

    Yields a dict whose `request_id` the caller fills in once known, so that a
    failure after the headers still carries it.
    """
    state: dict[str, str | None] = {"request_id": None, "started": None}
    host = urlsplit(url).netloc.rpartition("@")[2]  # never the user:password part
    try:
        yield state
    except httpx.TimeoutException as exc:
        phase = "connect to" if isinstance(exc, httpx.ConnectTimeout) else "hear back from"
        raise ProviderUnavailable(
            f"Timed out trying to {phase} {provider} at {host}.",
            "Check the network, or raise connect_timeout/read_timeout for this provider.",
            kind="timeout",
            request_id=state["request_id"],
            retryable=True,
        ) from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if state["started"]:
            raise stream_cut_error(provider, request_id=state["request_id"]) from None
        raise ProviderUnavailable(
            f"The connection to {provider} at {host} failed ({_reason(exc)}).",
            "Check the network and the base_url, then try again.",
            kind="network",
            retryable=True,
        ) from None
    except httpx.TransportError as exc:
        raise ProviderUnavailable(
            f"Could not reach {provider} at {host} ({_reason(exc)}).",
            "Check the network and the base_url, then try again.",
            kind="network",
            retryable=True,
        ) from None
    except httpx.InvalidURL:
        raise ConfigError(f"The base_url for {provider} is not a valid URL: {url}.", None) from None


def _reason(exc: Exception) -> str:
    text = redact(str(exc)).strip() or type(exc).__name__
    # "[Errno 111] Connection refused" → "connection refused"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return text[:120].rstrip(".").lower() if text else type(exc).__name__


def raise_for_status(provider: str, response: httpx.Response, request_id: str | None) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        body = ""
    error = classify(provider, response.status_code, body, response.headers, request_id=request_id)
    error.headers = dict(response.headers)  # rate-limit state for the engine to learn from
    raise error


def read_json(provider: str, response: httpx.Response, request_id: str | None) -> Any:
    body = response.read()
    try:
        return loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        raise bad_response_error(
            provider, _describe_non_json(text) or "an empty answer", request_id=request_id
        ) from None
