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
from .model import DEFAULT_MODEL, Budget, Currencies, Defaults, ModelSettings, PriceOverride
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
    )


# ------------------------------------------------------------ [providers.NAME]

_SECONDS = ("connect_timeout", "read_timeout", "retry_max_wait", "retry_backoff", "cache_ttl")


def parse_providers(reader: Reader, raw: Any) -> dict[str, ProviderConfig]:
    """The presets, with each `[providers.NAME]` laid over its preset or defining a new one."""
    check = reader.check
    providers = dict(PRESETS)
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
            base = custom_provider(name, type_)
        elif type_ != base.type:
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
    "amount": FieldSpec("number", "the limit, in `currency`"),
    "currency": FieldSpec("str", "currency of amount (default: [currency] report)"),
    "period": FieldSpec("str", "day, week (Monday first) or month; local time (default: month)"),
    "provider": FieldSpec("str", "only calls to this provider"),
    "model": FieldSpec("str", "only calls to this model"),
    "project": FieldSpec("str", "only calls of this project"),
    "tag": FieldSpec("str_list", "only calls with these KEY=VALUE tags"),
}
BUDGET_PERIODS = ("day", "week", "month")


def parse_budgets(reader: Reader, raw: Any) -> dict[str, Budget]:
    check = reader.check
    currencies: Currencies = reader.section("currency")
    budgets: dict[str, Budget] = {}
    for name, table in check.table(("budgets",), raw).items():
        key_path = ("budgets", name)
        values, found = check.fields(key_path, check.table(key_path, table), BUDGET_FIELDS)
        if "amount" not in values:
            raise check.fail(key_path, "has no amount", "e.g. amount = 50 (in currency).")
        if values["amount"] <= 0:
            raise check.fail((*key_path, "amount"), "must be greater than 0")
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
        currency = values.get("currency", currencies.report)
        budgets[name] = Budget(
            name=name,
            amount=values["amount"],
            currency=check.currency((*key_path, "currency"), currency),
            period=period,
            scope=Scope(
                provider=values.get("provider"),
                model=values.get("model"),
                project=values.get("project"),
                tags=tuple(tags),
            ),
            source=check.where(key_path),
        )
        reader.sources.update({f"budgets.{name}.{k}": v for k, v in found.items()})
    return budgets


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
)
_BY_NAME: dict[str, Section] = {section.name: section for section in SECTIONS}
