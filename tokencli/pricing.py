"""The cost of a call, exactly, with the price in force when it was made.

Where a price comes from, first match wins:

1. `--price-as PROVIDER:MODEL` (mock and self-hosted calls priced as a real model);
2. the provider's own report of what it charged (OpenRouter's `cost`);
3. a `[prices."PROVIDER:MODEL"]` table in the config (any currency);
4. self-hosted providers: `hourly_cost` × call time, else zero;
5. the bundled genai-prices table (USD), at the call's timestamp, so dated
   price changes, off-peak hours and long-context tiers apply;
6. otherwise the cost is unknown (recorded as NULL, never guessed).

genai-prices takes ~0.25 s to import, so it loads only here, and `prefetch()`
can start that import in a thread while a request is in flight.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from .config import PriceOverride, Settings
from .providers.registry import ProviderConfig
from .usage import Usage

MILLION = Decimal(1_000_000)
MS_PER_HOUR = Decimal(3_600_000)


@dataclass(frozen=True)
class Cost:
    amount: Decimal | None
    currency: str | None
    source: str

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


def prefetch() -> None:
    """Start importing the price table in the background (idempotent)."""
    global _prefetch_thread
    with _prefetch_lock:
        if _prefetch_thread is None:
            _prefetch_thread = threading.Thread(
                target=_safe_load, name="tokencli-prices", daemon=True
            )
            _prefetch_thread.start()


def _safe_load() -> None:
    try:
        _load_table()
    except Exception:  # reported by the foreground import, which raises again
        pass


def genai_prices_module() -> Any:
    thread = _prefetch_thread
    if thread is not None:
        thread.join()
    return _load_table()


def table_version() -> str:
    return str(genai_prices_module().__version__)


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
        return Cost(
            quoted.amount, quoted.currency, f"as {as_provider.name}:{as_model} ({quoted.source})"
        )

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

    if provider.prices_from:
        table_cost = genai_quote(provider.prices_from, model, usage, when)
        if table_cost is not None:
            return table_cost
    return UNKNOWN
