"""Offline token counts and the input cost they imply (`count`, `run --dry-run`).

How a model's input is counted, best first:

- a provider type with its own tokenizer counts it (its `counter` in
  `providers.registry.TYPES`, loaded without the provider's network or model
  libraries): local models (`local:`) with the model's own tokenizer and chat
  template (`providers.local_tokens`), `mock:` models with the mock's
  tokenizer (exact, it is what it bills);
- OpenAI models, wherever they are served: their real encodings (o200k_base,
  cl100k_base) from the `bpe-openai` package, which ships them, so no download
  is needed, plus the chat format's fixed overhead as OpenAI documents it
  (3 tokens a message, 3 to prime the reply);
- anything else: `usage.estimate_tokens`, labelled as an estimate.

`--raw` counts the text alone, without chat framing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..calls.resolve import (
    ResolvedModel,
    RunOptions,
    build_request,
    resolve_model,
    resolve_price_as,
)
from ..calls.usage import COUNTED, ESTIMATED, Usage, estimate_tokens
from ..clock import SYSTEM_CLOCK
from ..errors import UsageError
from ..providers.base import ChatRequest, Message
from ..providers.registry import ProviderConfig, provider_type
from ..settings.loader import Settings
from .cost import Cost, price_call

OPENAI_TOKENIZER_HINT = "pip install 'tokencli[openai-tokenizer]'"


@dataclass(frozen=True)
class TokenCount:
    provider: str
    model: str
    input_tokens: int
    usage_source: str  # counted | estimated
    method: str  # how, in words
    cost: Cost
    notes: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class DryRun:
    """What `run` would send, and its counted input."""

    request: ChatRequest
    count: TokenCount
    alias: str | None = None


@dataclass
class _Counted:
    tokens: int
    method: str
    source: str = COUNTED
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- entry


def count_request(
    settings: Settings,
    resolved: ResolvedModel,
    request: ChatRequest,
    *,
    raw: bool = False,
    price_as: tuple[ProviderConfig, str] | None = None,
    when: datetime | None = None,
) -> TokenCount:
    """The input tokens `request` would cost on `resolved`, and their price."""
    provider = resolved.provider
    counted: _Counted | None = None
    counter = provider_type(provider.type).load_counter()
    if counter is not None:
        tally = counter(request, raw)
        counted = _Counted(tally.tokens, tally.method, tally.source, list(tally.notes))
    elif openai_encoding_name(request.model):
        counted = _count_openai(request, raw)
        if counted is None:
            counted = _estimate(request, raw)
            counted.notes.append(
                f"Exact counts for OpenAI models need the bpe-openai package: {OPENAI_TOKENIZER_HINT}."
            )
    if counted is None:
        counted = _estimate(request, raw)
    usage = Usage(input_tokens=counted.tokens, source=counted.source)
    cost = _input_cost(
        settings, provider, resolved.model, usage, when or SYSTEM_CLOCK.now(), price_as
    )
    return TokenCount(
        provider=provider.name,
        model=resolved.model,
        input_tokens=counted.tokens,
        usage_source=counted.source,
        method=counted.method,
        cost=cost,
        notes=tuple(counted.notes),
    )


def count_text(
    settings: Settings,
    model: str | None,
    text: str,
    *,
    system: str | None = None,
    raw: bool = False,
    when: datetime | None = None,
) -> TokenCount:
    """`tokencli count`: TEXT as one user message (or alone with `raw`)."""
    if not text.strip():
        raise UsageError("The text is empty.", "Pass TEXT as an argument or pipe it on stdin.")
    resolved = resolve_model(settings, model)
    request = ChatRequest(
        model=resolved.model, messages=(Message("user", text),), system=system, stream=False
    )
    return count_request(settings, resolved, request, raw=raw, when=when)


def dry_run(settings: Settings, opts: RunOptions, *, when: datetime | None = None) -> DryRun:
    """`run --dry-run`: the request `Engine.run` would send, counted and priced; no call."""
    if not opts.prompt.strip():
        raise UsageError("The prompt is empty.", "Pass a prompt argument or pipe text on stdin.")
    resolved = resolve_model(settings, opts.model)
    price_as = resolve_price_as(settings, resolved, opts.price_as)
    request = build_request(settings, resolved, opts)
    count = count_request(settings, resolved, request, price_as=price_as, when=when)
    return DryRun(request=request, count=count, alias=resolved.alias)


def _input_cost(
    settings: Settings,
    provider: ProviderConfig,
    model: str,
    usage: Usage,
    when: datetime,
    price_as: tuple[ProviderConfig, str] | None,
) -> Cost:
    if (
        price_as is None
        and provider.self_hosted
        and provider.hourly_cost is not None
        and f"{provider.name}:{model}" not in settings.prices
    ):
        return Cost(None, provider.currency, "hourly_cost: priced by call time, not by tokens")
    try:
        return price_call(settings, provider, model, usage, when=when, price_as=price_as)
    except Exception as exc:  # a broken price table must not break counting
        return Cost(None, None, f"unknown ({type(exc).__name__})")


# ------------------------------------------------------------------ estimate


def _texts(request: ChatRequest) -> list[str]:
    return ([request.system] if request.system else []) + [m.content for m in request.messages]


def _estimate(request: ChatRequest, raw: bool) -> _Counted:
    texts = [request.prompt_text] if raw else _texts(request)
    return _Counted(
        sum(estimate_tokens(t) for t in texts),
        "estimate (about 4 characters a token, 1 a CJK character)",
        ESTIMATED,
    )


# -------------------------------------------------------------------- OpenAI

# Model-name prefixes → encoding, longest first (tiktoken's model map).
_OPENAI_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),  # o200k_harmony: o200k_base plus chat-format tokens
    ("chatgpt-4o", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
_O_SERIES = re.compile(r"^o\d")


def openai_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (`openai/` prefixes allowed)."""
    name = model.lower().removeprefix("openai/")
    for prefix, encoding in _OPENAI_ENCODINGS:
        if name.startswith(prefix) and (not _O_SERIES.match(prefix) or _O_SERIES.match(name)):
            return encoding
    return None


def _count_openai(request: ChatRequest, raw: bool) -> _Counted | None:
    name = openai_encoding_name(request.model)
    if name is None:
        return None
    n = openai_counter(name)
    if n is None:
        return None
    if raw:
        return _Counted(n(request.prompt_text), f"{name} encoding")
    # OpenAI's documented chat overhead: <|start|>{role}\n{content}<|end|>\n
    # costs 3 tokens plus role and content; the reply is primed with 3 more.
    messages = [("system", request.system)] if request.system else []
    messages += [(m.role, m.content) for m in request.messages]
    total = sum(3 + n(role) + n(content) for role, content in messages) + 3
    return _Counted(total, f"{name} encoding, chat format")


@functools.cache
def openai_counter(name: str) -> Callable[[str], int] | None:
    """A token counter for an OpenAI encoding, loaded once per process (None: not installed).

    The bpe-openai package's Rust tokenizer, loaded on its own: importing the package
    itself decodes all three of its rank tables in Python first (over a second), which
    its tokenizer never needs. Its counts are the package's own (`len(encode(text))`).
    """
    backend = _bpe_backend()
    if backend is not None:
        tokenizer = backend.tokenizer_for_encoding(name)

        def count(text: str) -> int:
            return int(tokenizer.count(_utf8(text))) if text else 0

        return count
    try:
        import bpe_openai
    except ImportError:
        return None
    encoding = bpe_openai.get_encoding(name)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def _bpe_backend() -> Any:
    """bpe-openai's compiled module, without running the package's `__init__`."""
    import importlib.machinery
    import importlib.util
    import sys

    name = "bpe_openai._bindings"
    if name in sys.modules:
        return sys.modules[name]
    try:
        package = importlib.util.find_spec("bpe_openai")
    except (ImportError, ValueError):
        return None
    if package is None or not package.submodule_search_locations:
        return None
    for folder in package.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_bindings{suffix}"
            if path.is_file():
                try:
                    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
                    if spec is None:
                        return None
                    module = importlib.util.module_from_spec(spec)
                    loader.exec_module(module)
                except (ImportError, OSError):
                    return None
                sys.modules[name] = module
                return module
    return None


def _utf8(text: str) -> str:
    """Lone surrogates replaced, as bpe-openai's `encode` does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
