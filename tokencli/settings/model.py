"""What the config file says, as typed values: one record per section and
`Settings` holding them all with where each value came from. The sections are
`Record`s (immutable, declared like dataclasses, cheap to define: every command
imports this module)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from decimal import Decimal

from ..errors import ConfigError
from ..providers.registry import ProviderConfig
from ..records import Record, field
from ..scope import Scope
from .paths import Paths

DEFAULT_MODEL = "mock:echo"
_PICO = Decimal(1).scaleb(-12)  # money is exact to the pico (see tokencli.money)


class Defaults(Record):
    """`[defaults]`: what a call uses when its flags do not say."""

    model: str = DEFAULT_MODEL
    project: str | None = None
    store_text: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    max_input_tokens: int | None = None
    # `compare` asks before a live comparison projected to cost more than this.
    compare_confirm_above: Decimal = Decimal("0.10")
    # IANA zone of budget periods' days, weeks and months (None: this machine's).
    timezone: str | None = None
    # The most seconds one call may take; a provider's own call_timeout wins.
    call_timeout: float = 600.0


class PriceOverride(Record):
    """Prices per million tokens from `[prices."PROVIDER:MODEL"]`."""

    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    currency: str
    source: str


class ModelSettings(Record):
    """`[models."PROVIDER:MODEL"]`: limits for one model, over its provider's."""

    rpm: int | None = None
    tpm: int | None = None
    max_input_tokens: int | None = None


class Currencies(Record):
    """`[currency]`: the currency reports are in, and rates into it."""

    report: str = "USD"
    # 1 unit of KEY = VALUE units of `report`.
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def convert(self, amount: Decimal, source: str | None, target: str) -> Decimal | None:
        """`amount` of `source` in `target`, through the report currency (to the pico);
        None when a rate is missing. An amount with no currency is taken as `target`'s."""
        if not amount or source in (None, "", target):
            return amount
        if source == self.report:
            in_report = amount
        elif source in self.rates:
            in_report = amount * self.rates[source]
        else:
            return None
        if target == self.report:
            return in_report.quantize(_PICO)
        rate = self.rates.get(target)
        return (in_report / rate).quantize(_PICO) if rate else None


class Budget(Record):
    """`[budgets.NAME]`: a limit in money (`amount` in `currency`) or in `tokens`, per
    calendar day, week or month, over the calls of a scope."""

    name: str
    amount: Decimal | None  # None: a token budget
    currency: str
    period: str  # day | week | month, in [defaults] timezone
    scope: Scope = field(default_factory=Scope)
    source: str = ""
    tokens: int | None = None  # a limit in tokens instead of money
    warn: tuple[int, ...] = (50, 80, 100)  # percent of the limit that alert
    block: bool = False  # refuse calls that could cross the limit (else warn only)
    allow_unpriced: bool = False  # let calls of models without a price through a money budget

    @property
    def in_tokens(self) -> bool:
        return self.tokens is not None


class AlertRules(Record):
    """The anomaly rules under `[alerts]`, and the circuit breaker's settings."""

    max_call_tokens: int = 5_000  # one call above this many tokens
    spike_factor: Decimal = Decimal(3)  # a day's spend above k × the trailing 14-day median
    max_zscore: Decimal = Decimal(3)  # a day's spend this many deviations above the mean
    min_history_days: int = 7  # before max_zscore speaks
    max_consecutive_failures: int = 5  # failures in a row from one provider (and the breaker)
    cooldown: int = 300  # seconds a provider is set aside once the breaker opens


class AlertChannel(Record):
    """One `[[alerts.channels]]` entry: where alerts go."""

    type: str  # stderr | desktop | webhook | command
    name: str  # `alerts test --channel NAME`; default: the type and its position
    url: str | None = None  # webhook
    format: str = "json"  # webhook: json | slack | discord | feishu | dingtalk | wecom | ntfy
    secret: str | None = None  # DingTalk and Feishu signing
    command: tuple[str, ...] = ()  # command: argv, run without a shell
    timeout: float = 5.0  # seconds per delivery
    allow_http: bool = False  # plain http to a non-loopback host
    source: str = ""


class AlertSettings(Record):
    """`[alerts]`: the rules and the channels (stderr alone when none is configured)."""

    rules: AlertRules = field(default_factory=AlertRules)
    channels: tuple[AlertChannel, ...] = ()


class GatewayClient(Record):
    """`[gateway.clients.NAME]`: one tool or person allowed through `tokencli serve`."""

    name: str
    key_env: str | None = None  # the key is read from this environment variable
    key_sha256: str | None = None  # or only its hash is in the file (`serve add-client`)
    project: str | None = None  # its calls are recorded under this project
    tags: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None  # recorded as the tag user=...
    models: tuple[str, ...] = ()  # the models it may use (empty: any)
    rpm: int | None = None
    tpm: int | None = None
    # budgets that count and cap only this client's calls (their scope gains tag client=NAME)
    budgets: tuple[str, ...] = ()
    source: str = ""


class GatewaySettings(Record):
    """`[gateway]`: bare model names mapped to tokencli models, the clients, limits."""

    models: Mapping[str, str] = field(default_factory=dict)
    clients: Mapping[str, GatewayClient] = field(default_factory=dict)
    max_body_mb: Decimal = Decimal(32)  # larger request bodies are refused with 413
    read_timeout: Decimal = Decimal(30)  # seconds for a request's headers, then its body (408)
    # Open connections (idle keep-alive ones included) served at once; past it uvicorn answers
    # 503, which SDKs retry, so a flood cannot exhaust file descriptors or memory.
    max_connections: int = 1000


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
    alerts: AlertSettings
    # dotted key → where its value came from, for `config show`.
    sources: dict[str, str]
    config_exists: bool
    gateway: GatewaySettings = dataclass_field(default_factory=GatewaySettings)

    def provider(self, name: str) -> ProviderConfig:
        found = self.providers.get(name)
        if found is None:
            raise ConfigError(
                f"Unknown provider {name!r}.",
                f"Known providers: {', '.join(sorted(self.providers))}. "
                f"Define others in {self.paths.config} with [providers.{name}] and a type.",
            )
        return found
