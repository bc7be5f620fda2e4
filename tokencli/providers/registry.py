"""Provider presets, the fields a `[providers.NAME]` table may set, and the
registry of wire protocols.

Importing this module is cheap: protocol modules (and httpx, torch) load only
when a provider is built for a call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..settings.schema import FieldSpec

if TYPE_CHECKING:
    from .base import Provider

# type → "module:Class". Built-ins register here the way a plugin would.
PROTOCOLS: dict[str, str] = {
    "openai": "tokencli.providers.openai:OpenAIProvider",
    "anthropic": "tokencli.providers.anthropic:AnthropicProvider",
    "gemini": "tokencli.providers.gemini:GeminiProvider",
    "mock": "tokencli.providers.mock:MockProvider",
    "ollama": "tokencli.providers.ollama:OllamaProvider",
    "transformers": "tokencli.providers.local:LocalProvider",
}


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


# ---------------------------------------------------------------- config fields


COMMON_FIELDS: dict[str, FieldSpec] = {
    "type": FieldSpec("str", "wire protocol: " + ", ".join(PROTOCOLS)),
    "base_url": FieldSpec("str", "API root, e.g. https://api.openai.com/v1 or a proxy"),
    "api_key_env": FieldSpec("str_list", "environment variable(s) holding the key"),
    "key_required": FieldSpec("bool", "refuse to call without a key"),
    "prices_from": FieldSpec("str", "genai-prices provider id used to price the models"),
    "self_hosted": FieldSpec("bool", "own hardware: zero cost unless hourly_cost is set"),
    "hourly_cost": FieldSpec("number", "cost per hour of call time (rented GPU, electricity)"),
    "currency": FieldSpec("str", "currency of hourly_cost and of this provider's bills"),
    "headers": FieldSpec("str_table", "extra HTTP headers"),
    "max_tokens_field": FieldSpec("str", "max_tokens or max_completion_tokens"),
    "default_max_tokens": FieldSpec("int", "max_tokens sent when --max-tokens is not given"),
    "stream_usage": FieldSpec("bool", "ask for usage in streams (stream_options)"),
    "connect_timeout": FieldSpec("number", "seconds to wait for a connection"),
    "read_timeout": FieldSpec("number", "seconds to wait between bytes of a response"),
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

# Settings that only one protocol understands.
TYPE_FIELDS: dict[str, dict[str, FieldSpec]] = {
    "mock": {
        "delay_ms": FieldSpec("int", "pause between streamed words, in milliseconds"),
    },
    "ollama": {
        "num_ctx": FieldSpec("int", "context window Ollama allocates (options.num_ctx)"),
        "keep_alive": FieldSpec("str", "how long Ollama keeps the model loaded, e.g. 5m or 1h"),
    },
    "transformers": {
        "device": FieldSpec("str", "auto (CUDA, then MPS, then CPU), cuda, cuda:N, mps or cpu"),
        "dtype": FieldSpec("str", "auto, bf16, fp16 or fp32"),
        "quantize": FieldSpec("str", "8bit or 4bit (bitsandbytes); unset: no quantization"),
        "trust_remote_code": FieldSpec(
            "bool", "run a model's own Python code (only if you trust it)"
        ),
    },
}


def load_protocol(type_: str) -> Callable[..., Provider]:
    target = PROTOCOLS.get(type_)
    if target is None:
        raise ConfigError(
            f"Unknown provider type {type_!r}.",
            f"Valid types: {', '.join(sorted(PROTOCOLS))}.",
        )
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: Callable[..., Provider] = getattr(module, class_name)
    return cls


def custom_provider(name: str, type_: str) -> ProviderConfig:
    """A provider the user defines with `type = ...`: key from NAME_API_KEY if set."""
    env = name.upper().replace("-", "_") + "_API_KEY"
    return ProviderConfig(name=name, type=type_, api_key_env=(env,), key_required=False)


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
    return replace(base, **common, options={**base.options, **options}, sources=merged_sources)
