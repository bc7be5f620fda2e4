"""One parser per config section, registered in `SECTIONS`.

A parser takes the section's raw TOML value (`{}` when the file has none) and
returns the typed value a `Settings` field holds, recording where each value
came from in `reader.sources`. A section that needs another (aliases name
providers, budgets default to the report currency) asks `reader.section(...)`,
which parses that one first. Adding a section is one parser, one line in
`SECTIONS` and one field on `Settings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ..providers.registry import (
    PRESETS,
    PROTOCOLS,
    ProviderConfig,
    custom_provider,
    fields_of,
    with_overrides,
)
from ..scope import Scope
from .model import (
    DEFAULT_MODEL,
    AlertChannel,
    AlertRules,
    AlertSettings,
    Budget,
    Currencies,
    Defaults,
    GatewayClient,
    GatewaySettings,
    ModelSettings,
    PriceOverride,
)
from .schema import Checker, FieldSpec


class Reader:
    """One config document being read: its checker, the sections parsed so far
    and where each value came from."""

    def __init__(self, check: Checker, doc: Mapping[str, Any]) -> None:
        self.check = check
        self.doc = doc
        # dotted key → "config.toml:12", for `config show`.
        self.sources: dict[str, str] = {}
        self._parsed: dict[str, Any] = {}

    def refuse_unknown_sections(self) -> None:
        for name in self.doc:
            if name not in _BY_NAME:
                raise self.check.fail(
                    (name,), "is not a known section", f"Known sections: {', '.join(_BY_NAME)}."
                )

    def section(self, name: str) -> Any:
        """The typed value of section `name`, parsed on first use."""
        if name not in self._parsed:
            self._parsed[name] = _BY_NAME[name].parse(self, self.doc.get(name, {}))
        return self._parsed[name]


@dataclass(frozen=True)
class Section:
    name: str  # the TOML table, e.g. "currency"
    attribute: str  # the `Settings` field it fills, e.g. "currencies"
    parse: Callable[[Reader, Any], Any]


# ------------------------------------------------------------------- [defaults]

DEFAULTS_FIELDS: dict[str, FieldSpec] = {
    "model": FieldSpec("str", "model or alias used when -m is not given"),
    "project": FieldSpec("str", "project recorded when -p is not given"),
    "store_text": FieldSpec("bool", "keep prompt and response text in the ledger"),
    "max_tokens": FieldSpec("int", "default --max-tokens"),
    "temperature": FieldSpec("number", "default --temperature"),
    "max_input_tokens": FieldSpec("int", "refuse prompts larger than this before sending"),
    "compare_confirm_above": FieldSpec(
        "number", "compare asks before live runs projected to cost more than this"
    ),
    "timezone": FieldSpec("str", "IANA zone of budget days, weeks and months (default: local)"),
    "call_timeout": FieldSpec(
        "number", "most seconds one call may take, all reads together (default 600)"
    ),
}


def parse_defaults(reader: Reader, raw: Any) -> Defaults:
    check = reader.check
    values, found = check.fields(("defaults",), check.table(("defaults",), raw), DEFAULTS_FIELDS)
    reader.sources.update({f"defaults.{k}": v for k, v in found.items()})
    return Defaults(
        model=values.get("model", DEFAULT_MODEL),
        project=values.get("project") or None,
        store_text=values.get("store_text", True),
        max_tokens=values.get("max_tokens"),
        temperature=float(values["temperature"]) if "temperature" in values else None,
        max_input_tokens=values.get("max_input_tokens"),
        compare_confirm_above=values.get("compare_confirm_above", Defaults.compare_confirm_above),
        timezone=_timezone(reader, values.get("timezone")),
        call_timeout=_call_timeout(reader, ("defaults",), values, Defaults.call_timeout),
    )


def _call_timeout(reader: Reader, key_path: tuple[str, ...], values: Any, default: float) -> float:
    """A call_timeout: finite seconds, more than 0 and at most a day."""
    if "call_timeout" not in values:
        return default
    seconds = float(values["call_timeout"])
    if not 0 < seconds <= 86_400:  # also refuses nan
        raise reader.check.fail(
            (*key_path, "call_timeout"),
            "must be more than 0 and at most 86400 seconds",
            "e.g. call_timeout = 600",
        )
    return seconds


def _timezone(reader: Reader, name: str | None) -> str | None:
    if not name:
        return None
    from ..errors import UsageError
    from ..window import zone

    try:
        zone(name)
    except UsageError:
        raise reader.check.fail(
            ("defaults", "timezone"),
            f"is not a known time zone: {name!r}",
            "Use an IANA name like Europe/Berlin, Asia/Shanghai or UTC.",
        ) from None
    return name


# ------------------------------------------------------------ [providers.NAME]

_SECONDS = ("connect_timeout", "read_timeout", "retry_max_wait", "retry_backoff", "cache_ttl")


def parse_providers(reader: Reader, raw: Any) -> dict[str, ProviderConfig]:
    """The presets, with each `[providers.NAME]` laid over its preset or defining a new one."""
    check = reader.check
    # Every provider's call_timeout is [defaults]' unless its own table sets one.
    default_timeout = reader.section("defaults").call_timeout
    providers = {
        name: replace(preset, call_timeout=default_timeout) for name, preset in PRESETS.items()
    }
    for name, table in check.table(("providers",), raw).items():
        key_path = ("providers", name)
        table = check.table(key_path, table)
        base = PRESETS.get(name)
        type_ = table.get("type", base.type if base else None)
        if type_ is None:
            raise check.fail(
                key_path,
                "is not a built-in provider and has no type",
                f'Add type = "openai" (or one of {", ".join(sorted(PROTOCOLS))}).',
            )
        type_ = check.value((*key_path, "type"), type_, "str")
        if type_ not in PROTOCOLS:
            raise check.fail(
                (*key_path, "type"),
                f"names an unknown type {type_!r}",
                f"Valid types: {', '.join(sorted(PROTOCOLS))}.",
            )
        if base is None:
            base = replace(custom_provider(name, type_), call_timeout=default_timeout)
        else:
            base = replace(base, call_timeout=default_timeout)
        if type_ != base.type:
            # A preset spoken through another protocol keeps its key variable and pricing.
            base = replace(base, type=type_)
        specs = fields_of(type_)
        values, found = check.fields(key_path, table, specs)
        if "currency" in values:
            values["currency"] = check.currency((*key_path, "currency"), values["currency"])
        if "max_tokens_field" in values and values["max_tokens_field"] not in (
            "max_tokens",
            "max_completion_tokens",
        ):
            raise check.fail(
                (*key_path, "max_tokens_field"), "must be max_tokens or max_completion_tokens"
            )
        for seconds in _SECONDS:
            if seconds in values:
                values[seconds] = float(values[seconds])
        if "call_timeout" in values:
            values["call_timeout"] = _call_timeout(reader, key_path, values, default_timeout)
        if "base_url" in values:
            values["base_url"] = check.base_url((*key_path, "base_url"), values["base_url"])
        providers[name] = with_overrides(base, values, found)
        reader.sources.update({f"providers.{name}.{k}": v for k, v in found.items()})
    return providers


# -------------------------------------------------------------------- [aliases]


def parse_aliases(reader: Reader, raw: Any) -> dict[str, tuple[str, ...]]:
    check = reader.check
    providers: dict[str, ProviderConfig] = reader.section("providers")
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in check.table(("aliases",), raw).items():
        key_path = ("aliases", alias)
        targets = check.value(key_path, target, "str_list")
        if not targets:
            raise check.fail(key_path, "is empty", 'Write alias = "PROVIDER:MODEL".')
        for t in targets:
            if ":" not in t:
                raise check.fail(
                    key_path,
                    f"must name PROVIDER:MODEL, not {t!r}",
                    'e.g. fast = "deepseek:deepseek-chat".',
                )
            if t.partition(":")[0] not in providers:
                raise check.fail(
                    key_path,
                    f"names an unknown provider in {t!r}",
                    f"Known providers: {', '.join(sorted(providers))}.",
                )
        aliases[alias] = tuple(targets)
        reader.sources[f"aliases.{alias}"] = check.where(key_path)
    return aliases


# ---------------------------------------------------- [models."PROVIDER:MODEL"]

MODEL_FIELDS: dict[str, FieldSpec] = {
    "rpm": FieldSpec("int", "requests per minute"),
    "tpm": FieldSpec("int", "tokens per minute"),
    "max_input_tokens": FieldSpec("int", "refuse prompts larger than this before sending"),
}


def parse_models(reader: Reader, raw: Any) -> dict[str, ModelSettings]:
    check = reader.check
    providers: dict[str, ProviderConfig] = reader.section("providers")
    models: dict[str, ModelSettings] = {}
    for ref, table in check.table(("models",), raw).items():
        key_path = ("models", ref)
        table = check.table(key_path, table)
        if ":" not in ref or ref.partition(":")[0] not in providers:
            raise check.fail(
                key_path,
                "must be named PROVIDER:MODEL with a known provider",
                'e.g. [models."openai:gpt-4o"].',
            )
        values, found = check.fields(key_path, table, MODEL_FIELDS)
        models[ref] = ModelSettings(**values)
        reader.sources.update({f"models.{ref}.{k}": v for k, v in found.items()})
    return models


# ---------------------------------------------------- [prices."PROVIDER:MODEL"]

PRICE_FIELDS: dict[str, FieldSpec] = {
    "input": FieldSpec("number", "per 1M input tokens"),
    "output": FieldSpec("number", "per 1M output tokens"),
    "cached_input": FieldSpec("number", "per 1M input tokens read from a cache"),
    "cache_write": FieldSpec("number", "per 1M input tokens written to a cache"),
    "currency": FieldSpec("str", "ISO currency code, e.g. USD or CNY"),
}


def parse_prices(reader: Reader, raw: Any) -> dict[str, PriceOverride]:
    check = reader.check
    prices: dict[str, PriceOverride] = {}
    for ref, table in check.table(("prices",), raw).items():
        key_path = ("prices", ref)
        table = check.table(key_path, table)
        if ":" not in ref:
            raise check.fail(
                key_path, "must be named PROVIDER:MODEL", 'e.g. [prices."qwen:qwen-max"].'
            )
        values, _ = check.fields(key_path, table, PRICE_FIELDS)
        if not any(k in values for k in ("input", "output")):
            raise check.fail(
                key_path, "sets no price", "Give at least input and output (per 1M tokens)."
            )
        prices[ref] = PriceOverride(
            input=values.get("input"),
            output=values.get("output"),
            cached_input=values.get("cached_input"),
            cache_write=values.get("cache_write"),
            currency=check.currency((*key_path, "currency"), values.get("currency", "USD")),
            source=f"config {check.where(key_path)}",
        )
        reader.sources[f"prices.{ref}"] = check.where(key_path)
    return prices


# ------------------------------------------------------------------- [currency]


def parse_currency(reader: Reader, raw: Any) -> Currencies:
    check = reader.check
    report = "USD"
    rates: dict[str, Decimal] = {}
    for key, value in check.table(("currency",), raw).items():
        if key == "report":
            report = check.currency(("currency", key), check.value(("currency", key), value, "str"))
            reader.sources["currency.report"] = check.where(("currency", key))
        elif key == "rates":
            for code, rate in check.table(("currency", "rates"), value).items():
                rate_path = ("currency", "rates", code)
                amount = check.value(rate_path, rate, "number")
                if amount <= 0:
                    raise check.fail(rate_path, "must be greater than 0")
                rates[check.currency(rate_path, code)] = amount
                reader.sources[f"currency.rates.{code}"] = check.where(rate_path)
        else:
            raise check.fail(
                ("currency", key), "is not a known setting", "Known settings here: rates, report."
            )
    return Currencies(report=report, rates=rates)


# -------------------------------------------------------------- [budgets.NAME]

BUDGET_FIELDS: dict[str, FieldSpec] = {
    "amount": FieldSpec("number", "the limit in money, in `currency`"),
    "tokens": FieldSpec("int", "the limit in tokens (instead of amount)"),
    "currency": FieldSpec("str", "currency of amount (default: [currency] report)"),
    "period": FieldSpec("str", "day, week (Monday first) or month, in [defaults] timezone"),
    "provider": FieldSpec("str", "only calls to this provider"),
    "model": FieldSpec("str", "only calls to this model"),
    "project": FieldSpec("str", "only calls of this project"),
    "tag": FieldSpec("str_list", "only calls with these KEY=VALUE tags"),
    "warn": FieldSpec("int_list", "percentages of the limit that alert (default [50, 80, 100])"),
    "block": FieldSpec("bool", "refuse calls that could cross the limit (default: warn only)"),
    "allow_unpriced": FieldSpec("bool", "let calls of models without a known price through"),
}
BUDGET_PERIODS = ("day", "week", "month")


def parse_budgets(reader: Reader, raw: Any) -> dict[str, Budget]:
    check = reader.check
    currencies: Currencies = reader.section("currency")
    providers: dict[str, ProviderConfig] = reader.section("providers")
    budgets: dict[str, Budget] = {}
    for name, table in check.table(("budgets",), raw).items():
        key_path = ("budgets", name)
        values, found = check.fields(key_path, check.table(key_path, table), BUDGET_FIELDS)
        if ("amount" in values) == ("tokens" in values):
            raise check.fail(
                key_path,
                "needs either amount (money) or tokens, not both"
                if "amount" in values
                else "has no limit",
                "e.g. amount = 50 (in currency) or tokens = 2_000_000.",
            )
        limit_key = "amount" if "amount" in values else "tokens"
        if values[limit_key] <= 0:
            raise check.fail((*key_path, limit_key), "must be greater than 0")
        period = values.get("period", "month")
        if period not in BUDGET_PERIODS:
            raise check.fail(
                (*key_path, "period"),
                f"must be day, week or month, not {period!r}",
            )
        tags: list[tuple[str, str]] = []
        for text in values.get("tag", []):
            key, sep, value = text.partition("=")
            if not sep or not key.strip():
                raise check.fail((*key_path, "tag"), f"must be KEY=VALUE, not {text!r}")
            tags.append((key.strip(), value.strip()))
        if values.get("provider") and values["provider"] not in providers:
            raise check.fail(
                (*key_path, "provider"),
                f"names an unknown provider {values['provider']!r}",
                f"Known providers: {', '.join(sorted(providers))}.",
            )
        warn = tuple(sorted(set(values.get("warn", [50, 80, 100]))))
        if any(not 0 < w <= 1000 for w in warn):
            raise check.fail((*key_path, "warn"), "must hold percentages between 1 and 1000")
        currency = check.currency(
            (*key_path, "currency"), values.get("currency", currencies.report)
        )
        if (
            "amount" in values
            and currency != currencies.report
            and currency not in currencies.rates
        ):
            raise check.fail(
                (*key_path, "currency"),
                f"is {currency}, which has no rate into {currencies.report}",
                f"Add it under [currency] rates, e.g. rates = {{ {currency} = 0.14 }}.",
            )
        budgets[name] = Budget(
            name=name,
            amount=values.get("amount"),
            currency=currency,
            period=period,
            scope=Scope(
                provider=values.get("provider"),
                model=values.get("model"),
                project=values.get("project"),
                tags=tuple(tags),
            ),
            source=check.where(key_path),
            tokens=values.get("tokens"),
            warn=warn,
            block=values.get("block", False),
            allow_unpriced=values.get("allow_unpriced", False),
        )
        reader.sources.update({f"budgets.{name}.{k}": v for k, v in found.items()})
    return budgets


# ---------------------------------------------------------------------- [alerts]

ALERT_RULE_FIELDS: dict[str, FieldSpec] = {
    "max_call_tokens": FieldSpec("int", "alert when one call uses more tokens (default 5,000)"),
    "spike_factor": FieldSpec("number", "a day above k × the 14-day median spend (default 3)"),
    "max_zscore": FieldSpec("number", "a day this many deviations above the mean (default 3)"),
    "min_history_days": FieldSpec("int", "days of history before max_zscore speaks (default 7)"),
    "max_consecutive_failures": FieldSpec(
        "int", "failures in a row from one provider that alert and open its breaker (default 5)"
    ),
    "cooldown": FieldSpec("int", "seconds a provider is set aside once its breaker opens"),
}
CHANNEL_FIELDS: dict[str, FieldSpec] = {
    "type": FieldSpec("str", "stderr, desktop, webhook or command"),
    "name": FieldSpec("str", "what alerts test --channel calls it"),
    "url": FieldSpec("str", "webhook: where to POST"),
    "format": FieldSpec("str", "webhook: json, slack, discord, feishu, dingtalk, wecom or ntfy"),
    "secret": FieldSpec("str", "webhook: the signing secret of a DingTalk or Feishu robot"),
    "command": FieldSpec("str_list", "command: the program and its arguments (no shell)"),
    "timeout": FieldSpec("number", "seconds one delivery may take (default 5)"),
    "allow_http": FieldSpec("bool", "allow plain http to a host that is not this machine"),
}
CHANNEL_TYPES = ("stderr", "desktop", "webhook", "command")
WEBHOOK_FORMATS = ("json", "slack", "discord", "feishu", "dingtalk", "wecom", "ntfy")


def parse_alerts(reader: Reader, raw: Any) -> AlertSettings:
    check = reader.check
    table = dict(check.table(("alerts",), raw))
    channels_raw = table.pop("channels", [])
    values, found = check.fields(("alerts",), table, ALERT_RULE_FIELDS)
    reader.sources.update({f"alerts.{k}": v for k, v in found.items()})
    rules = AlertRules(**values)
    if not isinstance(channels_raw, list):
        raise check.fail(("alerts", "channels"), "must be [[alerts.channels]] tables")
    channels = [_channel(reader, index, entry) for index, entry in enumerate(channels_raw, start=1)]
    names = [c.name for c in channels]
    for name in names:
        if names.count(name) > 1:
            raise check.fail(("alerts", "channels"), f"names two channels {name!r}")
    return AlertSettings(rules=rules, channels=tuple(channels))


def _channel(reader: Reader, index: int, entry: Any) -> AlertChannel:
    check = reader.check
    key_path = ("alerts", "channels")
    values, _ = check.fields(key_path, check.table(key_path, entry), CHANNEL_FIELDS)
    type_ = values.get("type", "stderr")
    if type_ not in CHANNEL_TYPES:
        raise check.fail(
            (*key_path, "type"),
            f"is {type_!r}, not a channel type",
            f"Channel types: {', '.join(CHANNEL_TYPES)}.",
        )
    where = f"channel {index} ({type_})"
    fmt = values.get("format", "json")
    url = values.get("url")
    if type_ == "webhook":
        if fmt not in WEBHOOK_FORMATS:
            raise check.fail(
                (*key_path, "format"),
                f"of {where} is {fmt!r}",
                f"Formats: {', '.join(WEBHOOK_FORMATS)}.",
            )
        if not url:
            raise check.fail(key_path, f"{where} has no url", 'Add url = "https://…".')
        _check_webhook_url(reader, where, url, values.get("allow_http", False))
    if type_ == "command" and not values.get("command"):
        raise check.fail(
            key_path, f"{where} has no command", 'e.g. command = ["/usr/local/bin/page-me"].'
        )
    timeout = float(values.get("timeout", 5))
    if not 0 < timeout <= 120:
        raise check.fail((*key_path, "timeout"), "must be between 0 and 120 seconds")
    return AlertChannel(
        type=type_,
        name=values.get("name") or f"{type_}-{index}",
        url=url,
        format=fmt,
        secret=values.get("secret"),
        command=tuple(values.get("command", ())),
        timeout=timeout,
        allow_http=values.get("allow_http", False),
        source=check.where(key_path),
    )


def _check_webhook_url(reader: Reader, where: str, url: str, allow_http: bool) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "is not an http(s) URL"
    elif parts.scheme == "http" and not allow_http and not _is_loopback(parts.hostname):
        problem = "is plain http to another machine"
    if problem:
        # Never echo the URL: webhook URLs carry their secret in the path or query.
        raise reader.check.fail(
            ("alerts", "channels", "url"),
            f"of {where} {problem}",
            "Use https (or allow_http = true for a trusted network).",
        )


# --------------------------------------------------------------------- [gateway]

GATEWAY_FIELDS: dict[str, FieldSpec] = {
    "models": FieldSpec("str_table", "bare model names → PROVIDER:MODEL or an alias"),
    "max_body_mb": FieldSpec("number", "refuse request bodies larger than this (413; default 32)"),
    "read_timeout": FieldSpec(
        "number", "seconds a request's headers, then its body, may take to arrive (408; default 30)"
    ),
    "max_connections": FieldSpec(
        "int", "connections served at once; more are answered 503 at once (default 1000)"
    ),
}
CLIENT_FIELDS: dict[str, FieldSpec] = {
    "key_env": FieldSpec("str", "environment variable holding the client's key"),
    "key_sha256": FieldSpec("str", "sha256 of the client's key (tokencli serve add-client)"),
    "project": FieldSpec("str", "project its calls are recorded under"),
    "tags": FieldSpec("str_table", "tags its calls are recorded with"),
    "user": FieldSpec("str", "recorded as the tag user=..."),
    "models": FieldSpec("str_list", "models it may use (default: any)"),
    "rpm": FieldSpec("int", "requests per minute it may make"),
    "tpm": FieldSpec("int", "tokens per minute it may use"),
    "budgets": FieldSpec("str_list", "budgets that count and cap only this client's calls"),
}


def parse_gateway(reader: Reader, raw: Any) -> GatewaySettings:
    check = reader.check
    table = dict(check.table(("gateway",), raw))
    clients_raw = check.table(("gateway", "clients"), table.pop("clients", {}))
    values, found = check.fields(("gateway",), table, GATEWAY_FIELDS)
    reader.sources.update({f"gateway.{k}": v for k, v in found.items()})
    providers: dict[str, ProviderConfig] = reader.section("providers")
    for name, target in values.get("models", {}).items():
        if target in reader.section("aliases"):
            continue
        provider, sep, model = target.partition(":")
        if not sep or not model:
            raise check.fail(
                ("gateway", "models", name),
                f"must name PROVIDER:MODEL or an alias, not {target!r}",
                f'e.g. {name} = "deepseek:deepseek-chat".',
            )
        if provider not in providers:
            raise check.fail(
                ("gateway", "models", name),
                f"names an unknown provider {provider!r}",
                f"Known providers: {', '.join(sorted(providers))}.",
            )
    clients: dict[str, GatewayClient] = {}
    for name, entry in clients_raw.items():
        key_path = ("gateway", "clients", name)
        fields, where = check.fields(key_path, check.table(key_path, entry), CLIENT_FIELDS)
        if ("key_env" in fields) == ("key_sha256" in fields):
            raise check.fail(
                key_path,
                "needs either key_env or key_sha256"
                + (", not both" if "key_env" in fields else ""),
                f"Run 'tokencli serve add-client {name}' to make a key, or set key_env = \"VAR\".",
            )
        digest = fields.get("key_sha256")
        if digest is not None and (
            len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower())
        ):
            raise check.fail((*key_path, "key_sha256"), "must be 64 hex digits (a sha256)")
        clients[name] = GatewayClient(
            name=name,
            key_env=fields.get("key_env"),
            key_sha256=digest.lower() if digest else None,
            project=fields.get("project"),
            tags=dict(fields.get("tags", {})),
            user=fields.get("user"),
            models=tuple(fields.get("models", ())),
            rpm=fields.get("rpm") or None,
            tpm=fields.get("tpm") or None,
            budgets=tuple(fields.get("budgets", ())),
            source=check.where(key_path),
        )
        reader.sources.update({f"gateway.clients.{name}.{k}": v for k, v in where.items()})
    _client_budgets(reader, clients)
    max_body = values.get("max_body_mb", GatewaySettings.max_body_mb)
    if max_body <= 0:
        raise check.fail(("gateway", "max_body_mb"), "must be greater than 0")
    read_timeout = values.get("read_timeout", GatewaySettings.read_timeout)
    if read_timeout <= 0:
        raise check.fail(("gateway", "read_timeout"), "must be greater than 0")
    max_connections = values.get("max_connections", GatewaySettings.max_connections)
    if max_connections <= 0:
        raise check.fail(("gateway", "max_connections"), "must be greater than 0")
    return GatewaySettings(
        models=dict(values.get("models", {})),
        clients=clients,
        max_body_mb=max_body,
        read_timeout=read_timeout,
        max_connections=max_connections,
    )


def _client_budgets(reader: Reader, clients: Mapping[str, GatewayClient]) -> None:
    """A budget a client lists becomes that client's: its scope also requires the tag
    client=NAME (what the gateway records on the client's calls), everywhere budgets are
    read (enforcement, `budget status`, alerts), so what it counts and what it caps agree."""
    check = reader.check
    budgets: dict[str, Budget] = reader.section("budgets")
    owner: dict[str, str] = {}
    for name, client in clients.items():
        key_path = ("gateway", "clients", name, "budgets")
        for budget_name in client.budgets:
            budget = budgets.get(budget_name)
            if budget is None:
                raise check.fail(
                    key_path,
                    f"lists budget {budget_name!r} for client {name!r}, but no "
                    f"[budgets.{budget_name}] table defines it",
                    "Known budgets: " + (", ".join(sorted(budgets)) or "none") + ".",
                )
            tags = dict(budget.scope.tags)
            other = owner.setdefault(budget_name, name)
            if other == name:
                other = tags.get("client", name)
            if other != name:
                raise check.fail(
                    key_path,
                    f"lists budget {budget_name!r} for client {name!r}, but that budget "
                    f"already counts only client {other!r}'s calls",
                    "A budget counts one client's calls: give each client a budget of its own.",
                )
            if "client" not in tags:
                scope = budget.scope._replace(tags=(*budget.scope.tags, ("client", name)))
                budgets[budget_name] = budget.replace(scope=scope)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The sections a config may have, in the order errors list them. A parser that
# needs another section gets it through `reader.section`, so order here is only
# the order in which problems are found.
SECTIONS: tuple[Section, ...] = (
    Section("defaults", "defaults", parse_defaults),
    Section("aliases", "aliases", parse_aliases),
    Section("providers", "providers", parse_providers),
    Section("models", "models", parse_models),
    Section("prices", "prices", parse_prices),
    Section("currency", "currencies", parse_currency),
    Section("budgets", "budgets", parse_budgets),
    Section("alerts", "alerts", parse_alerts),
    Section("gateway", "gateway", parse_gateway),
)
_BY_NAME: dict[str, Section] = {section.name: section for section in SECTIONS}
