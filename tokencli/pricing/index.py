"""The list of known models and their current prices, for `tokencli models`.

Listing models must feel instant, and importing genai-prices costs ~0.25 s,
so the table is flattened once into a JSON file in the cache directory and
rebuilt only when the installed genai-prices changes or a day has passed
(dated price changes take effect by date). The yuan list's models (for the
providers that bill in CNY), config price overrides and the mock models are
laid over it on every read; they cost next to nothing.

Per-call pricing does not use this index: it asks genai-prices directly with
the call's timestamp (see `pricing`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .. import __version__
from ..settings.loader import Settings

INDEX_FORMAT = 2
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
    # From the yuan list: the official page, the date it was read, the other names
    # the model answers to, the thinking-mode output price and the context tiers.
    url: str | None = None
    read: date | None = None
    aliases: tuple[str, ...] = ()
    thinking_output: Decimal | None = None
    tiers: tuple[Any, ...] = ()
    off_peak: Any = None  # the yuan list's OffPeak: lower prices by the time of day


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
    from .cost import genai_prices_module

    gp = genai_prices_module()
    from genai_prices import data_snapshot

    # Noon UTC: the standard (peak) price where a table has time-of-day prices.
    noon = datetime.combine(datetime.now(UTC).date(), time(12, 0), tzinfo=UTC)
    snapshot = data_snapshot.get_snapshot()
    providers: dict[str, list[list[Any]]] = {}
    flat: dict[str, dict[str, list[Any]]] = {}
    for provider in snapshot.providers:
        rows = []
        for model in provider.models:
            record = flat_price(provider, model, snapshot.providers)
            if record is not None:
                flat.setdefault(provider.id, {})[model.id] = record
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
        "flat": flat,
    }


# Price keys a text call's usage never sets: their count is zero, so their price
# cannot change the total. Anything else (per-request fees, per-character or
# separate reasoning prices) sends the call to genai-prices itself.
_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_ZERO_COUNT_KEYS = {
    "web_searches_kcount",
    "storage_searches_kcount",
    "input_audio_mtok",
    "output_audio_mtok",
    "cache_audio_read_mtok",
    "input_image_mtok",
    "output_image_mtok",
    "cache_image_read_mtok",
    "input_video_mtok",
    "output_video_mtok",
    "input_document_kpages",
    "input_annotated_document_kpages",
    "audio_hours",
    "input_audio_hours",
    "cache_write_1h_mtok",
}


def flat_price(provider: Any, model: Any, all_providers: Any) -> list[Any] | None:
    """The model's per-token prices when they do not depend on the call's time or size.

    Returns [input, output, cache_read, cache_write, tier_at, valid_from] (prices as
    strings per 1M tokens), or None when only genai-prices itself can price it:
    time-of-day prices, per-request or per-character fees, or a model whose id
    genai-prices would resolve to another model. `tier_at`: long-context tiers
    re-price every token past this many input tokens, so the flat base prices hold
    up to it. `valid_from`: the latest dated price change, before which older
    prices applied.
    """
    from genai_prices import types as gp_types

    if provider.find_model(model.id, all_providers=all_providers) is not model:
        return None
    valid_from = None
    if isinstance(model.prices, list):
        last = model.prices[-1]
        if last.constraint is not None:
            if not isinstance(last.constraint, gp_types.StartDateConstraint):
                return None
            valid_from = last.constraint.start_date.isoformat()
        if any(isinstance(p.constraint, gp_types.TimeOfDateConstraint) for p in model.prices):
            return None
        price = last.prices
    else:
        price = model.prices
    values = {k: v for k, v in vars(price).items() if v is not None and not k.startswith("_")}
    if set(values) - set(_TOKEN_KEYS) - _ZERO_COUNT_KEYS:
        return None
    tier_at = None
    out: list[Any] = []
    for key in _TOKEN_KEYS:
        value = values.get(key)
        if isinstance(value, gp_types.TieredPrices):
            start = min(t.start for t in value.tiers) if value.tiers else None
            if start is not None:
                tier_at = start if tier_at is None else min(tier_at, start)
            value = value.base
        out.append(str(value) if value is not None else None)
    if out[0] is None or out[1] is None:
        return None
    return [*out, tier_at, valid_from]


def _cache_file(settings: Settings) -> Path:
    return settings.paths.cache_dir / "price-index.json"


def cached_index(settings: Settings) -> dict[str, Any] | None:
    """The index if a current one is on disk; never builds (never imports genai-prices)."""
    fingerprint = _table_fingerprint()
    if not fingerprint:
        return None
    try:
        cached = json.loads(_cache_file(settings).read_text("utf-8"))
        built = datetime.fromisoformat(cached["built"])
        if cached.get("fingerprint") == fingerprint and datetime.now(UTC) - built < MAX_AGE:
            return dict(cached)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def load_index(settings: Settings, *, refresh: bool = False) -> dict[str, Any]:
    if not refresh:
        cached = cached_index(settings)
        if cached is not None:
            return cached
    path = _cache_file(settings)
    fingerprint = _table_fingerprint()
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


def cny_rows(settings: Settings, today: date) -> dict[tuple[str, str], ModelPrice]:
    """The yuan list's models of every provider that bills in CNY (loads the list)."""
    from . import cny
    from .cost import uses_cny_list

    providers = [(n, p) for n, p in sorted(settings.providers.items()) if uses_cny_list(p)]
    if not providers:
        return {}
    prices = cny.active(settings.paths.config_dir, settings.paths.cache_dir)
    listed = prices.providers()
    rows: dict[tuple[str, str], ModelPrice] = {}
    for name, provider in providers:
        whose = cny.list_provider(name, provider.base_url, listed)
        for entry in prices.of(whose) if whose else []:
            notes = [
                *(["free"] if entry.free else []),
                *(["thinking"] if entry.thinking_output is not None else []),
                *(["tiered"] if entry.tiers else []),
                *(["off-peak"] if entry.off_peak else []),
                *(["stale"] if cny.stale_days(entry.read, today) else []),
            ]
            rows[(name, entry.model)] = ModelPrice(
                provider=name,
                model=entry.model,
                input=entry.input,
                output=entry.output,
                cached_input=entry.cached_input,
                cache_write=entry.cache_write,
                currency=cny.CURRENCY,
                source=f"{entry.list_name} ({entry.host}, read {entry.read.isoformat()})",
                notes=",".join(notes),
                url=entry.source,
                read=entry.read,
                aliases=entry.aliases,
                thinking_output=entry.thinking_output,
                tiers=entry.tiers,
                off_peak=entry.off_peak,
            )
    return rows


def list_models(
    settings: Settings,
    *,
    include_all: bool = False,
    refresh: bool = False,
    today: date | None = None,
) -> list[ModelPrice]:
    """Every model tokencli can price, per tokencli provider name."""
    from ..providers.mock import MODELS as MOCK_MODELS

    today = today or datetime.now(UTC).date()
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
    yuan = cny_rows(settings, today)
    # The yuan price is the one calls get: it replaces the table's row of the same
    # model under any spelling (the table writes GLM-5.3, the list glm-5.3).
    covered = {(p, n.lower()) for (p, _), r in yuan.items() for n in (r.model, *r.aliases)}
    rows = {k: v for k, v in rows.items() if (k[0], k[1].lower()) not in covered}
    rows.update(yuan)

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
