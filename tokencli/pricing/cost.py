"""The cost of a call, exactly, with the price in force when it was made.

Where a price comes from, first match wins:

1. `--price-as PROVIDER:MODEL` (mock and self-hosted calls priced as a real model);
2. the provider's own report of what it charged (OpenRouter's `cost`);
3. a `[prices."PROVIDER:MODEL"]` table in the config (any currency);
4. self-hosted providers: `hourly_cost` × call time, else zero;
5. providers that bill in yuan (`currency = "CNY"`: the presets `qwen`,
   `siliconflow`, `zhipu`, and `moonshot`/`deepseek` on their mainland
   platform): the bundled yuan price list (`cny`), for the models it has;
6. the bundled genai-prices table (USD), at the call's timestamp, so dated
   price changes, off-peak hours and long-context tiers apply. Models whose
   price does not depend on the time or the call's size are priced from the
   flattened copy in the price index (`index.flat_price`), exactly as
   genai-prices would (a test compares the two for every such model), without
   importing it. For a yuan-billed provider it is a fallback, and its
   `price_source` says so;
7. otherwise the cost is unknown (recorded as NULL, never guessed).

genai-prices takes ~0.25 s to import, so it loads only here, and `prefetch()`
can start that import in a thread while a request is in flight.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..calls.usage import Usage
from ..providers.registry import ProviderConfig
from ..settings.loader import PriceOverride, Settings

MILLION = Decimal(1_000_000)
MS_PER_HOUR = Decimal(3_600_000)


@dataclass(frozen=True)
class Cost:
    amount: Decimal | None
    currency: str | None
    source: str
    # When the price came from a bundled list that can go stale: the date it was read.
    read: date | None = None

    @property
    def known(self) -> bool:
        return self.amount is not None


UNKNOWN = Cost(None, None, "unknown")


# ------------------------------------------------------------- genai-prices


_prefetch_lock = threading.Lock()
_prefetch_thread: threading.Thread | None = None


def _load_table() -> Any:
    import genai_prices
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()  # builds the bundled snapshot once
    return genai_prices


def prefetch(settings: Settings | None = None) -> None:
    """Start importing the price table in the background (idempotent).

    With settings, also refresh the on-disk price index if it is missing or old,
    so that later calls of flat-priced models need no import at all.
    """
    global _prefetch_thread
    with _prefetch_lock:
        if _prefetch_thread is None:
            _prefetch_thread = threading.Thread(
                target=_safe_load, args=(settings,), name="tokencli-prices", daemon=True
            )
            _prefetch_thread.start()


def _safe_load(settings: Settings | None) -> None:
    try:
        _load_table()
        if settings is not None:
            from .index import cached_index, load_index

            if cached_index(settings) is None:
                load_index(settings)
    except Exception:  # reported by the foreground import, which raises again
        pass


def genai_prices_module() -> Any:
    thread = _prefetch_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()
    return _load_table()


def table_version() -> str:
    return str(genai_prices_module().__version__)


_flat_tables: dict[str, tuple[str, dict[str, dict[str, list[Any]]]] | None] = {}


def _flat_table(settings: Settings) -> tuple[str, dict[str, dict[str, list[Any]]]] | None:
    """(table version, flat prices) from the price index on disk, loaded once per process."""
    key = str(settings.paths.cache_dir)
    if key not in _flat_tables:
        from .index import cached_index

        index = cached_index(settings)
        _flat_tables[key] = (str(index["table_version"]), index.get("flat", {})) if index else None
    return _flat_tables[key]


def flat_record(settings: Settings, prices_from: str, model: str) -> tuple[str, list[Any]] | None:
    table = _flat_table(settings)
    if table is None:
        return None
    version, flat = table
    record = flat.get(prices_from, {}).get(model.lower())
    return (version, record) if record is not None else None


def flat_quote(
    settings: Settings, prices_from: str, model: str, usage: Usage, when: datetime
) -> Cost | None:
    """The table's price without importing the table, when that price is flat for this call."""
    found = flat_record(settings, prices_from, model)
    if found is None:
        return None
    version, (inp, out, cache_read, cache_write, tier_at, valid_from) = found
    if tier_at is not None and usage.input_tokens > tier_at:
        return None  # past a long-context tier every token is re-priced
    if valid_from and when.astimezone(UTC).date() < date.fromisoformat(valid_from):
        return None  # an older price was in force then (changes start on UTC dates)
    if (usage.cached_input_tokens and cache_read is None) or (
        usage.cache_write_tokens and cache_write is None
    ):
        return None
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached * Decimal(inp)
        + usage.cached_input_tokens * Decimal(cache_read or 0)
        + usage.cache_write_tokens * Decimal(cache_write or 0)
        + usage.output_tokens * Decimal(out)
    )
    return Cost(total / MILLION, "USD", f"genai-prices {version}")


def needs_table(
    settings: Settings,
    provider: ProviderConfig,
    model: str,
    price_as: tuple[ProviderConfig, str] | None,
) -> bool:
    """Whether pricing this call will probably import genai-prices (then prefetch it)."""
    if price_as is not None:
        provider, model = price_as
    if (
        provider.self_hosted
        or not provider.prices_from
        or find_override(settings, provider.name, model)
    ):
        return False
    if uses_cny_list(provider) and cny_entry(settings, provider, model) is not None:
        return False
    return flat_record(settings, provider.prices_from, model) is None


def genai_quote(prices_from: str, model: str, usage: Usage, when: datetime) -> Cost | None:
    """Cost from genai-prices, or None when it does not know the model."""
    gp = genai_prices_module()
    try:
        result = gp.calc_price(
            gp.Usage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.output_tokens,
                output_reasoning_tokens=usage.reasoning_tokens,
            ),
            model,
            provider_id=prices_from,
            genai_request_timestamp=when,
        )
    except LookupError:
        return None
    return Cost(Decimal(result.total_price), "USD", f"genai-prices {gp.__version__}")


# ------------------------------------------------------------------- pricing


def override_cost(price: PriceOverride, usage: Usage) -> Decimal:
    """Per-million prices applied to the normalized counts."""
    input_price = price.input or Decimal(0)
    cached_price = price.cached_input if price.cached_input is not None else input_price
    write_price = price.cache_write if price.cache_write is not None else input_price
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached * input_price
        + usage.cached_input_tokens * cached_price
        + usage.cache_write_tokens * write_price
        + usage.output_tokens * (price.output or Decimal(0))
    )
    return total / MILLION


def find_override(settings: Settings, provider: str, model: str) -> PriceOverride | None:
    return settings.prices.get(f"{provider}:{model}")


# ------------------------------------------------------------ the yuan list


def uses_cny_list(provider: ProviderConfig) -> bool:
    """Whether this provider's models are priced from the bundled yuan list."""
    return provider.currency == "CNY" and not provider.self_hosted


def cny_entry(settings: Settings, provider: ProviderConfig, model: str) -> Any:
    """The yuan list's entry for this provider's model (loads the list), or None."""
    from . import cny

    prices = cny.active(settings.paths.config_dir, settings.paths.cache_dir)
    listed = cny.list_provider(provider.name, provider.base_url, prices.providers())
    return prices.find(listed, model) if listed else None


def price_list(provider: ProviderConfig, own_list: Path | None = None) -> str:
    """Which prices a provider's calls get, in words (for `config show`); `own_list`:
    the user's yuan list laid over the bundled one, when there is one."""
    if provider.self_hosted:
        return (
            f"self-hosted: hourly_cost {provider.hourly_cost} {provider.currency}/h"
            if provider.hourly_cost is not None
            else "self-hosted: free"
        )
    table = f"genai-prices ({provider.prices_from})" if provider.prices_from else None
    if uses_cny_list(provider):
        cny_list = f"your cny list {own_list} over the cny list" if own_list else "cny list"
        return cny_list + (f", then {table}" if table else "")
    return table or "[prices] overrides only"


def price_call(
    settings: Settings,
    provider: ProviderConfig,
    model: str,
    usage: Usage,
    *,
    when: datetime,
    duration_ms: int = 0,
    provider_cost: Decimal | None = None,
    provider_cost_currency: str | None = None,
    price_as: tuple[ProviderConfig, str] | None = None,
) -> Cost:
    if price_as is not None:
        as_provider, as_model = price_as
        quoted = price_call(settings, as_provider, as_model, usage, when=when)
        if not quoted.known:
            return quoted
        return replace(quoted, source=f"as {as_provider.name}:{as_model} ({quoted.source})")

    if provider_cost is not None:
        return Cost(provider_cost, provider_cost_currency or "USD", f"{provider.name} (reported)")

    override = find_override(settings, provider.name, model)
    if override is not None:
        return Cost(override_cost(override, usage), override.currency, override.source)

    if provider.self_hosted:
        if provider.hourly_cost is not None:
            amount = provider.hourly_cost * Decimal(duration_ms) / MS_PER_HOUR
            return Cost(
                amount,
                provider.currency,
                f"hourly_cost {provider.hourly_cost} {provider.currency}/h",
            )
        return Cost(Decimal(0), provider.currency, "self-hosted (free)")

    cny_list = uses_cny_list(provider)
    if cny_list:
        from .cny import quote

        entry = cny_entry(settings, provider, model)
        if entry is not None:
            return Cost(quote(entry, usage, when), "CNY", entry.price_source_at(when), entry.read)

    if provider.prices_from:
        table_cost = flat_quote(settings, provider.prices_from, model, usage, when) or genai_quote(
            provider.prices_from, model, usage, when
        )
        if table_cost is not None and cny_list:
            return replace(table_cost, source=f"{table_cost.source} (not in the cny list)")
        if table_cost is not None:
            return table_cost
    return UNKNOWN
