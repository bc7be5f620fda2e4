"""The bundled yuan price list of the Chinese platforms (`tokencli/data/prices-cny.toml`).

DashScope (Qwen), SiliconFlow, DeepSeek, Moonshot and Zhipu bill their mainland
accounts in yuan from price lists that are not their dollar prices converted, and
the genai-prices table has only the dollar ones, or nothing. This list carries
those yuan prices per million tokens, each entry with the official page it was
read from and the date. docs/prices-cny.md describes the format.

Loaded on first use (a call of a provider that bills in CNY, or `models`), once
per process; a damaged file is one `ConfigError` naming the entry and field.

A user's own list of the same format, `prices-cny.toml` beside the config (in the
config directory), is laid over the bundled one: its entries replace the bundled
entries of the same provider and model (or alias) and add the models the bundled
list lacks, so a refreshed price survives an upgrade.

How a call is priced from an entry (`quote`):

- the **tier**: the whole call is priced at the first tier whose `up_to` is at
  least the call's input tokens; past the last tier, at the last tier. A price
  a tier leaves out is the entry's own;
- uncached input (input less cached less cache-write tokens) at `input`; cached
  tokens at `cached_input`, else at `input`; cache writes at `cache_write`, else
  at `input`;
- output at `output`, or at `thinking_output` when the entry has one and the
  call was in **thinking mode**, known by the provider reporting reasoning
  tokens (`reasoning_tokens > 0`): the answer and its reasoning are then billed
  at the thinking price, as DashScope and Zhipu bill them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..calls.usage import Usage
from ..errors import ConfigError
from ..safetext import visible

FORMAT = 1
CURRENCY = "CNY"
MILLION = Decimal(1_000_000)
# Far above any real price: a bigger number is a typo (and would overflow arithmetic).
MAX_PRICE = Decimal(1_000_000)
# A price list older than this is flagged by `models` and a monthly hint.
STALE_AFTER = timedelta(days=90)
LIST_PATH = Path(__file__).resolve().parents[1] / "data" / "prices-cny.toml"
# The user's own list, in the config directory, laid over the bundled one.
USER_LIST_NAME = "prices-cny.toml"

_TOP_KEYS = {"format", "currency", "read", "models"}
_PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "thinking_output")
_ENTRY_KEYS = {"provider", "model", "aliases", "tiers", "free", "source", "read", "note"}
_ENTRY_KEYS |= set(_PRICE_KEYS) | {"off_peak"}
_TIER_KEYS = {"up_to", "input", "output", "thinking_output", "cached_input"}
_OFF_PEAK_KEYS = {"input", "output", "cached_input", "thinking_output", "during", "peak"}

# The clock the platforms' time-of-day prices follow: Beijing time (China has no DST).
BEIJING = timezone(timedelta(hours=8), "Beijing")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The hosts each listed provider answers on in mainland China: a provider under
# another name (a `[providers.NAME]` table) pointed at one uses that provider's entries.
MAINLAND_HOSTS = {
    "dashscope.aliyuncs.com": "qwen",
    "api.siliconflow.cn": "siliconflow",
    "open.bigmodel.cn": "zhipu",
    "api.moonshot.cn": "moonshot",
    "api.deepseek.com": "deepseek",
}


@dataclass(frozen=True)
class Tier:
    """Prices for calls of at most `up_to` input tokens (None: the entry's own)."""

    up_to: int
    input: Decimal
    output: Decimal
    thinking_output: Decimal | None = None
    cached_input: Decimal | None = None


@dataclass(frozen=True)
class Window:
    """Some days of the week (0 is Monday) and a span of Beijing time on each, in
    minutes from midnight: from `start` up to, not including, `end`."""

    days: frozenset[int]
    start: int
    end: int
    text: str

    def holds(self, moment: datetime) -> bool:
        local = moment.astimezone(BEIJING)
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


@dataclass(frozen=True)
class OffPeak:
    """Lower prices by the time of day: in the `during` windows, or outside the `peak`
    ones (exactly one of the two is given)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    thinking_output: Decimal | None = None
    during: tuple[Window, ...] = ()
    peak: tuple[Window, ...] = ()

    def applies(self, moment: datetime) -> bool:
        if self.during:
            return any(w.holds(moment) for w in self.during)
        return not any(w.holds(moment) for w in self.peak)


@dataclass(frozen=True)
class Entry:
    """One model's yuan prices per million tokens, where they were read and when."""

    provider: str
    model: str
    input: Decimal
    output: Decimal
    source: str
    read: date
    aliases: tuple[str, ...] = ()
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    thinking_output: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    free: bool = False
    note: str = ""
    off_peak: OffPeak | None = None
    # From the user's own list (USER_LIST_NAME) rather than the bundled one.
    users: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.source).hostname or self.source

    @property
    def list_name(self) -> str:
        return "your cny list" if self.users else "cny list"

    @property
    def price_source(self) -> str:
        """What the ledger records as this entry's `price_source`."""
        return self._source(self.list_name)

    def off_peak_at(self, moment: datetime | None) -> OffPeak | None:
        """The off-peak prices when a call made at `moment` gets them, else None."""
        if self.off_peak is None or moment is None or not self.off_peak.applies(moment):
            return None
        return self.off_peak

    def price_source_at(self, moment: datetime | None) -> str:
        """`price_source`, saying so when the call got the off-peak prices."""
        if self.off_peak_at(moment) is None:
            return self.price_source
        return self._source(f"{self.list_name} (off-peak)")

    def _source(self, label: str) -> str:
        return f"{label}: {self.model} ({self.host}, read {self.read.isoformat()})"

    def tier_for(self, input_tokens: int) -> Tier | None:
        for tier in self.tiers:
            if input_tokens <= tier.up_to:
                return tier
        return self.tiers[-1] if self.tiers else None


@dataclass(frozen=True)
class PriceList:
    read: date
    entries: tuple[Entry, ...]
    _index: dict[tuple[str, str], Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {
            (entry.provider, name.lower()): entry
            for entry in self.entries
            for name in (entry.model, *entry.aliases)
        }
        object.__setattr__(self, "_index", index)

    def find(self, provider: str, model: str) -> Entry | None:
        """The entry for `model` (or one of its aliases), case-insensitively."""
        return self._index.get((provider, model.lower()))

    def providers(self) -> set[str]:
        return {e.provider for e in self.entries}

    def of(self, provider: str) -> list[Entry]:
        return [e for e in self.entries if e.provider == provider]

    def under(self, own: PriceList) -> PriceList:
        """This list with `own`'s entries laid over it, name by name: a model or alias
        `own` lists is priced from `own`; an entry here keeps the names `own` leaves."""
        taken = set(own._index)
        kept = []
        for entry in self.entries:
            names = [
                n for n in (entry.model, *entry.aliases) if (entry.provider, n.lower()) not in taken
            ]
            if names:
                kept.append(replace(entry, model=names[0], aliases=tuple(names[1:])))
        return PriceList(min(self.read, own.read), (*own.entries, *kept))


# -------------------------------------------------------------------- pricing


def quote(entry: Entry, usage: Usage, when: datetime | None = None) -> Decimal:
    """The exact cost of `usage` at `entry`'s prices, in yuan, for a call made at `when`
    (the time decides only where the entry has off-peak prices)."""
    # The prices that replace the entry's own for this call: its hour's, else its tier's
    # (an entry has one or the other, never both). What they leave out is the entry's.
    special: OffPeak | Tier | None = entry.off_peak_at(when) or entry.tier_for(usage.input_tokens)
    input_price = special.input if special else entry.input
    output_price = special.output if special else entry.output
    cached_price = _first(
        special.cached_input if special else None, entry.cached_input, input_price
    )
    thinking_price = _first(special.thinking_output if special else None, entry.thinking_output)
    if thinking_price is not None and usage.reasoning_tokens > 0:
        output_price = thinking_price
    write_price = _first(entry.cache_write, input_price)
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    total = (
        uncached * input_price
        + usage.cached_input_tokens * cached_price
        + usage.cache_write_tokens * write_price
        + usage.output_tokens * output_price
    )
    return total / MILLION


def _first(*prices: Decimal | None) -> Any:
    """The first price given (a tier's, then the entry's, then the fallback)."""
    return next((p for p in prices if p is not None), None)


def list_provider(name: str, base_url: str | None, listed: set[str]) -> str | None:
    """Whose entries price provider `name`: its own, else those of the host it calls."""
    if name in listed or name in MAINLAND_HOSTS.values():
        return name
    host = urlsplit(base_url).hostname if base_url else None
    return MAINLAND_HOSTS.get(host or "")


def stale_days(read: date, today: date) -> int | None:
    """How old a list read on `read` is on `today`, when older than STALE_AFTER."""
    age = (today - read).days
    return age if age > STALE_AFTER.days else None


def stale_message(read: date, age: int) -> str:
    return (
        f"The yuan price list was read on {read.isoformat()}, {age} days ago; "
        "its prices may have changed since. Check the source pages "
        "(tokencli models --json gives each source_url), "
        'set [prices."PROVIDER:MODEL"] in the config where a price changed '
        f"(or refresh the entries in a {USER_LIST_NAME} of your own beside it), "
        "or update tokencli for a newer list."
    )


# -------------------------------------------------------------------- loading


# A price list is a few hundred entries: anything much larger is not one (a device, a
# stray dump) and is refused rather than read whole.
MAX_LIST_BYTES = 4 * 2**20

_loaded: dict[tuple[Path, Path | None], PriceList] = {}  # (list, config dir) → list


def bundled(path: Path | None = None) -> PriceList:
    """The bundled list, read and checked once per process."""
    return active(None, path=path)


def active(
    config_dir: Path | None, cache_dir: Path | None = None, path: Path | None = None
) -> PriceList:
    """The bundled list with the user's own (in `config_dir`, when there is one) laid
    over it; read and checked once per process, parsed once per change of the file when
    there is a `cache_dir` to keep the parse in."""
    path = path or LIST_PATH
    key = (path, config_dir)
    if key not in _loaded:  # (looked for once: every priced call of a process asks)
        prices = _read(path, users=False, cache_dir=cache_dir)
        own_path = own_list(config_dir)
        if own_path is not None:
            prices = prices.under(_read(own_path, users=True, cache_dir=cache_dir))
        _loaded[key] = prices
    return _loaded[key]


def own_list(config_dir: Path | None) -> Path | None:
    """The user's own list in `config_dir`, when there is one (a FIFO or a directory
    of that name is not one, and is never read)."""
    if config_dir is None:
        return None
    own_path = config_dir / USER_LIST_NAME
    return own_path if own_path.is_file() else None


def _read(path: Path, *, users: bool, cache_dir: Path | None = None) -> PriceList:
    try:
        with path.open("rb") as handle:
            stamp = _stamp(os.fstat(handle.fileno()))
            kept = _kept_list(cache_dir, path, stamp, users=users)
            if kept is not None:
                return kept
            data = handle.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise damaged(path, f"cannot be read ({exc.strerror or exc})", users=users) from None
    if len(data) > MAX_LIST_BYTES:
        raise damaged(path, f"it is larger than {MAX_LIST_BYTES // 2**20} MiB", users=users)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise damaged(path, "it is not UTF-8 text", users=users) from None
    raw = _toml(text, path, users=users)
    prices = _checked(raw, path, users=users)
    _keep_raw(cache_dir, path, stamp, raw)
    return prices


# --------------------------------------------------------- the parse, kept on disk
#
# TOML is parsed in pure Python: the bundled list takes ~8 ms, paid by every process
# that prices a yuan call. Its parse is kept as JSON (~1 ms to load) beside the price
# index, keyed by the file's size and modification time, and is checked again like a
# fresh parse, so a stale or edited copy can never price a call the file would not.


def _stamp(st: os.stat_result) -> str:
    return f"{FORMAT}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _cache_file(cache_dir: Path, path: Path) -> Path:
    digest = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return cache_dir / f"prices-cny-{digest[:16]}.json"


def _kept_list(cache_dir: Path | None, path: Path, stamp: str, *, users: bool) -> PriceList | None:
    """The list from its kept parse, when that is of this very file and passes the checks."""
    if cache_dir is None:
        return None
    try:
        kept = json.loads(_cache_file(cache_dir, path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(kept, dict) or kept.get("stamp") != stamp:
        return None
    raw = kept.get("raw")
    if not isinstance(raw, dict):
        return None
    try:
        prices = _parse(raw)
    except _Bad:
        return None  # a damaged copy: the file itself is read
    return _as_users(prices) if users else prices


def _keep_raw(cache_dir: Path | None, path: Path, stamp: str, raw: Mapping[str, Any]) -> None:
    if cache_dir is None:
        return
    target = _cache_file(cache_dir, path)
    try:
        text = json.dumps({"stamp": stamp, "raw": raw}, default=_json_value)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, target)
    except (OSError, TypeError, ValueError):
        pass  # a read-only cache directory only costs speed


def _json_value(value: Any) -> str:
    """TOML's dates as the text the checks read back (a date-time stands for its day)."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)  # a TOML time: not kept, parsed each time


def damaged(path: Path | str, what: str, *, users: bool = False) -> ConfigError:
    if users:
        return ConfigError(
            f"Your yuan price list {path} is invalid: {what}.",
            "Fix it (docs/prices-cny.md describes the format) or move it away; "
            "the bundled list is used without it.",
        )
    return ConfigError(
        f"The bundled yuan price list {path} is damaged: {what}.",
        "Reinstall tokencli, or fix the file (docs/prices-cny.md describes its format); "
        '[prices."PROVIDER:MODEL"] in the config still prices any model meanwhile.',
    )


def parse(text: str, path: Path | str = "prices-cny.toml", *, users: bool = False) -> PriceList:
    """A price list from its TOML text; one ConfigError naming what is wrong."""
    return _checked(_toml(text, path, users=users), path, users=users)


def _toml(text: str, path: Path | str, *, users: bool) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise damaged(path, f"it is not valid TOML ({exc})", users=users) from None
    except (ValueError, RecursionError) as exc:
        raise damaged(path, f"it is not valid TOML ({type(exc).__name__})", users=users) from None


def _checked(raw: Mapping[str, Any], path: Path | str, *, users: bool) -> PriceList:
    try:
        prices = _parse(raw)
    except _Bad as bad:
        raise damaged(path, str(bad), users=users) from None
    return _as_users(prices) if users else prices


def _as_users(prices: PriceList) -> PriceList:
    return PriceList(prices.read, tuple(replace(e, users=True) for e in prices.entries))


class _Bad(Exception):
    pass


def _parse(raw: Mapping[str, Any]) -> PriceList:
    _no_unknown(raw, _TOP_KEYS, "the top level")
    if raw.get("format") != FORMAT or isinstance(raw.get("format"), bool):
        raise _Bad(
            f"format must be {FORMAT}, not {raw.get('format')!r} "
            "(a newer tokencli may read a newer format)"
        )
    if raw.get("currency") != CURRENCY:
        raise _Bad(f'currency must be "{CURRENCY}", not {raw.get("currency")!r}')
    read = _date(raw.get("read"), "read")
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise _Bad("it has no [[models]] entries")
    entries = []
    seen: dict[tuple[str, str], str] = {}
    for n, item in enumerate(models, 1):
        entry = _entry(item, n)
        where = f"models[{n}] ({entry.provider}:{entry.model})"
        for name in (entry.model, *entry.aliases):
            key = (entry.provider, name.lower())
            if key in seen:
                raise _Bad(f"{where} repeats {name!r}, already listed by {seen[key]}")
            seen[key] = where
        entries.append(entry)
    return PriceList(read, tuple(entries))


def _entry(item: Any, n: int) -> Entry:
    where = f"models[{n}]"
    if not isinstance(item, dict):
        raise _Bad(f"{where} is not a table")
    provider = _text(item.get("provider"), f"{where}.provider")
    model = _text(item.get("model"), f"{where}.model")
    where = f"models[{n}] ({provider}:{model})"
    _no_unknown(item, _ENTRY_KEYS, where)
    free = item.get("free", False)
    if not isinstance(free, bool):
        raise _Bad(f"{where}.free must be true or false, not {free!r}")
    prices = {k: _price(item[k], f"{where}.{k}") for k in _PRICE_KEYS if k in item}
    for key in ("input", "output"):
        if key not in prices:
            if not free:
                raise _Bad(f"{where} has no {key} price (free models say free = true)")
            prices[key] = Decimal(0)
    if free and any(prices.values()):
        raise _Bad(f"{where} says free = true but has a price above zero")
    aliases = item.get("aliases", [])
    if not isinstance(aliases, list):
        raise _Bad(f"{where}.aliases must be a list of model names")
    alias_names = tuple(_text(a, f"{where}.aliases") for a in aliases)
    tiers = item.get("tiers", [])
    if not isinstance(tiers, list):
        raise _Bad(f"{where}.tiers must be a list of tables")
    parsed_tiers = tuple(_tier(t, f"{where}.tiers[{i}]") for i, t in enumerate(tiers, 1))
    for a, b in pairwise(parsed_tiers):
        if b.up_to <= a.up_to:
            raise _Bad(f"{where}.tiers must ascend by up_to ({b.up_to} follows {a.up_to})")
    note = item.get("note", "")
    if not isinstance(note, str):
        raise _Bad(f"{where}.note must be text")
    off_peak = None
    if "off_peak" in item:
        if parsed_tiers or free or "cache_write" in prices:
            # Each would need off-peak prices of its own; no platform has published any.
            raise _Bad(f"{where}.off_peak cannot go with tiers, free or cache_write")
        off_peak = _off_peak(item["off_peak"], f"{where}.off_peak")
    return Entry(
        provider=provider,
        model=model,
        aliases=alias_names,
        tiers=parsed_tiers,
        free=free,
        source=_url(item.get("source"), f"{where}.source"),
        read=_date(item.get("read"), f"{where}.read"),
        note=note,
        input=prices["input"],
        output=prices["output"],
        cached_input=prices.get("cached_input"),
        cache_write=prices.get("cache_write"),
        thinking_output=prices.get("thinking_output"),
        off_peak=off_peak,
    )


def _off_peak(item: Any, where: str) -> OffPeak:
    if not isinstance(item, dict):
        raise _Bad(f"{where} must be a table")
    _no_unknown(item, _OFF_PEAK_KEYS, where)
    for key in ("input", "output"):
        if key not in item:
            raise _Bad(f"{where} has no {key} price")
    prices = {
        k: _price(item[k], f"{where}.{k}") for k in _OFF_PEAK_KEYS - {"during", "peak"} if k in item
    }
    if ("during" in item) == ("peak" in item):
        raise _Bad(f"{where} needs either during (its hours) or peak (the hours it is not)")
    key = "during" if "during" in item else "peak"
    texts = item[key]
    if not isinstance(texts, list) or not texts:
        raise _Bad(f'{where}.{key} must be a list of windows like "Mon-Fri 09:00-12:00"')
    windows = tuple(window(t, f"{where}.{key}") for t in texts)
    return OffPeak(
        input=prices["input"],
        output=prices["output"],
        cached_input=prices.get("cached_input"),
        thinking_output=prices.get("thinking_output"),
        during=windows if key == "during" else (),
        peak=windows if key == "peak" else (),
    )


def window(text: Any, where: str = "window") -> Window:
    """`[DAYS ]HH:MM-HH:MM` in Beijing time: DAYS is a day (`Sat`) or a run of days
    (`Mon-Fri`, `Fri-Mon`), every day when left out; the span ends before midnight
    or at 24:00 and after it starts."""
    if not isinstance(text, str):
        raise _Bad(f'{where} must hold text like "Mon-Fri 09:00-12:00", not {text!r}')
    parts = text.split()
    if len(parts) not in (1, 2):
        raise _Bad(f"{where} has {text!r}: write [DAYS ]HH:MM-HH:MM, e.g. Mon-Fri 09:00-12:00")
    days = _days(parts[0], where, text) if len(parts) == 2 else frozenset(range(7))
    span = parts[-1].split("-")
    if len(span) != 2:
        raise _Bad(f"{where} has {text!r}: the hours must be HH:MM-HH:MM")
    start, end = (_minute(t, where, text) for t in span)
    if not start < end:
        raise _Bad(
            f"{where} has {text!r}: the span must end after it starts (split one past midnight in two)"
        )
    return Window(days, start, end, " ".join(parts))


def _days(text: str, where: str, whole: str) -> frozenset[int]:
    ends = text.lower().split("-")
    if len(ends) > 2 or any(day not in _DAYS for day in ends):
        raise _Bad(f"{where} has {whole!r}: days are Mon..Sun, one or a run like Mon-Fri")
    first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
    return frozenset((first + n) % 7 for n in range((last - first) % 7 + 1))


def _minute(text: str, where: str, whole: str) -> int:
    hour, _, minute = text.partition(":")
    if not (len(hour) == 2 and len(minute) == 2 and (hour + minute).isascii()):
        raise _Bad(f"{where} has {whole!r}: times are HH:MM")
    if not (hour + minute).isdigit() or int(minute) > 59 or int(hour) * 60 + int(minute) > 24 * 60:
        raise _Bad(f"{where} has {whole!r}: times run from 00:00 to 24:00")
    return int(hour) * 60 + int(minute)


def _tier(item: Any, where: str) -> Tier:
    if not isinstance(item, dict):
        raise _Bad(f"{where} is not a table")
    _no_unknown(item, _TIER_KEYS, where)
    up_to = item.get("up_to")
    if isinstance(up_to, str) and up_to.isascii() and up_to.isdigit():
        up_to = int(up_to)
    if not isinstance(up_to, int) or isinstance(up_to, bool) or up_to < 1:
        raise _Bad(f"{where}.up_to must be a whole number of input tokens ≥ 1, not {up_to!r}")
    for key in ("input", "output"):
        if key not in item:
            raise _Bad(f"{where} has no {key} price")
    prices = {k: _price(item[k], f"{where}.{k}") for k in _TIER_KEYS - {"up_to"} if k in item}
    return Tier(up_to=up_to, **prices)


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(table) - known)
    if unknown:
        raise _Bad(f"{where} has unknown keys {', '.join(unknown)}")


def _price(value: Any, where: str) -> Decimal:
    """A price per million tokens: a TOML number or a numeric string, exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Bad(f"{where} must be a number ≥ 0, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"{where} must be a finite number ≥ 0, not {value!r}")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise _Bad(f"{where} must be a number ≥ 0, not {value!r}") from None
    if not price.is_finite() or price < 0:
        raise _Bad(f"{where} must be a finite number ≥ 0, not {value!r}")
    if price > MAX_PRICE:
        raise _Bad(f"{where} is {value!r}: no model costs more than {MAX_PRICE} yuan per 1M tokens")
    return price + 0  # -0 → 0


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{where} must be a non-empty string, not {value!r}")
    text = value.strip()
    if visible(text) != text:
        # A name or address reaches the ledger and the terminal: a control or bidi
        # character in it can only be a mistake, or a trap.
        raise _Bad(f"{where} holds a control character: {visible(text)}")
    return text


def _url(value: Any, where: str) -> str:
    text = _text(value, where)
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise _Bad(f"{where} must be the https:// address of the official price page")
    return text


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _Bad(f"{where} must be a date (YYYY-MM-DD), not {value!r}")
