"""`refill status` and `refill check`: per provider, the ledger's balance, the live one,
the drift between them, the runway, and money that left an account outside tokencli.

Live balances are asked for (`providers.balances`) for the providers that publish
one and have refills or a key (or the one named), and every answer, figure or
failure, is kept as a snapshot. Comparing a provider's new snapshot with its last
readable one against what tokencli metered between them finds spend elsewhere
(another program, a leaked key) and top-ups nobody recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from ..ledger.refills import TOKENS, Snapshot
from ..money import format_money
from .refills import PoolBalance, Runway

if TYPE_CHECKING:
    from ..alerts import Alert
    from ..ledger import Ledger
    from ..providers.balances import Query
    from ..settings.model import Settings

# A live balance may fall this much more than tokencli metered before it is news:
# the larger of an absolute amount and a share of what was metered (providers round).
TOLERANCE_ABS = Decimal("0.50")
TOLERANCE_SHARE = Decimal("0.05")


class Row(NamedTuple):
    """One provider in one unit (a currency, or tokens)."""

    provider: str
    unit: str
    ledger: PoolBalance | None  # None: no refills recorded in this unit
    live: Snapshot | None  # this run's figure; None: none asked or none in this unit
    error: str | None  # why the live balance is unavailable (asked, failed)
    runway: Runway | None

    @property
    def balance(self) -> Decimal | None:
        """The figure that counts: the live one when read, else the ledger's."""
        if self.live is not None and self.live.balance is not None:
            return self.live.balance
        return self.ledger.balance if self.ledger is not None else None

    @property
    def basis(self) -> str:
        if self.live is not None and self.live.balance is not None:
            return "live"
        return "ledger" if self.ledger is not None else "none"

    @property
    def drift(self) -> Decimal | None:
        """Live minus ledger, when both are known."""
        if self.live is None or self.live.balance is None or self.ledger is None:
            return None
        return self.live.balance - self.ledger.balance


class Outside(NamedTuple):
    """Between two snapshots, a balance that moved unlike what tokencli metered."""

    provider: str
    currency: str
    since: datetime
    fell: Decimal  # positive: the balance fell by this; negative: it rose
    metered: Decimal
    kind: str  # "spend" (fell more than metered) | "topup" (rose, nothing recorded)

    @property
    def amount(self) -> Decimal:
        """The spend outside tokencli, or the top-up not recorded."""
        return self.fell - self.metered if self.kind == "spend" else self.metered - self.fell


class Status(NamedTuple):
    as_of: datetime
    rows: list[Row]
    outside: list[Outside]
    live_asked: bool  # False with --offline
    offline: bool  # every live query failed to connect: figures are the ledger's


def money_text(amount: Decimal, unit: str) -> str:
    if unit == TOKENS:
        return f"{int(amount):,} tokens"
    return format_money(amount, unit, places=2)


# ------------------------------------------------------------------ building it


def _queries(settings: Settings, names: Sequence[str]) -> list[Query]:
    from ..providers.balances import balance_kind, plan
    from ..settings.keys import KeyStore, resolve_key

    store = KeyStore(settings.paths.keys)
    out = []
    for name in names:
        config = settings.providers.get(name)
        if config is None or balance_kind(config) is None:
            continue
        found = resolve_key(config, settings.env, store)
        management = None
        if balance_kind(config) == "openrouter":
            management = settings.env.get("OPENROUTER_MANAGEMENT_KEY") or store.get(
                f"{name}-management"
            )
        out.append(plan(config, found.value if found else None, management))
    return out


def build_status(
    ledger: Ledger,
    settings: Settings,
    now: datetime,
    tz: tzinfo,
    *,
    provider: str | None = None,
    live: bool = True,
    timeout: float | None = None,
) -> Status:
    from ..ledger import refills as table
    from ..providers.balances import TIMEOUT_S, balance_kind, fetch_balances
    from ..settings.keys import KeyStore, resolve_key
    from .refills import ledger_balances, runway

    pools = ledger_balances(ledger, settings.currencies, now, provider)
    names = {p.provider for p in pools}
    if provider is not None:
        names.add(provider)
    else:
        store = KeyStore(settings.paths.keys)
        for name, config in settings.providers.items():
            if balance_kind(config) and resolve_key(config, settings.env, store):
                names.add(name)
    snaps: list[Snapshot] = []
    previous: dict[tuple[str, str], Snapshot] = {}
    if live:
        queries = _queries(settings, sorted(names))
        for q in queries:
            for s in table.snapshots(ledger, q.provider, readable=True, limit=20):
                previous.setdefault((s.provider, s.currency or ""), s)
        snaps = fetch_balances(queries, now, timeout=timeout or TIMEOUT_S)
        table.save_snapshots(ledger, snaps)
    failures = [s for s in snaps if s.error is not None]
    offline = (
        bool(snaps)
        and len(failures) == len(snaps)
        and all(
            s.error and s.error.startswith(("could not connect", "no answer")) for s in failures
        )
    )
    rows: list[Row] = []
    by_key = {(p.provider, p.unit): p for p in pools}
    keys = set(by_key) | {(s.provider, s.currency) for s in snaps if s.currency}
    errors = {s.provider: s.error for s in failures}
    for name in sorted(names):
        units = sorted(u for p, u in keys if p == name)
        if not units and name in errors:
            rows.append(Row(name, "", None, None, errors[name], None))
            continue
        for unit in units:
            pool = by_key.get((name, unit))
            snap = next((s for s in snaps if s.provider == name and s.currency == unit), None)
            row = Row(name, unit, pool, snap, errors.get(name), None)
            if row.balance is not None:
                row = row._replace(
                    runway=runway(ledger, settings.currencies, row.balance, unit, name, now, tz)
                )
            rows.append(row)
    outside = _outside(ledger, settings, snaps, previous, now)
    return Status(now, rows, outside, live, offline)


def _outside(
    ledger: Ledger,
    settings: Settings,
    snaps: Sequence[Snapshot],
    previous: Mapping[tuple[str, str], Snapshot],
    now: datetime,
) -> list[Outside]:
    from ..ledger.refills import metered, refills

    out = []
    for snap in snaps:
        if snap.balance is None or not snap.currency or snap.detail.get("key_limit"):
            continue
        before = previous.get((snap.provider, snap.currency))
        if before is None or before.balance is None or before.ts >= snap.ts:
            continue
        got = metered(ledger, snap.provider, [(before.ts, snap.ts)])[0]
        spent = Decimal(0)
        judged = True
        for currency, amount in got.money().items():
            converted = settings.currencies.convert(amount, currency, snap.currency)
            if converted is None:
                judged = False  # spend in a currency with no rate: no verdict either way
            else:
                spent += converted
        if not judged:
            continue
        fell = before.balance - snap.balance
        tolerance = max(TOLERANCE_ABS, spent * TOLERANCE_SHARE)
        if fell - spent > tolerance:
            out.append(Outside(snap.provider, snap.currency, before.ts, fell, spent, "spend"))
        elif spent - fell > tolerance:
            recorded = any(
                before.ts <= r.ts <= snap.ts and r.unit == snap.currency
                for r in refills(ledger, snap.provider)
            )
            if not recorded:
                out.append(Outside(snap.provider, snap.currency, before.ts, fell, spent, "topup"))
    return out


def since_text(when: datetime, now: datetime, tz: tzinfo) -> str:
    """ "yesterday 09:00", "today 09:00", "2026-12-01 09:00"."""
    local, today = when.astimezone(tz), now.astimezone(tz).date()
    days = (today - local.date()).days
    prefix = {0: "today", 1: "yesterday"}.get(days, local.date().isoformat())
    return f"{prefix} {local:%H:%M}"


def outside_sentence(o: Outside, now: datetime, tz: tzinfo) -> str:
    name = _display(o.provider)
    if o.kind == "spend":
        return (
            f"{name}'s balance fell {money_text(o.fell, o.currency)} since "
            f"{since_text(o.since, now, tz)}; tokencli metered {money_text(o.metered, o.currency)}."
            " Another program, or a leaked key, is spending."
        )
    amount = o.amount.quantize(Decimal("0.01"))
    return (
        f"{name}'s balance rose by about {money_text(amount, o.currency)} since "
        f"{since_text(o.since, now, tz)} and no refill was recorded. Record it with: "
        f"tokencli refill add {o.provider} {amount} --currency {o.currency}"
    )


def _display(provider: str) -> str:
    names = {
        "deepseek": "DeepSeek",
        "moonshot": "Moonshot",
        "siliconflow": "SiliconFlow",
        "openrouter": "OpenRouter",
        "novita": "Novita",
    }
    return names.get(provider, provider)


# ------------------------------------------------------------------ thresholds


class Threshold(NamedTuple):
    text: str  # as given: "50CNY", "1M", "7d"
    kind: str  # money | tokens | days
    amount: Decimal
    currency: str = ""


class Finding(NamedTuple):
    """A row checked against the threshold: below it, or fine."""

    row: Row
    below: bool
    value: Decimal | None  # what was compared (money or tokens, or days of runway)


def days_left(row: Row, today: date) -> Decimal | None:
    if row.runway is None or row.runway.runs_out is None:
        return None
    return Decimal((row.runway.runs_out - today).days)


def judge(
    rows: Sequence[Row], threshold: Threshold, settings: Settings, today: date
) -> tuple[list[Finding], list[Row]]:
    """(rows compared with the threshold, rows the check depends on but cannot read)."""
    findings: list[Finding] = []
    unreadable: list[Row] = []
    foreign: list[Row] = []
    for row in rows:
        if row.balance is None:
            unreadable.append(row)
            continue
        if threshold.kind == "days":
            left = days_left(row, today)
            findings.append(Finding(row, left is not None and left < threshold.amount, left))
        elif threshold.kind == "tokens":
            if row.unit == TOKENS:
                findings.append(Finding(row, row.balance < threshold.amount, row.balance))
        elif row.unit != TOKENS:
            value = settings.currencies.convert(row.balance, row.unit, threshold.currency)
            if value is None:
                foreign.append(row)
            else:
                findings.append(Finding(row, value < threshold.amount, value))
    # A balance in a currency with no rate counts only when it is the provider's only one.
    judged = {f.row.provider for f in findings}
    unreadable += [r for r in foreign if r.provider not in judged]
    return findings, unreadable


def topup_sentence(f: Finding, threshold: Threshold, today: date) -> str:
    row = f.row
    assert row.balance is not None
    name = _display(row.provider)
    left = money_text(row.balance, row.unit)
    text = f"Top up {name}: {left} left"
    days = days_left(row, today)
    if days is not None and row.runway is not None:
        text += f", {int(days)} days at this pace (runs out {row.runway.runs_out})"
    text += f"; below {threshold.text}."
    if row.runway is not None:
        need = row.runway.topup(row.balance)
        if need > 0:
            text += f" {money_text(need, row.unit)} covers the next 30 days at the forecast's pace."
    return text


_TOKEN_SUFFIXES = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000, "m": 1_000_000}


def parse_tokens(text: str) -> Decimal | None:
    """`1000000`, `500k`, `1M`, `2.5M` → a whole number of tokens; None if not one."""
    from ..money import parse_amount

    body = text.strip().replace("_", "")
    suffix = body[-1:] if body[-1:] in _TOKEN_SUFFIXES else ""
    try:
        value = parse_amount(body[: len(body) - len(suffix)]) * _TOKEN_SUFFIXES[suffix]
    except ValueError:
        return None
    return value if value == value.to_integral_value() else None


def parse_threshold(text: str) -> Threshold:
    """`50CNY`, `20 USD`, `1M` (tokens), `7d` (days of runway); UsageError otherwise."""
    import re

    from ..errors import UsageError
    from ..money import parse_amount

    body = text.strip()
    bad = UsageError(
        f"--threshold {text!r} is not an amount with a unit.",
        "e.g. --threshold 50CNY, --threshold 20USD, --threshold 1M (tokens) or"
        " --threshold 7d (days of runway).",
    )
    money = re.fullmatch(r"([0-9][0-9_.,]*)\s*([A-Za-z]{3})", body)
    days = re.fullmatch(r"([0-9]+)\s*d", body)
    if days:
        value = Decimal(days.group(1))
        if value <= 0:
            raise bad
        return Threshold(body, "days", value)
    if money:
        try:
            value = parse_amount(money.group(1).replace(",", "").replace("_", ""))
        except ValueError:
            raise bad from None
        if value <= 0:
            raise bad
        return Threshold(body, "money", value, money.group(2).upper())
    tokens = parse_tokens(body) if body else None
    if tokens is None or tokens <= 0:
        raise bad
    return Threshold(body, "tokens", tokens)


def outside_alert(o: Outside, now: datetime, tz: tzinfo) -> Alert:
    """The `refill` alert for money that left (or arrived in) an account outside tokencli."""
    from ..alerts import Alert
    from ..ledger import format_ts
    from ..money import decimal_str

    spend = o.kind == "spend"
    return Alert(
        kind="refill",
        key=f"refill-{o.kind}:{o.provider}:{o.currency}:{format_ts(now)}",
        title=(
            f"{o.provider}: spend outside tokencli"
            if spend
            else f"{o.provider}: a top-up was not recorded"
        ),
        message=outside_sentence(o, now, tz),
        level="critical" if spend else "info",
        fields={
            "provider": o.provider,
            "unit": o.currency,
            "value": decimal_str(o.fell),
            "metered": decimal_str(o.metered),
            "since": format_ts(o.since),
        },
    )


def below_alert(f: Finding, limit: Threshold, today: date) -> Alert:
    """The `refill` alert for a balance below `limit`: once per provider, unit, threshold and day."""
    from ..alerts import Alert
    from ..money import decimal_str

    row = f.row
    return Alert(
        kind="refill",
        key=f"refill:{row.provider}:{row.unit}:{limit.text}:{today.isoformat()}",
        title=f"Top up {row.provider}: below {limit.text}",
        message=topup_sentence(f, limit, today),
        fields={
            "provider": row.provider,
            "unit": row.unit,
            "value": decimal_str(row.balance),
            "threshold": limit.text,
            "runs_out": str(row.runway.runs_out) if row.runway and row.runway.runs_out else None,
        },
    )
