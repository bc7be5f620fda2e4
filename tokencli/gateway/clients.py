"""Who may use the gateway: keys, and each client's own requests and tokens per minute.

A client presents its key as `Authorization: Bearer KEY` (OpenAI SDKs, Claude
Code's ANTHROPIC_AUTH_TOKEN) or `x-api-key: KEY` (Anthropic SDKs). Keys are
compared by their sha256, so the config may hold only the hash. With no client
configured the gateway serves loopback callers without keys.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping

from ..errors import ConfigError
from ..settings.model import GatewayClient


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh client key: what `serve add-client` prints once."""
    return "tk-" + secrets.token_urlsafe(32)


class Keys:
    """Presented key → the client it belongs to."""

    def __init__(self, clients: Mapping[str, GatewayClient], env: Mapping[str, str]) -> None:
        self.by_hash: dict[str, GatewayClient] = {}
        for client in clients.values():
            if client.key_sha256:
                self.by_hash[client.key_sha256] = client
                continue
            value = env.get(client.key_env or "")
            if not value:
                raise ConfigError(
                    f"Gateway client {client.name!r} reads its key from {client.key_env}, which is not set.",
                    f"Set {client.key_env} before 'tokencli serve', or give the client a key with "
                    f"'tokencli serve add-client {client.name}'.",
                )
            self.by_hash[key_hash(value)] = client

    @property
    def required(self) -> bool:
        return bool(self.by_hash)

    def client(self, headers: Mapping[str, str]) -> GatewayClient | None:
        """The client whose key these request headers carry; None: no known key."""
        presented = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if not presented and auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
        if not presented:
            return None
        return self.by_hash.get(key_hash(presented))


class Pacer:
    """Per-client requests and tokens per minute (GCRA with a minute's burst), in memory:
    one gateway process serves its clients, so no other process shares these buckets."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.now = now
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float, per_minute: int) -> float:
        """Book `cost` in `key`'s bucket; 0 when allowed, else seconds until it would be."""
        rate = per_minute / 60.0
        with self._lock:
            now = self.now()
            tat = max(self._tat.get(key, now), now)
            over = tat + cost / rate - now - 60.0
            if over > 1e-9:
                return over
            self._tat[key] = tat + cost / rate
            return 0.0

    def give_back(self, key: str, cost: float, per_minute: int) -> None:
        """Return an unused booking (a refused request, tokens not used)."""
        with self._lock:
            if key in self._tat:
                self._tat[key] -= cost / (per_minute / 60.0)

    def admit(self, client: GatewayClient, tokens: int) -> float:
        """Book one request and `tokens` for `client`; seconds to wait when over a limit."""
        if client.rpm:
            wait = self.take(f"{client.name}\x1frequests", 1, client.rpm)
            if wait:
                return wait
        if client.tpm:
            wait = self.take(f"{client.name}\x1ftokens", min(tokens, client.tpm), client.tpm)
            if wait:
                if client.rpm:
                    self.give_back(f"{client.name}\x1frequests", 1, client.rpm)
                return wait
        return 0.0

    def settle(self, client: GatewayClient, booked: int, used: int) -> None:
        if client.tpm and used != booked:
            self.give_back(f"{client.name}\x1ftokens", min(booked, client.tpm) - used, client.tpm)
