"""`GET /metrics`: the gateway's counters in Prometheus' text format.

Requests, tokens and cost by client, provider, model (and status for
requests); the requests in flight. Counted in memory since the gateway
started; the ledger holds the history.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from decimal import Decimal

from ..ledger import Call
from ..money import decimal_str


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.tokens: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.cost: dict[tuple[tuple[str, str], ...], Decimal] = defaultdict(Decimal)

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def ended(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def refused(self, client: str, status: int) -> None:
        """A request answered by the gateway itself (401, 429, 413 ...): no call was made."""
        with self._lock:
            key = (("client", client), ("provider", ""), ("model", ""), ("status", str(status)))
            self.requests[key] += 1

    def record(self, call: Call, client: str) -> None:
        base = (("client", client), ("provider", call.provider), ("model", call.model))
        u = call.usage
        with self._lock:
            self.requests[(*base, ("status", call.status))] += 1
            self.tokens[(*base, ("kind", "input"))] += u.input_tokens
            self.tokens[(*base, ("kind", "output"))] += u.output_tokens
            if call.cost is not None:
                self.cost[(*base, ("currency", call.currency or ""))] += call.cost

    def render(self) -> str:
        lines = [
            "# HELP tokencli_gateway_requests_total Requests answered, by client, provider, model and status.",
            "# TYPE tokencli_gateway_requests_total counter",
        ]
        with self._lock:
            lines += [
                f"tokencli_gateway_requests_total{_labels(k)} {v}"
                for k, v in sorted(self.requests.items())
            ]
            lines += [
                "# HELP tokencli_gateway_tokens_total Tokens recorded, by client, provider, model and kind.",
                "# TYPE tokencli_gateway_tokens_total counter",
            ]
            lines += [
                f"tokencli_gateway_tokens_total{_labels(k)} {v}"
                for k, v in sorted(self.tokens.items())
            ]
            lines += [
                "# HELP tokencli_gateway_cost_total Cost recorded, by client, provider, model and currency.",
                "# TYPE tokencli_gateway_cost_total counter",
            ]
            lines += [
                f"tokencli_gateway_cost_total{_labels(k)} {decimal_str(v) or '0'}"
                for k, v in sorted(self.cost.items())
            ]
            lines += [
                "# HELP tokencli_gateway_in_flight Requests being answered now.",
                "# TYPE tokencli_gateway_in_flight gauge",
                f"tokencli_gateway_in_flight {self.in_flight}",
            ]
        return "\n".join(lines) + "\n"
