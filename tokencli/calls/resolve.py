"""From what a user asked for to what is sent: model references, aliases and
fallback chains, `--price-as`, and the request with the config's defaults.

`count`, `run --dry-run`, compare and the gateway resolve models the way a run
does without importing the engine (and its ledger, limiter and pricing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, UsageError
from ..providers.base import ChatRequest, Message
from ..providers.registry import ProviderConfig
from ..settings.loader import Settings


@dataclass(frozen=True)
class ResolvedModel:
    provider: ProviderConfig
    model: str
    alias: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.provider.name}:{self.model}"


@dataclass
class RunOptions:
    prompt: str
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = True
    project: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    price_as: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    # None: the provider's `cache` setting decides.
    cache: bool | None = None
    batch_id: str | None = None
    batch_item: str | None = None
    # Let the call through blocking budgets it could cross (the row records it).
    force: bool = False


def resolve_chain(settings: Settings, spec: str | None) -> list[ResolvedModel]:
    """`-m` value → the models to try in order (an alias may name a fallback chain)."""
    spec = (spec or settings.defaults.model or "").strip()
    if not spec:
        raise UsageError(
            "No model given.", "Pass -m PROVIDER:MODEL or set [defaults] model in the config."
        )
    if spec in settings.aliases:
        return [_resolve_ref(settings, target, alias=spec) for target in settings.aliases[spec]]
    return [_resolve_ref(settings, spec)]


def resolve_model(settings: Settings, spec: str | None) -> ResolvedModel:
    """`-m` value (alias or PROVIDER:MODEL) → the first model it names."""
    return resolve_chain(settings, spec)[0]


def build_request(settings: Settings, target: ResolvedModel, opts: RunOptions) -> ChatRequest:
    """The request a run sends: the options, with the config's defaults filled in."""
    defaults = settings.defaults
    return ChatRequest(
        model=target.model,
        messages=(Message("user", opts.prompt),),
        system=opts.system,
        max_tokens=opts.max_tokens if opts.max_tokens is not None else defaults.max_tokens,
        temperature=opts.temperature if opts.temperature is not None else defaults.temperature,
        stream=opts.stream,
    )


def resolve_price_as(
    settings: Settings, target: ResolvedModel, spec: str | None
) -> tuple[ProviderConfig, str] | None:
    """`--price-as PROVIDER:MODEL`: only mock and self-hosted calls may be priced as another model."""
    if not spec:
        return None
    if not target.provider.self_hosted:
        raise UsageError(
            f"--price-as only applies to mock and self-hosted providers, not {target.provider.name}.",
            f"{target.provider.name} calls are priced as what they are.",
        )
    other = resolve_model(settings, spec)
    return other.provider, other.model


def _resolve_ref(settings: Settings, spec: str, alias: str | None = None) -> ResolvedModel:
    provider_name, sep, model = spec.partition(":")
    if not sep or not model or not provider_name:
        known = ", ".join(sorted(settings.aliases)) or "none defined"
        raise ConfigError(
            f"Unknown model {spec!r}: not an alias and not PROVIDER:MODEL.",
            f"Write e.g. -m openai:gpt-4o-mini. Aliases: {known}.",
        )
    return ResolvedModel(settings.provider(provider_name), model, alias)
