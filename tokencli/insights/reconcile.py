"""`reconcile`: the ledger's cost per UTC day and model against the provider's own books.

Sources, per provider: OpenAI's and Anthropic's organization cost and usage APIs (admin
keys), OpenRouter's per-key usage this month, and for prepaid providers the live balance
snapshots `refill status` keeps (what the balance fell between two of them, plus refills
recorded in between, is what the provider charged). A line whose difference is over the
tolerance is flagged with its likely cause: calls made outside tokencli (the provider
counted more tokens), a price change the table missed (same tokens, higher cost), cache or
batch discounts (same tokens, lower cost).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..ledger.refills import Snapshot
    from ..providers.billing import Billed
    from ..settings.model import Settings

MIN_DIFF = Decimal("0.01")  # differences below a cent are rounding
_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class Line(NamedTuple):
    provider: str
    day: date | None  # None: the whole month (OpenRouter's key usage)
    model: str | None  # None: every model (balance snapshots, key usage)
    currency: str
    ledger: Decimal
    billed: Decimal
    ledger_tokens: int | None
    billed_tokens: int | None
    flagged: bool
    cause: str | None

    @property
    def difference(self) -> Decimal:
        return self.billed - self.ledger


class Source(NamedTuple):
    provider: str
    method: str  # what was read, in words
    status: str  # ok | unavailable | no key | unsupported
    reason: str | None
    lines: list[Line]


class Reconciliation(NamedTuple):
    month: str
    start: datetime
    end: datetime
    tolerance: Decimal  # a share: 0.05
    sources: list[Source]


def base_model(name: str) -> str:
    """`gpt-4o-mini-2024-07-18` and `claude-sonnet-4-20250514` without their dates."""
    return _DATED.sub("", name.strip())


def over(ledger: Decimal, billed: Decimal, tolerance: Decimal) -> bool:
    return abs(billed - ledger) > max(MIN_DIFF, tolerance * max(abs(ledger), abs(billed)))


def cause(line: Line, tolerance: Decimal) -> str:
    more = line.billed > line.ledger
    if line.billed_tokens is not None and line.ledger_tokens is not None:
        if line.ledger == 0 and line.ledger_tokens == 0:
            return "calls made outside tokencli (the ledger has none)"
        if line.billed == 0 and line.billed_tokens == 0:
            return "nothing billed: free credits, or calls made with another account's key"
        same = not over(Decimal(line.ledger_tokens), Decimal(line.billed_tokens), tolerance)
        if same:
            return (
                "a price change the price table missed"
                if more
                else "cache or batch discounts the ledger did not price"
            )
        if line.billed_tokens > line.ledger_tokens:
            return "calls made outside tokencli (the provider counted more tokens)"
        return "calls the provider did not bill (failed or free), or another account"
    if more:
        return "calls made outside tokencli, or a price change the table missed"
    return "cache or batch discounts, grants, or a top-up not recorded"


def _line(
    provider: str,
    day: date | None,
    model: str | None,
    currency: str,
    ledger: Decimal,
    billed: Decimal,
    ledger_tokens: int | None,
    billed_tokens: int | None,
    tolerance: Decimal,
) -> Line:
    line = Line(
        provider, day, model, currency, ledger, billed, ledger_tokens, billed_tokens, False, None
    )
    if over(ledger, billed, tolerance):
        line = line._replace(flagged=True, cause=cause(line, tolerance))
    return line


# ------------------------------------------------------------------ the ledger's side


def ledger_by_day(
    ledger: Ledger, settings: Settings, provider: str, start: datetime, end: datetime, currency: str
) -> tuple[dict[tuple[date, str], tuple[Decimal, int]], set[str]]:
    """{(UTC day, model): (cost in `currency`, tokens)} and currencies with no rate."""
    from ..ledger.reconcile import daily_model_sums

    out: dict[tuple[date, str], tuple[Decimal, int]] = {}
    missing: set[str] = set()
    for day, model, spent, tokens in daily_model_sums(ledger, provider, start, end):
        total = Decimal(0)
        for code, amount in spent.items():
            if not code:
                continue
            converted = settings.currencies.convert(amount, code, currency)
            if converted is None:
                missing.add(code)
            else:
                total += converted
        cost, count = out.get((day, model), (Decimal(0), 0))
        out[(day, model)] = (cost + total, count + tokens)
    return out, missing


def compare(
    provider: str,
    currency: str,
    ledger: dict[tuple[date, str], tuple[Decimal, int]],
    billed: Sequence[Billed],
    tolerance: Decimal,
) -> list[Line]:
    """Lines per (day, model), models matched without their date suffixes."""
    theirs: dict[tuple[date, str], tuple[Decimal, int | None]] = {}
    for row in billed:
        key = (row.day, base_model(row.model))
        cost, tokens = theirs.get(key, (Decimal(0), None))
        if row.tokens is not None:
            tokens = (tokens or 0) + row.tokens
        theirs[key] = (cost + row.cost, tokens)
    ours: dict[tuple[date, str], tuple[Decimal, int]] = {}
    for (day, model), (cost, tokens) in ledger.items():
        key = (day, base_model(model))
        old_cost, old_tokens = ours.get(key, (Decimal(0), 0))
        ours[key] = (old_cost + cost, old_tokens + tokens)
    with_tokens = any(t is not None for _, t in theirs.values())
    lines = []
    for day, model in sorted(set(theirs) | set(ours)):
        cost, tokens = ours.get((day, model), (Decimal(0), 0))
        their_cost, their_tokens = theirs.get(
            (day, model), (Decimal(0), 0 if with_tokens else None)
        )
        lines.append(
            _line(provider, day, model, currency, cost, their_cost, tokens, their_tokens, tolerance)
        )
    return lines


def by_snapshots(
    ledger: Ledger,
    settings: Settings,
    provider: str,
    start: datetime,
    end: datetime,
    tolerance: Decimal,
) -> list[Line]:
    """Between consecutive snapshots: what the balance fell, plus refills recorded in
    between, against what tokencli metered."""
    from ..ledger.refills import metered, refills, snapshots

    snaps = sorted(
        (
            s
            for s in snapshots(ledger, provider, readable=True, limit=10_000)
            if start <= s.ts < end
        ),
        key=lambda s: s.ts,
    )
    added = refills(ledger, provider)
    lines = []
    by_currency: dict[str, list[Snapshot]] = {}
    for snap in snaps:
        if snap.currency and not snap.detail.get("key_limit"):
            by_currency.setdefault(snap.currency, []).append(snap)
    for currency, series in sorted(by_currency.items()):
        pairs = list(pairwise(series))
        spends = metered(ledger, provider, [(a.ts, b.ts) for a, b in pairs])
        for (a, b), got in zip(pairs, spends, strict=True):
            topped = sum(
                (
                    r.amount
                    for r in added
                    if a.ts < r.ts <= b.ts and r.unit == currency and not r.grant
                ),
                Decimal(0),
            )
            assert a.balance is not None and b.balance is not None  # readable=True
            charged = a.balance - b.balance + topped
            ours = Decimal(0)
            for code, amount in got.money().items():
                ours += settings.currencies.convert(amount, code, currency) or Decimal(0)
            lines.append(
                _line(provider, b.ts.date(), None, currency, ours, charged, None, None, tolerance)
            )
    return lines


# ------------------------------------------------------------------ every source


def month_bounds(first: date, now: datetime) -> tuple[datetime, datetime]:
    """The month in UTC days (the providers' buckets), ending now if it has not ended."""
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, min(following, now.replace(microsecond=0) + timedelta(seconds=1))


def admin_key(settings: Settings, provider: str) -> str | None:
    from ..settings.keys import KeyStore

    env = settings.env.get(f"{provider.upper()}_ADMIN_KEY", "").strip()
    if env:
        return env
    return KeyStore(settings.paths.keys).get(f"{provider}-admin")


def org_kind(settings: Settings, provider: str) -> str | None:
    from urllib.parse import urlsplit

    config = settings.providers.get(provider)
    if config is None:
        return None
    host = urlsplit(config.base_url or "").hostname or ""
    if host == "api.openai.com" or provider == "openai":
        return "openai"
    if host == "api.anthropic.com" or provider == "anthropic":
        return "anthropic"
    return None


def reconcile(
    ledger: Ledger,
    settings: Settings,
    month: date,
    now: datetime,
    *,
    provider: str | None,
    tolerance: Decimal,
    names: Sequence[str],
) -> Reconciliation:
    """Every provider in `names` against its own books for `month`."""
    import httpx

    from ..providers.balances import balance_kind
    from ..providers.billing import BillingError, anthropic_billed, openai_billed

    start, end = month_bounds(month, now)
    sources = []
    with httpx.Client(follow_redirects=False) as client:
        for name in names:
            config = settings.provider(name)
            kind = org_kind(settings, name)
            if kind is not None:
                method = (
                    "OpenAI organization costs and usage"
                    if kind == "openai"
                    else "Anthropic cost and usage reports"
                )
                key = admin_key(settings, name)
                if key is None:
                    reason = (
                        f"needs an admin key: set {name.upper()}_ADMIN_KEY or run"
                        f" 'tokencli keys set {name}-admin'"
                    )
                    sources.append(Source(name, method, "no key", reason, []))
                    continue
                fetch = openai_billed if kind == "openai" else anthropic_billed
                try:
                    billed = fetch(client, config.base_url or "", key, start, end)
                except BillingError as exc:
                    sources.append(Source(name, method, "unavailable", str(exc), []))
                    continue
                ours, missing = ledger_by_day(ledger, settings, name, start, end, "USD")
                lines = compare(name, "USD", ours, billed, tolerance)
                left_out = (
                    f"the ledger's spend in {', '.join(sorted(missing))} is left out (no rate"
                    " into USD under [currency] rates)"
                    if missing
                    else None
                )
                sources.append(Source(name, method, "ok", left_out, lines))
            elif balance_kind(config) == "openrouter" and month == now.date().replace(day=1):
                sources.append(_openrouter(client, ledger, settings, name, start, end, tolerance))
            elif balance_kind(config) is not None:
                lines = by_snapshots(ledger, settings, name, start, end, tolerance)
                note = (
                    None
                    if lines
                    else "fewer than two balance snapshots this month ('refill status' takes them)"
                )
                sources.append(Source(name, "balance snapshots", "ok", note, lines))
            else:
                sources.append(
                    Source(name, "", "unsupported", "no accounting API tokencli can read", [])
                )
    return Reconciliation(month.strftime("%Y-%m"), start, end, tolerance, sources)


def _openrouter(
    client: Any,
    ledger: Ledger,
    settings: Settings,
    name: str,
    start: datetime,
    end: datetime,
    tolerance: Decimal,
) -> Source:
    """This month: the key's `usage_monthly` (USD credits) against the month's ledger."""
    from ..providers.balances import _ask, plan
    from ..settings.keys import KeyStore, resolve_key

    method = "OpenRouter key usage this month"
    config = settings.provider(name)
    found = resolve_key(config, settings.env, KeyStore(settings.paths.keys))
    query = plan(config, found.value if found else None)
    snap = _ask(query, end, 10.0, client, keep_usage=True)[0]
    if snap.error is not None and "usage_monthly" not in snap.detail:
        return Source(name, method, "no key" if found is None else "unavailable", snap.error, [])
    if "usage_monthly" not in snap.detail:
        return Source(name, method, "unavailable", "the key's answer has no usage_monthly", [])
    ours, _ = ledger_by_day(ledger, settings, name, start, end, "USD")
    spent = sum((cost for cost, _ in ours.values()), Decimal(0))
    tokens = sum(count for _, count in ours.values())
    billed = Decimal(str(snap.detail["usage_monthly"]))
    line = _line(name, None, None, "USD", spent, billed, tokens, None, tolerance)
    return Source(name, method, "ok", None, [line])
