"""Settings, resolved once: flag > environment > config file > default.

`load_settings()` reads the TOML file (if any), validates every value against
a small schema, and returns a `Settings` whose values remember where they
came from (`config show` prints that). Errors name the file, the line and the
fix; they are `ConfigError`s (exit 6).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..money import parse_amount
from ..providers.registry import (
    PRESETS,
    PROTOCOLS,
    FieldSpec,
    ProviderConfig,
    custom_provider,
    fields_of,
    with_overrides,
)
from . import tomlpos
from .paths import Paths, resolve_paths

DEFAULT_MODEL = "mock:echo"


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
class Defaults:
    model: str = DEFAULT_MODEL
    project: str | None = None
    store_text: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    max_input_tokens: int | None = None


@dataclass(frozen=True)
class ModelSettings:
    """`[models."PROVIDER:MODEL"]`: limits for one model, over its provider's."""

    rpm: int | None = None
    tpm: int | None = None
    max_input_tokens: int | None = None


@dataclass(frozen=True)
class Currencies:
    report: str = "USD"
    # 1 unit of KEY = VALUE units of `report`.
    rates: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """`[budgets.NAME]`: a spending limit per day, week or month, over all calls or a scope."""

    name: str
    amount: Decimal
    currency: str
    period: str  # day | week | month (local, like reports)
    provider: str | None = None
    model: str | None = None
    project: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    source: str = ""

    @property
    def scope(self) -> dict[str, str]:
        """What the budget covers, e.g. {"provider": "openai", "tag:client": "acme"}."""
        out = {
            k: v
            for k, v in (
                ("provider", self.provider),
                ("model", self.model),
                ("project", self.project),
            )
            if v
        }
        out.update({f"tag:{k}": v for k, v in self.tags})
        return out


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


# ------------------------------------------------------------------ validation


class _Checker:
    """Type checks with errors that say file, line, key and fix."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = tomlpos.key_lines(text)

    def where(self, key_path: tuple[str, ...]) -> str:
        line = tomlpos.line_of(self.lines, key_path)
        return f"{self.path.name}:{line}" if line else self.path.name

    def fail(self, key_path: tuple[str, ...], problem: str, hint: str | None = None) -> ConfigError:
        line = tomlpos.line_of(self.lines, key_path)
        at = f" (line {line})" if line else ""
        dotted = _dotted(key_path)
        return ConfigError(
            f"Invalid config {self.path}{at}: {dotted} {problem}.",
            hint or "Fix the value, then check it with 'tokencli config validate'.",
        )

    def value(self, key_path: tuple[str, ...], value: Any, kind: str) -> Any:
        if kind == "str":
            if not isinstance(value, str):
                raise self.fail(key_path, f"must be a string, not {_type_name(value)}")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(key_path, f"must be true or false, not {_type_name(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(key_path, f"must be a whole number ≥ 0, not {value!r}")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise self.fail(key_path, f"must be a number ≥ 0, not {value!r}")
            return parse_amount(value)
        if kind == "str_list":
            if isinstance(value, str):
                return [value] if value else []
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return [v for v in value if v]
            raise self.fail(key_path, "must be a string or a list of strings")
        if kind == "str_table":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.fail(key_path, "must be a table of strings")
            return value
        raise AssertionError(kind)

    def table(self, key_path: tuple[str, ...], value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key_path, f"must be a table, not {_type_name(value)}")
        return value

    def fields(
        self, key_path: tuple[str, ...], table: Mapping[str, Any], specs: Mapping[str, FieldSpec]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, raw in table.items():
            spec = specs.get(key)
            if spec is None:
                raise self.fail(
                    (*key_path, key),
                    "is not a known setting",
                    f"Known settings here: {', '.join(sorted(specs))}.",
                )
            values[key] = self.value((*key_path, key), raw, spec.kind)
            sources[key] = self.where((*key_path, key))
        return values, sources


def _dotted(key_path: tuple[str, ...]) -> str:
    out = []
    for part in key_path:
        out.append(part if part.replace("_", "").replace("-", "").isalnum() else f'"{part}"')
    return ".".join(out)


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


DEFAULTS_FIELDS: dict[str, FieldSpec] = {
    "model": FieldSpec("str", "model or alias used when -m is not given"),
    "project": FieldSpec("str", "project recorded when -p is not given"),
    "store_text": FieldSpec("bool", "keep prompt and response text in the ledger"),
    "max_tokens": FieldSpec("int", "default --max-tokens"),
    "temperature": FieldSpec("number", "default --temperature"),
    "max_input_tokens": FieldSpec("int", "refuse prompts larger than this before sending"),
}
MODEL_FIELDS: dict[str, FieldSpec] = {
    "rpm": FieldSpec("int", "requests per minute"),
    "tpm": FieldSpec("int", "tokens per minute"),
    "max_input_tokens": FieldSpec("int", "refuse prompts larger than this before sending"),
}
PRICE_FIELDS: dict[str, FieldSpec] = {
    "input": FieldSpec("number", "per 1M input tokens"),
    "output": FieldSpec("number", "per 1M output tokens"),
    "cached_input": FieldSpec("number", "per 1M input tokens read from a cache"),
    "cache_write": FieldSpec("number", "per 1M input tokens written to a cache"),
    "currency": FieldSpec("str", "ISO currency code, e.g. USD or CNY"),
}
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
SECTIONS = ("defaults", "aliases", "providers", "models", "prices", "currency", "budgets")


def _currency_code(checker: _Checker, key_path: tuple[str, ...], value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise checker.fail(
            key_path, f"must be a three-letter currency code like USD or CNY, not {value!r}"
        )
    return code


# --------------------------------------------------------------------- loading


def read_config_file(path: Path) -> tuple[dict[str, Any], str]:
    """Parse the TOML file; a missing file is an empty config."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, ""
    except IsADirectoryError:
        raise ConfigError(
            f"Config path {path} is a directory.", "Point --config at a TOML file."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config {path}: {exc.strerror}.", None) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"Config {path} is not UTF-8 text.", "Save it as UTF-8.") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(
            f"Config {path} is not valid TOML: {exc}.",
            "Fix that line, then run 'tokencli config validate'.",
        ) from None


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    config_flag: str | None = None,
    db_flag: str | None = None,
) -> Settings:
    env = dict(os.environ if env is None else env)
    paths = resolve_paths(env, config_flag=config_flag, db_flag=db_flag)
    if config_flag and not paths.config.exists():
        raise ConfigError(f"Config file {paths.config} does not exist.", "Check the --config path.")
    doc, text = read_config_file(paths.config)
    return settings_from_doc(doc, text, paths, env, exists=bool(text) or paths.config.exists())


def settings_from_doc(
    doc: Mapping[str, Any], text: str, paths: Paths, env: Mapping[str, str], *, exists: bool
) -> Settings:
    check = _Checker(paths.config, text)
    sources: dict[str, str] = {}

    for section in doc:
        if section not in SECTIONS:
            raise check.fail(
                (section,), "is not a known section", f"Known sections: {', '.join(SECTIONS)}."
            )

    # [defaults]
    defaults_raw = check.table(("defaults",), doc.get("defaults", {}))
    values, found = check.fields(("defaults",), defaults_raw, DEFAULTS_FIELDS)
    sources.update({f"defaults.{k}": v for k, v in found.items()})
    defaults = Defaults(
        model=values.get("model", DEFAULT_MODEL),
        project=values.get("project") or None,
        store_text=values.get("store_text", True),
        max_tokens=values.get("max_tokens"),
        temperature=float(values["temperature"]) if "temperature" in values else None,
        max_input_tokens=values.get("max_input_tokens"),
    )

    # [providers.NAME]
    providers = dict(PRESETS)
    for name, table in check.table(("providers",), doc.get("providers", {})).items():
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
            values["currency"] = _currency_code(check, (*key_path, "currency"), values["currency"])
        if "max_tokens_field" in values and values["max_tokens_field"] not in (
            "max_tokens",
            "max_completion_tokens",
        ):
            raise check.fail(
                (*key_path, "max_tokens_field"), "must be max_tokens or max_completion_tokens"
            )
        for numeric in (
            "connect_timeout",
            "read_timeout",
            "retry_max_wait",
            "retry_backoff",
            "cache_ttl",
        ):
            if numeric in values:
                values[numeric] = float(values[numeric])
        if "base_url" in values:
            values["base_url"] = _check_base_url(check, (*key_path, "base_url"), values["base_url"])
        providers[name] = with_overrides(base, values, found)
        sources.update({f"providers.{name}.{k}": v for k, v in found.items()})

    # [aliases]
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in check.table(("aliases",), doc.get("aliases", {})).items():
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
        sources[f"aliases.{alias}"] = check.where(key_path)

    # [prices."PROVIDER:MODEL"]
    prices: dict[str, PriceOverride] = {}
    for ref, table in check.table(("prices",), doc.get("prices", {})).items():
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
        currency = _currency_code(check, (*key_path, "currency"), values.get("currency", "USD"))
        prices[ref] = PriceOverride(
            input=values.get("input"),
            output=values.get("output"),
            cached_input=values.get("cached_input"),
            cache_write=values.get("cache_write"),
            currency=currency,
            source=f"config {check.where(key_path)}",
        )
        sources[f"prices.{ref}"] = check.where(key_path)

    # [models."PROVIDER:MODEL"]
    models: dict[str, ModelSettings] = {}
    for ref, table in check.table(("models",), doc.get("models", {})).items():
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
        sources.update({f"models.{ref}.{k}": v for k, v in found.items()})

    # [currency]
    currency_raw = check.table(("currency",), doc.get("currency", {}))
    report = "USD"
    rates: dict[str, Decimal] = {}
    for key, value in currency_raw.items():
        if key == "report":
            report = _currency_code(
                check, ("currency", key), check.value(("currency", key), value, "str")
            )
            sources["currency.report"] = check.where(("currency", key))
        elif key == "rates":
            for code, rate in check.table(("currency", "rates"), value).items():
                rate_path = ("currency", "rates", code)
                amount = check.value(rate_path, rate, "number")
                if amount <= 0:
                    raise check.fail(rate_path, "must be greater than 0")
                rates[_currency_code(check, rate_path, code)] = amount
                sources[f"currency.rates.{code}"] = check.where(rate_path)
        else:
            raise check.fail(
                ("currency", key), "is not a known setting", "Known settings here: rates, report."
            )

    budgets = _budgets(check, doc.get("budgets", {}), report, sources)

    return Settings(
        paths=paths,
        env=env,
        defaults=defaults,
        aliases=aliases,
        providers=providers,
        prices=prices,
        models=models,
        currencies=Currencies(report=report, rates=rates),
        budgets=budgets,
        sources=sources,
        config_exists=exists,
    )


def _budgets(
    check: _Checker, raw: Any, report_currency: str, sources: dict[str, str]
) -> dict[str, Budget]:
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
        currency = values.get("currency", report_currency)
        budgets[name] = Budget(
            name=name,
            amount=values["amount"],
            currency=_currency_code(check, (*key_path, "currency"), currency),
            period=period,
            provider=values.get("provider"),
            model=values.get("model"),
            project=values.get("project"),
            tags=tuple(tags),
            source=check.where(key_path),
        )
        sources.update({f"budgets.{name}.{k}": v for k, v in found.items()})
    return budgets


def _check_base_url(check: _Checker, key_path: tuple[str, ...], url: str) -> str:
    url = url.strip().rstrip("/")
    if not (url.startswith("http://") or url.startswith("https://")) or len(url) < 10:
        raise check.fail(
            key_path, f"must be an http(s) URL, not {url!r}", "e.g. https://api.openai.com/v1."
        )
    return url
