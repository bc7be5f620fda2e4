"""Provider presets, the provider types (wire protocols) and the fields a
`[providers.NAME]` table may set.

Importing this module is cheap: each type names its provider class and its
offline token counter as "module:attribute", loaded only when a call (or a
count) needs them, so httpx and torch stay off paths that do not call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError
from ..settings.schema import FieldSpec

if TYPE_CHECKING:
    from .base import Provider, TokenCounter

_V = TypeVar("_V")


@dataclass(frozen=True)
class ProviderConfig:
    """Everything tokencli needs to talk to one provider and price its calls."""

    name: str
    type: str
    base_url: str | None = None
    # Environment variables holding the key, tried in order; empty: no key.
    api_key_env: tuple[str, ...] = ()
    key_required: bool = True
    # genai-prices provider id used to price this provider's models; None: no table.
    prices_from: str | None = None
    # Own hardware (ollama, vllm, local, mock): zero cost unless hourly_cost is set.
    self_hosted: bool = False
    hourly_cost: Decimal | None = None
    currency: str = "USD"
    headers: Mapping[str, str] = field(default_factory=dict)
    # OpenAI's own API wants max_completion_tokens; compatible servers want max_tokens.
    max_tokens_field: str = "max_tokens"
    default_max_tokens: int | None = None
    # Ask for usage in streams (stream_options.include_usage).
    stream_usage: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    # The most seconds one call may take, connect and every read together.
    call_timeout: float = 600.0
    allow_http: bool = False
    # Retries of 429s, 5xx, overloads and connection errors (never of billing errors).
    max_retries: int = 2
    retry_max_wait: float = 60.0
    retry_backoff: float = 0.5
    # Client-side limits shared by every tokencli process, per model.
    rpm: int | None = None
    tpm: int | None = None
    # Answer identical requests from the ledger (opt-in), for cache_ttl seconds.
    cache: bool = False
    cache_ttl: float | None = None
    max_input_tokens: int | None = None
    # Type-specific settings (mock's delay_ms, a local model's device ...).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Where each explicitly set field came from ("preset", "config.toml:12").
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.name in PRESETS


def _remote(
    name: str, type_: str, base_url: str, env: str | tuple[str, ...], **kw: Any
) -> ProviderConfig:
    envs = (env,) if isinstance(env, str) else env
    return ProviderConfig(name=name, type=type_, base_url=base_url, api_key_env=envs, **kw)


PRESETS: dict[str, ProviderConfig] = {
    p.name: p
    for p in [
        _remote(
            "openai",
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            prices_from="openai",
            max_tokens_field="max_completion_tokens",
        ),
        _remote(
            "anthropic",
            "anthropic",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            prices_from="anthropic",
            default_max_tokens=4096,
        ),
        _remote(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            prices_from="google",
        ),
        _remote(
            "deepseek",
            "openai",
            "https://api.deepseek.com",
            "DEEPSEEK_API_KEY",
            prices_from="deepseek",
        ),
        _remote(
            "qwen",
            "openai",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "DASHSCOPE_API_KEY",
            currency="CNY",
        ),
        _remote(
            "moonshot",
            "openai",
            "https://api.moonshot.ai/v1",
            "MOONSHOT_API_KEY",
            prices_from="moonshotai",
        ),
        _remote(
            "zhipu",
            "openai",
            "https://open.bigmodel.cn/api/paas/v4",
            "ZHIPUAI_API_KEY",
            prices_from="zhipuai",
            currency="CNY",
        ),
        _remote(
            "siliconflow",
            "openai",
            "https://api.siliconflow.cn/v1",
            "SILICONFLOW_API_KEY",
            currency="CNY",
        ),
        _remote(
            "openrouter",
            "openai",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            prices_from="openrouter",
        ),
        # Ollama's native API (/api/chat): its own counts and durations. Its
        # OpenAI-compatible /v1 still works through a provider of type "openai".
        _remote(
            "ollama",
            "ollama",
            "http://localhost:11434",
            "OLLAMA_API_KEY",
            key_required=False,
            self_hosted=True,
            allow_http=True,
        ),
        _remote(
            "vllm",
            "openai",
            "http://localhost:8000/v1",
            "VLLM_API_KEY",
            key_required=False,
            self_hosted=True,
            allow_http=True,
        ),
        # A Hugging Face model run in this process (the `local` extra): -m local:MODEL
        # where MODEL is a hub id, a folder or a .gguf file.
        ProviderConfig(name="local", type="transformers", key_required=False, self_hosted=True),
        ProviderConfig(name="mock", type="mock", key_required=False, self_hosted=True),
    ]
}


# ------------------------------------------------- provider types and config fields


@dataclass(frozen=True)
class ProviderType:
    """One wire protocol (or in-process backend): what it is called, the
    settings only it understands, and where its code lives."""

    name: str
    # "module:Class" of the provider, imported when a provider is built for a call.
    provider: str
    # Settings only this type understands; they land in ProviderConfig.options.
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    # "module:function" counting a request offline with the type's own tokenizer
    # (a TokenCounter); None: counted by the model's name (see pricing.counting).
    counter: str | None = None

    def load(self) -> Callable[..., Provider]:
        cls: Callable[..., Provider] = _attribute(self.provider)
        return cls

    def load_counter(self) -> TokenCounter | None:
        if self.counter is None:
            return None
        counter: TokenCounter = _attribute(self.counter)
        return counter


def _attribute(target: str) -> Any:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


# Built-ins register here the way a plugin would.
TYPES: dict[str, ProviderType] = {
    t.name: t
    for t in [
        ProviderType("openai", "tokencli.providers.openai:OpenAIProvider"),
        ProviderType("anthropic", "tokencli.providers.anthropic:AnthropicProvider"),
        ProviderType("gemini", "tokencli.providers.gemini:GeminiProvider"),
        ProviderType(
            "mock",
            "tokencli.providers.mock:MockProvider",
            fields={"delay_ms": FieldSpec("int", "pause between streamed words, in milliseconds")},
            counter="tokencli.providers.mock:count_request",
        ),
        ProviderType(
            "ollama",
            "tokencli.providers.ollama:OllamaProvider",
            fields={
                "num_ctx": FieldSpec("int", "context window Ollama allocates (options.num_ctx)"),
                "keep_alive": FieldSpec(
                    "str", "how long Ollama keeps the model loaded, e.g. 5m or 1h"
                ),
            },
        ),
        ProviderType(
            "transformers",
            "tokencli.providers.local:LocalProvider",
            fields={
                "device": FieldSpec(
                    "str", "auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu"
                ),
                "dtype": FieldSpec("str", "auto, bf16, fp16 or fp32"),
                "quantize": FieldSpec("str", "8bit or 4bit (bitsandbytes); unset: no quantization"),
                "trust_remote_code": FieldSpec(
                    "bool", "run a model's own Python code (only if you trust it)"
                ),
            },
            counter="tokencli.providers.local_tokens:count_request",
        ),
    ]
}


class _TypesView(Mapping[str, _V]):
    """A live, read-only view of one attribute of every type in TYPES."""

    def __init__(self, pick: Callable[[ProviderType], _V]) -> None:
        self._pick = pick

    def __getitem__(self, type_: str) -> _V:
        return self._pick(TYPES[type_])

    def __iter__(self) -> Iterator[str]:
        return iter(TYPES)

    def __len__(self) -> int:
        return len(TYPES)


# For code that only needs names: type → "module:Class", type → its own fields.
PROTOCOLS: Mapping[str, str] = _TypesView(lambda t: t.provider)
TYPE_FIELDS: Mapping[str, Mapping[str, FieldSpec]] = _TypesView(lambda t: t.fields)


def provider_type(type_: str) -> ProviderType:
    found = TYPES.get(type_)
    if found is None:
        raise ConfigError(
            f"Unknown provider type {type_!r}.",
            f"Valid types: {', '.join(sorted(TYPES))}.",
        )
    return found


COMMON_FIELDS: dict[str, FieldSpec] = {
    "type": FieldSpec("str", "wire protocol: " + ", ".join(TYPES)),
    "base_url": FieldSpec("str", "API root, e.g. https://api.openai.com/v1 or a proxy"),
    "api_key_env": FieldSpec("str_list", "environment variable(s) holding the key"),
    "key_required": FieldSpec("bool", "refuse to call without a key"),
    "prices_from": FieldSpec("str", "genai-prices provider id used to price the models"),
    "self_hosted": FieldSpec("bool", "own hardware: zero cost unless hourly_cost is set"),
    "hourly_cost": FieldSpec("number", "cost per hour of call time (rented GPU, electricity)"),
    "currency": FieldSpec(
        "str", "currency of this provider's bills and hourly_cost; CNY: the bundled yuan list"
    ),
    "headers": FieldSpec("str_table", "extra HTTP headers"),
    "max_tokens_field": FieldSpec("str", "max_tokens or max_completion_tokens"),
    "default_max_tokens": FieldSpec("int", "max_tokens sent when --max-tokens is not given"),
    "stream_usage": FieldSpec("bool", "ask for usage in streams (stream_options)"),
    "connect_timeout": FieldSpec("number", "seconds to wait for a connection"),
    "read_timeout": FieldSpec("number", "seconds to wait between bytes of a response"),
    "call_timeout": FieldSpec(
        "number", "most seconds one call may take, all reads together (default: [defaults])"
    ),
    "allow_http": FieldSpec("bool", "allow plain http to a non-loopback host"),
    "max_retries": FieldSpec("int", "retries of rate limits, overloads, 5xx and network errors"),
    "retry_max_wait": FieldSpec("number", "most seconds spent waiting between retries of one call"),
    "retry_backoff": FieldSpec("number", "first backoff in seconds (doubles, up to 8 s)"),
    "rpm": FieldSpec("int", "requests per minute per model, shared by all tokencli processes"),
    "tpm": FieldSpec("int", "tokens per minute per model, shared by all tokencli processes"),
    "cache": FieldSpec("bool", "answer identical requests from the ledger"),
    "cache_ttl": FieldSpec("number", "seconds a cached answer stays usable (default: forever)"),
    "max_input_tokens": FieldSpec("int", "refuse prompts larger than this before sending"),
}


def fields_of(type_: str) -> dict[str, FieldSpec]:
    """Every setting a `[providers.NAME]` table of this type may hold."""
    return {**COMMON_FIELDS, **provider_type(type_).fields}


def load_protocol(type_: str) -> Callable[..., Provider]:
    return provider_type(type_).load()


def custom_provider(name: str, type_: str) -> ProviderConfig:
    """A provider the user defines with `type = ...`: key from NAME_API_KEY if set."""
    env = name.upper().replace("-", "_") + "_API_KEY"
    return ProviderConfig(name=name, type=type_, api_key_env=(env,), key_required=False)


# Hosts whose platform bills in one currency: a provider pointed at one, without a
# `currency` of its own, bills in it (mainland China in yuan, the international
# platforms in dollars). api.deepseek.com serves both kinds of account: not here.
CURRENCY_BY_HOST = {
    "dashscope.aliyuncs.com": "CNY",
    "dashscope-intl.aliyuncs.com": "USD",
    "dashscope-us.aliyuncs.com": "USD",
    "api.siliconflow.cn": "CNY",
    "api.siliconflow.com": "USD",
    "open.bigmodel.cn": "CNY",
    "api.z.ai": "USD",
    "api.moonshot.cn": "CNY",
    "api.moonshot.ai": "USD",
}


def host_currency(base_url: str | None) -> str | None:
    from urllib.parse import urlsplit

    return CURRENCY_BY_HOST.get(urlsplit(base_url).hostname or "") if base_url else None


def with_overrides(
    base: ProviderConfig, values: Mapping[str, Any], sources: Mapping[str, str]
) -> ProviderConfig:
    """A preset with the user's `[providers.NAME]` values laid over it."""
    common = {k: v for k, v in values.items() if k in COMMON_FIELDS}
    options = {k: v for k, v in values.items() if k not in COMMON_FIELDS}
    if "api_key_env" in common:
        common["api_key_env"] = tuple(common["api_key_env"])
    if "headers" in common:
        common["headers"] = dict(common["headers"])
    merged_sources = {**base.sources, **sources}
    by_host = host_currency(common.get("base_url"))
    if "currency" not in common and by_host and by_host != base.currency:
        common["currency"] = by_host
        merged_sources["currency"] = f"the host in base_url ({sources.get('base_url', '?')})"
    return replace(base, **common, options={**base.options, **options}, sources=merged_sources)
