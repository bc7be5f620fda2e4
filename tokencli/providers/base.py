"""The Provider protocol: a request goes in, a stream of events comes out.

A provider yields events as they happen, so whatever arrived before an
interruption (Ctrl-C, a cut stream) is still in the caller's hands:

- `ResponseStarted` once the provider accepted the request (headers read);
- `TextDelta` for each piece of the answer;
- `UsageUpdate` with the *cumulative* normalized usage so far (keep the last);
- `Finished` when the provider said the answer is complete.

Failures are raised as `ProviderError`s; see `providers.http.classify`.

What a provider can do beyond that is declared by the small capability
protocols at the end (`ValidatesRequests`, `CountsTokens`, `ReportsBalance`,
`ListsModels`): callers ask `isinstance(provider, CountsTokens)`, never
`getattr`. Counting without building a provider (`tokencli count`, which must
not import httpx) goes through the type's `counter` in `registry.TYPES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple, Protocol, runtime_checkable

from ..calls.usage import COUNTED, Usage
from .registry import ProviderConfig

# Normalized finish reasons; providers map theirs onto these.
STOP = "stop"
LENGTH = "length"
CONTENT_FILTER = "content_filter"


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = True
    stop: tuple[str, ...] = ()  # stop sequences (the gateway's translated requests)

    @property
    def prompt_text(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "user")


@dataclass(frozen=True)
class ResponseStarted:
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class UsageUpdate:
    usage: Usage
    # What the provider says it charged (OpenRouter's `cost`), when it says so.
    provider_cost: Decimal | None = None
    provider_cost_currency: str | None = None


@dataclass(frozen=True)
class Finished:
    finish_reason: str | None = None
    raw_finish_reason: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    # Anything else worth keeping on the ledger row (device, dtype, durations).
    extra: Mapping[str, object] = field(default_factory=dict)


Event = ResponseStarted | TextDelta | UsageUpdate | Finished


@runtime_checkable
class Provider(Protocol):
    config: ProviderConfig

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        """Send the request and yield its events. Raises ProviderError."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- capabilities


class TokenTally(NamedTuple):
    """The input tokens a request would cost, and how they were counted."""

    tokens: int
    method: str  # in words: "the mock provider's tokenizer"
    source: str = COUNTED  # counted | estimated
    notes: tuple[str, ...] = ()


class TokenCounter(Protocol):
    """Counts a request offline (`raw`: the prompt text alone, no chat framing)."""

    def __call__(self, request: ChatRequest, raw: bool) -> TokenTally: ...


class Balance(NamedTuple):
    """What is left on an account, as the provider reports it."""

    amount: Decimal
    currency: str
    # Granted (free) credit included in amount, when the provider says so.
    granted: Decimal | None = None


@runtime_checkable
class ValidatesRequests(Protocol):
    """Refuses a request it cannot serve before the call is recorded."""

    def validate(self, request: ChatRequest) -> None:
        """Raise ConfigError (or ProviderError) for a request that would fail."""
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """Counts a request's input tokens: an offline tokenizer or a count endpoint."""

    def count_tokens(self, request: ChatRequest, *, raw: bool = False) -> TokenTally: ...


@runtime_checkable
class ReportsBalance(Protocol):
    """Reports the account's remaining credit."""

    def balance(self) -> Balance: ...


@runtime_checkable
class ListsModels(Protocol):
    """Names the models it can answer with (without the provider prefix)."""

    def list_models(self) -> list[str]: ...
