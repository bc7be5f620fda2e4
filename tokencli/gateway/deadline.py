"""A deadline on a request's headers, which uvicorn does not have.

uvicorn's `timeout_keep_alive` runs only between requests and stops at the first
byte that arrives, and it sets no timer on a fresh connection: a client that
sends its request line and headers a byte at a time (slowloris), or connects and
sends nothing, holds a connection for ever, and middleware cannot help because
the app is called only once the headers are complete. So the gateway runs
uvicorn's own HTTP protocol (httptools when installed, else h11) with one
addition: from the moment a connection opens, or the first byte of its next
request arrives, the headers must be complete within `read_timeout` seconds,
else the connection gets a 408 and is closed. The body's own deadline is the
app's (`Gateway.read_json`), where the answer can be in the client's protocol.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

_BODY = json.dumps(
    {
        "error": {
            "message": "The request's headers did not arrive in time; the gateway closed "
            "the connection ([gateway] read_timeout).",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
).encode()
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"x-should-retry: false\r\nconnection: close\r\ncontent-length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)


class _HeaderDeadline:
    """Mixed in before uvicorn's protocol class (which has `cycle`, `transport`, `loop`)."""

    header_timeout: float = 30.0
    _deadline: asyncio.TimerHandle | None = None
    cycle: Any
    transport: Any
    loop: Any

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._disarm()  # the headers are in: the app reads the body, under its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


def protocol_class(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (what `http="auto"` would pick) with the header deadline."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return type(
        "GatewayHTTPProtocol",
        (_HeaderDeadline, AutoHTTPProtocol),
        {"header_timeout": header_timeout},
    )
