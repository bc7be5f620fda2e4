"""The list of known models and their current prices, for `tokencli models`.

Listing models must feel instant, and importing genai-prices costs ~0.25 s,
so the table is flattened once into a JSON file in the cache directory and
rebuilt only when the installed genai-prices changes or a day has passed
(dated price changes take effect by date). Config price overrides and the
mock models are laid over it on every read; they cost nothing.

Per-call pricing does not use this index: it asks genai-prices directly with
the call's timestamp (see `pricing`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings

INDEX_FORMAT = 1
MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class ModelPrice:
    provider: str
    model: str
    input: Decimal | None
    output: Decimal | None
    cached_input: Decimal | None
    cache_write: Decimal | None
    currency: str
    source: str
    context_window: int | None = None
    notes: str = ""


def _table_fingerprint() -> str | None:
    """Identifies the installed genai-prices data without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("genai_prices")
    if spec is None or spec.origin is None:
        return None
    data = Path(spec.origin).with_name("data.py")
    try:
        st = data.stat()
    except OSError:
        return None
    return f"{data}:{st.st_size}:{st.st_mtime_ns}:{__version__}:{INDEX_FORMAT}"


def _dec(value: Any) -> str | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # TieredPrices → its base price
    return str(base)


def _notes(model: Any) -> str:
    from genai_prices import types as gp_types

    notes = []
    prices = model.prices if isinstance(model.prices, list) else []
    if any(isinstance(p.constraint, gp_types.TimeOfDateConstraint) for p in prices):
        notes.append("time-of-day")
    if any(isinstance(p.constraint, gp_types.StartDateConstraint) for p in prices):
        notes.append("dated")
    current = prices[-1].prices if prices else model.prices
    if any(isinstance(v, gp_types.TieredPrices) for v in vars(current).values()):
        notes.append("tiered")
    if model.deprecated:
        notes.append("deprecated")
    return ",".join(notes)


def build_index() -> dict[str, Any]:
    """Flatten genai-prices' bundled table (imports it)."""
    from .pricing import genai_prices_module

    gp = genai_prices_module()
    from genai_prices import data_snapshot

    # Noon UTC: the standard (peak) price where a table has time-of-day prices.
    noon = datetime.combine(datetime.now(UTC).date(), time(12, 0), tzinfo=UTC)
    providers: dict[str, list[list[Any]]] = {}
    for provider in data_snapshot.get_snapshot().providers:
        rows = []
        for model in provider.models:
            try:
                price = model.get_prices(noon)
            except Exception:
                continue
            rows.append(
                [
                    model.id,
                    _dec(price.input_mtok),
                    _dec(price.output_mtok),
                    _dec(price.cache_read_mtok),
                    _dec(price.cache_write_mtok),
                    model.context_window,
                    _notes(model),
                ]
            )
        providers[provider.id] = rows
    return {
        "format": INDEX_FORMAT,
        "built": datetime.now(UTC).isoformat(),
        "table_version": str(gp.__version__),
        "providers": providers,
    }


def _cache_file(settings: Settings) -> Path:
    return settings.paths.cache_dir / "price-index.json"


def load_index(settings: Settings, *, refresh: bool = False) -> dict[str, Any]:
    path = _cache_file(settings)
    fingerprint = _table_fingerprint()
    if not refresh and fingerprint:
        try:
            cached = json.loads(path.read_text("utf-8"))
            built = datetime.fromisoformat(cached["built"])
            if cached.get("fingerprint") == fingerprint and datetime.now(UTC) - built < MAX_AGE:
                return dict(cached)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    index = build_index()
    index["fingerprint"] = fingerprint
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache directory only costs speed
    return index


def list_models(
    settings: Settings, *, include_all: bool = False, refresh: bool = False
) -> list[ModelPrice]:
    """Every model tokencli can price, per tokencli provider name."""
    from .providers.mock import MODELS as MOCK_MODELS

    index = load_index(settings, refresh=refresh)
    version = index.get("table_version", "?")
    source = f"genai-prices {version}"
    rows: dict[tuple[str, str], ModelPrice] = {}

    def add_table(provider_name: str, table_id: str, currency: str = "USD") -> None:
        for model_id, inp, out, cached, write, ctx, notes in index["providers"].get(table_id, []):
            rows[(provider_name, model_id)] = ModelPrice(
                provider=provider_name,
                model=model_id,
                input=Decimal(inp) if inp is not None else None,
                output=Decimal(out) if out is not None else None,
                cached_input=Decimal(cached) if cached is not None else None,
                cache_write=Decimal(write) if write is not None else None,
                currency=currency,
                source=source,
                context_window=ctx,
                notes=notes,
            )

    mapped: set[str] = set()
    for name, provider in sorted(settings.providers.items()):
        if provider.prices_from and not provider.self_hosted:
            add_table(name, provider.prices_from)
            mapped.add(provider.prices_from)
        if provider.type == "mock":
            for model in MOCK_MODELS:
                rows[(name, model)] = ModelPrice(
                    name,
                    model,
                    Decimal(0),
                    Decimal(0),
                    None,
                    None,
                    provider.currency,
                    "self-hosted (free)",
                    None,
                    "mock",
                )
    if include_all:
        for table_id in index["providers"]:
            if table_id not in mapped:
                add_table(table_id, table_id)

    for ref, price in settings.prices.items():
        provider_name, _, model = ref.partition(":")
        old = rows.get((provider_name, model))
        rows[(provider_name, model)] = ModelPrice(
            provider=provider_name,
            model=model,
            input=price.input,
            output=price.output,
            cached_input=price.cached_input,
            cache_write=price.cache_write,
            currency=price.currency,
            source=price.source,
            context_window=old.context_window if old else None,
            notes="override",
        )
    return sorted(rows.values(), key=lambda r: (r.provider, r.model))
