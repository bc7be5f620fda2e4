"""What the config file says, as typed values: one dataclass per section and
`Settings` holding them all with where each value came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import ConfigError
from ..providers.registry import ProviderConfig
from ..scope import Scope
from .paths import Paths

DEFAULT_MODEL = "mock:echo"


@dataclass(frozen=True)
class Defaults:
    """`[defaults]`: what a call uses when its flags do not say."""

    model: str = DEFAULT_MODEL
    project: str | None = None
    store_text: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    max_input_tokens: int | None = None
    # `compare` asks before a live comparison projected to cost more than this.
    compare_confirm_above: Decimal = Decimal("0.10")


@dataclass(frozen=True)
class PriceOverride:
    """Prices per million tokens from `[prices."PROVIDER:MODEL"]`."""

    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    currency: str
    source: str


@dataclass(frozen=True)
class ModelSettings:
    """`[models."PROVIDER:MODEL"]`: limits for one model, over its provider's."""

    rpm: int | None = None
    tpm: int | None = None
    max_input_tokens: int | None = None


@dataclass(frozen=True)
class Currencies:
    """`[currency]`: the currency reports are in, and rates into it."""

    report: str = "USD"
    # 1 unit of KEY = VALUE units of `report`.
    rates: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """`[budgets.NAME]`: a spending limit per day, week or month, over the calls of a scope."""

    name: str
    amount: Decimal
    currency: str
    period: str  # day | week | month (local, like reports)
    scope: Scope = field(default_factory=Scope)
    source: str = ""


@dataclass
class Settings:
    paths: Paths
    env: Mapping[str, str]
    defaults: Defaults
    aliases: dict[str, tuple[str, ...]]
    providers: dict[str, ProviderConfig]
    prices: dict[str, PriceOverride]
    models: dict[str, ModelSettings]
    currencies: Currencies
    budgets: dict[str, Budget]
    # dotted key → where its value came from, for `config show`.
    sources: dict[str, str]
    config_exists: bool

    def provider(self, name: str) -> ProviderConfig:
        found = self.providers.get(name)
        if found is None:
            raise ConfigError(
                f"Unknown provider {name!r}.",
                f"Known providers: {', '.join(sorted(self.providers))}. "
                f"Define others in {self.paths.config} with [providers.{name}] and a type.",
            )
        return found
