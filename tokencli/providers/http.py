"""What every HTTP protocol shares: the client, stream framing, error mapping.

Imported only when a remote provider is built (httpx costs ~0.2 s to import).
"""

from __future__ import annotations

import codecs
import contextlib
import ipaddress
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .. import __version__
from ..calls.usage import text_weight
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
    # No single wait outlasts the whole call (`Bounds` checks the sum between reads).
    connect = min(config.connect_timeout, config.call_timeout)
    timeout = httpx.Timeout(
        connect=connect,
        read=min(config.read_timeout, config.call_timeout),
        write=min(60.0, config.call_timeout),
        pool=connect,
    )
    client = httpx.Client(
        timeout=timeout,
        # Only encodings tokencli decodes within a bound (see iter_body).
        headers={"user-agent": USER_AGENT, "accept-encoding": "gzip, deflate", **config.headers},
        follow_redirects=False,
        transport=transport,
    )
    _enforce_deadlines(client)
    return client


# ------------------------------------------------------- the deadline of each read

# The deadline (time.monotonic()) of the call this thread is making, if any: every
# socket connect, read and write waits until then at most, so call_timeout bounds a
# server that trickles its headers as much as one that trickles its body.
_call = threading.local()


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = getattr(_call, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("call_timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _left(timeout, httpcore.ConnectTimeout), socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _enforce_deadlines(client: httpx.Client) -> None:
    """Put every connection of `client` under the calling thread's call deadline.

    httpx has no public door to its connection pool's network backend; where its
    internals differ (a test's MockTransport, a future httpx), reads are still
    bounded between chunks by `Bounds.check_time`, only less tightly.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(
            backend, _DeadlineBackend
        ):
            pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]


@contextlib.contextmanager
def call_deadline(bounds: Bounds) -> Iterator[None]:
    """Every socket wait of this thread ends by the call's deadline, until the call ends."""
    _call.deadline = bounds.deadline
    try:
        yield
    finally:
        _call.deadline = None


def dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def loads(text: str | bytes) -> Any:
    """JSON with floats kept as Decimal, so reported money stays exact.

    The one decoder of provider data: JSON nested deeper than Python recurses is
    a ValueError like any other JSON that is not an answer.
    """
    try:
        return json.loads(text, parse_float=Decimal)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# ------------------------------------------------------------------ call bounds

# What one call may read (DESIGN: a call never grows without limit, whatever a server sends).
# A stream is stopped once its text is estimated past RUNAWAY_FACTOR x the tokens asked for
# plus RUNAWAY_SLACK; without max_tokens, UNBOUNDED_ANSWER stands for what was asked.
RUNAWAY_FACTOR = 3
RUNAWAY_SLACK = 1_000
UNBOUNDED_ANSWER = 128 * 1024
# However much is asked for, no answer is read past this many tokens' worth.
MAX_ANSWER_TOKENS = 1_000_000
# A whole (non-streamed) answer: BYTES_PER_TOKEN per token it may carry, at least MIN_BODY.
BYTES_PER_TOKEN = 64
MIN_BODY = 8 * 2**20
# One stream line or event; the part of an error body that is read.
MAX_EVENT = 8 * 2**20
MAX_ERROR_BODY = 2**20
_READ_CHUNK = 64 * 1024


class Bounds:
    """One call's limits: an overall deadline (`call_timeout`, connect and every read
    together), the bytes a whole answer may take (decoded), and the text a stream may
    carry before it is stopped."""

    def __init__(self, config: ProviderConfig, max_tokens: int | None) -> None:
        self.provider = config.name
        self.timeout = config.call_timeout
        self.deadline = time.monotonic() + config.call_timeout
        self.asked = max_tokens or config.default_max_tokens or UNBOUNDED_ANSWER
        self.max_text_tokens = RUNAWAY_FACTOR * min(self.asked, MAX_ANSWER_TOKENS) + RUNAWAY_SLACK
        self.max_body = max(MIN_BODY, self.max_text_tokens * BYTES_PER_TOKEN)

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def check_time(self, request_id: str | None) -> None:
        if self.expired():
            raise self.timeout_error(request_id)

    def timeout_error(self, request_id: str | None, *, answer: bool = True) -> ProviderUnavailable:
        """`answer`: a call's (what arrived is kept), not a side request's (a count)."""
        kept = "What arrived was printed and recorded; r" if answer else "R"
        return ProviderUnavailable(
            f"{self.provider} did not finish within call_timeout ({self.timeout:g} s).",
            f"{kept}aise call_timeout for this provider (or in [defaults]) if it is only slow.",
            kind="timeout",
            request_id=request_id,
        )


class TextMeter:
    """The estimated tokens of a stream's text so far, against its `Bounds`."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.tokens = 0.0

    def add(self, text: str, request_id: str | None) -> None:
        self.tokens += text_weight(text)
        if self.tokens > self.bounds.max_text_tokens:
            raise ProviderUnavailable(
                f"{self.bounds.provider} kept sending far past the {self.bounds.asked} tokens "
                f"asked for (about {self.tokens:.0f} so far); tokencli stopped reading.",
                "What arrived was printed and recorded; the server may be ignoring max_tokens.",
                kind="runaway",
                request_id=request_id,
            )


def _inflater(encoding: str) -> Callable[[bytes], Iterator[bytes]] | None:
    """A bounded decoder for gzip/deflate (a bomb comes out piece by piece), else None."""
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif encoding == "deflate":
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
    else:
        return None

    def inflate(data: bytes) -> Iterator[bytes]:
        while data and not decoder.eof:
            out = decoder.decompress(data, _READ_CHUNK)
            data = decoder.unconsumed_tail
            if out:
                yield out

    return inflate


def iter_body(
    response: httpx.Response,
    bounds: Bounds | None,
    request_id: str | None,
    limit: int | None,
    provider: str = "",
) -> Iterator[bytes]:
    """The decoded body, piece by piece, within the call's deadline; more than `limit`
    decoded bytes (a huge answer, a decompression bomb) is an error."""
    who = bounds.provider if bounds else provider
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflate = _inflater(encoding)
    if inflate is None and encoding not in ("", "identity"):
        # br, zstd: decoded by httpx a whole network read at a time, with no bound.
        raise bad_response_error(
            who,
            f"an answer in an encoding it was not asked for ({encoding[:40]})",
            request_id=request_id,
        )
    raw = response.iter_raw() if inflate else response.iter_bytes()
    total = 0
    try:
        for chunk in raw:
            if bounds is not None:
                bounds.check_time(request_id)
            for piece in inflate(chunk) if inflate else (chunk,):
                total += len(piece)
                if limit is not None and total > limit:
                    raise bad_response_error(
                        who,
                        f"an answer larger than {limit // 2**20 or 1} MiB",
                        request_id=request_id,
                    )
                yield piece
    except zlib.error:
        raise bad_response_error(
            who, "a compressed answer that does not decompress", request_id=request_id
        ) from None


def read_body(
    response: httpx.Response,
    bounds: Bounds | None,
    request_id: str | None,
    limit: int,
    provider: str = "",
) -> bytes:
    return b"".join(iter_body(response, bounds, request_id, limit, provider))


_NEWLINE = re.compile(r"\r\n|\r|\n")


def iter_lines(
    chunks: Iterator[bytes], provider: str, request_id: str | None, max_line: int = MAX_EVENT
) -> Iterator[str]:
    """Text lines (CRLF, LF or CR) of a byte stream; a line over `max_line` is an error."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending: list[str] = []  # the line so far, in pieces: each chunk is scanned once
    size = 0
    carry_cr = False  # a chunk ended in CR: perhaps half of a CRLF
    for chunk in chunks:
        text = ("\r" if carry_cr else "") + decoder.decode(chunk)
        carry_cr = text.endswith("\r")
        end = len(text) - 1 if carry_cr else len(text)
        start = 0
        for match in _NEWLINE.finditer(text, 0, end):
            pending.append(text[start : match.start()])
            yield "".join(pending)
            pending, size, start = [], 0, match.end()
        if start < end:
            pending.append(text[start:end])
            size += end - start
        if size > max_line:
            raise bad_response_error(
                provider,
                f"a stream line longer than {max_line // 2**20 or 1} MiB",
                request_id=request_id,
            )
    tail = "".join(pending) + ("\r" if carry_cr else "") + decoder.decode(b"", final=True)
    pieces = _NEWLINE.split(tail)
    # Every piece a newline ends is a line, an empty one too (it ends an SSE event); the
    # piece after the last newline is one only when something is in it.
    yield from pieces[:-1]
    if pieces[-1]:
        yield pieces[-1]


# ---------------------------------------------------------------- stream framing


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


def iter_sse(
    lines: Iterator[str],
    *,
    max_event: int = MAX_EVENT,
    provider: str = "",
    request_id: str | None = None,
) -> Iterator[SSEEvent]:
    """Server-sent events from text lines.

    Comments (`: keep-alive`, `: OPENROUTER PROCESSING`) and blank lines are
    skipped. A line outside the SSE grammar (Gemini sends bare JSON errors
    mid-stream) comes out as an event named "raw" once its JSON is complete.
    An event over `max_event` characters is an error, never a MemoryError.
    """
    event: str | None = None
    data: str | None = None  # the data lines so far, joined by newlines
    raw: str | None = None
    for line in lines:
        if not line:
            if data is not None:
                yield SSEEvent(event, data)
            event, data = None, None
            continue
        if line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if sep and field in ("data", "event", "id", "retry"):
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                if data is not None and _complete(data):
                    # A server that forgot the blank line between events.
                    yield SSEEvent(event, data)
                    event, data = None, None
                data = value if data is None else f"{data}\n{value}"
                if len(data) > max_event:
                    raise _too_large(provider, max_event, request_id)
            elif field == "event":
                event = value
            continue
        raw = line if raw is None else f"{raw}\n{line}"
        if len(raw) > max_event:
            raise _too_large(provider, max_event, request_id)
        if _is_json(raw):
            yield SSEEvent("raw", raw)
            raw = None
    if data is not None:
        yield SSEEvent(event, data)
    if raw is not None:
        yield SSEEvent("raw", raw)


def _too_large(provider: str, limit: int, request_id: str | None) -> ProviderUnavailable:
    return bad_response_error(
        provider, f"a stream event larger than {limit // 2**20 or 1} MiB", request_id=request_id
    )


def _complete(text: str) -> bool:
    return text == "[DONE]" or _is_json(text)


def _is_json(text: str) -> bool:
    # Only text that could close a JSON document is parsed: a long event arriving
    # line by line is not parsed again at every line.
    text = text.strip()
    if not text or text[0] not in "{[" or text[-1] not in "}]":
        return False
    try:
        loads(text)
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
        data = loads(stripped)
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
    body = ""
    with contextlib.suppress(httpx.HTTPError, ProviderUnavailable):
        # The first MAX_ERROR_BODY bytes say what went wrong; the rest is not read.
        got = bytearray()
        for piece in iter_body(response, None, request_id, None, provider):
            got += piece
            if len(got) >= MAX_ERROR_BODY:
                break
        body = bytes(got[:MAX_ERROR_BODY]).decode("utf-8", "replace")
    error = classify(provider, response.status_code, body, response.headers, request_id=request_id)
    error.headers = dict(response.headers)  # rate-limit state for the engine to learn from
    raise error


def read_json(
    provider: str, response: httpx.Response, request_id: str | None, bounds: Bounds | None = None
) -> Any:
    """A whole answer, decoded; within the call's bounds when given (else MIN_BODY bytes)."""
    limit = bounds.max_body if bounds else MIN_BODY
    body = read_body(response, bounds, request_id, limit, provider)
    try:
        return loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        raise bad_response_error(
            provider, _describe_non_json(text) or "an empty answer", request_id=request_id
        ) from None
