"""The providers' own accounting, per UTC day and model, for `reconcile`.

- OpenAI (admin key): `GET /v1/organization/costs?group_by=line_item` (amounts in
  `results[].amount.{value,currency}`, the model in `line_item`, "gpt-4o-2024-08-06,
  input") and `GET /v1/organization/usage/completions?group_by=model` (tokens);
- Anthropic (admin key): `GET /v1/organizations/cost_report?group_by[]=description`
  (`amount` in cents, a decimal string) and `/v1/organizations/usage_report/messages
  ?group_by[]=model` (tokens).

Both answer pages of daily buckets, `{"data": [...], "has_more", "next_page"}`; every
page is read (`page=` the cursor), up to `MAX_PAGES`. Failures raise `BillingError`
with one sentence; keys never appear in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from ..money import parse_amount

TIMEOUT_S = 20.0
MAX_PAGE_BYTES = 16 << 20
MAX_PAGES = 50  # pages of 31 daily buckets: far more than a month holds
# Beyond what any organization's day could hold: a value past these is not believed.
MAX_TOKENS = 10**15
MAX_AMOUNT = Decimal(10**12)
ANTHROPIC_VERSION = "2023-06-01"


class BillingError(Exception):
    """The accounting API could not be read; the message is one sentence, no key."""


class Billed(NamedTuple):
    """What the provider says one model cost (and used) on one UTC day."""

    day: date
    model: str
    cost: Decimal = Decimal(0)
    tokens: int | None = None  # input + output, when the usage API was read


def _pages(
    client: Any, url: str, params: Mapping[str, Any], headers: Mapping[str, str], key: str
) -> Iterator[Mapping[str, Any]]:
    """Every bucket of every page."""
    import httpx

    from ..redact import redact
    from .balances import BalanceError, read_bounded

    page: str | None = None
    for _ in range(MAX_PAGES):
        query = dict(params)
        if page:
            query["page"] = page
        try:
            status, kind, content = read_bounded(
                client, url, headers, TIMEOUT_S, query, MAX_PAGE_BYTES
            )
        except httpx.TimeoutException:
            raise BillingError(f"no answer within {TIMEOUT_S:g} s") from None
        except httpx.HTTPError as exc:
            raise BillingError(f"could not connect ({type(exc).__name__})") from None
        except BalanceError as exc:
            raise BillingError(str(exc)) from None
        if status in (401, 403):
            raise BillingError(f"the admin key was refused (HTTP {status})")
        if status >= 400:
            raise BillingError(f"the API answered HTTP {status}")
        try:
            body = json.loads(content, parse_float=Decimal)
        except ValueError:
            html = "html" in kind or content.lstrip()[:1] == b"<"
            what = "an HTML page" if html else "something else"
            raise BillingError(f"the API answered {what}, not JSON") from None
        if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
            raise BillingError(redact("the answer has no data list", [key]))
        for bucket in body["data"]:
            if isinstance(bucket, Mapping):
                yield bucket
        page = body.get("next_page") if body.get("has_more") else None
        if not page:
            return
    raise BillingError(f"more than {MAX_PAGES} pages")


def _day(bucket: Mapping[str, Any]) -> date:
    """The UTC day a bucket starts: epoch seconds (OpenAI) or an ISO time (Anthropic)."""
    start = bucket.get("start_time", bucket.get("starting_at"))
    try:
        if isinstance(start, int | Decimal) and not isinstance(start, bool):
            return datetime.fromtimestamp(int(start), UTC).date()
        if isinstance(start, str):
            when = datetime.fromisoformat(start.replace("Z", "+00:00"))
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).date()
    except (ValueError, OverflowError, OSError, ArithmeticError):
        raise BillingError(f"a bucket's start time is not a time: {str(start)[:40]!r}") from None
    raise BillingError("a bucket has no start time")


def _count(result: Mapping[str, Any], name: str) -> int:
    """A token count from a usage result: absent is 0; anything but a whole number ≥ 0 is
    a BillingError (a count no API sends must not be summed as if it were one)."""
    value = result.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BillingError(f"{name} is not a count: {str(value)[:40]!r}")
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()):
        raise BillingError(f"{name} is not a count: {str(value)[:40]!r}")
    if not 0 <= value <= MAX_TOKENS:
        raise BillingError(f"{name} is not a count: {str(value)[:40]!r}")
    return int(value)


def _amount(value: Any) -> Decimal:
    """A cost from an accounting API, or a BillingError (never NaN, infinite or absurd)."""
    try:
        amount = parse_amount(value)
    except ValueError:
        raise BillingError(f"a cost is not a number: {str(value)[:40]!r}") from None
    if abs(amount) > MAX_AMOUNT:
        raise BillingError(f"a cost is not a plausible amount: {str(value)[:40]!r}")
    return amount


def _results(bucket: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = bucket.get("results")
    return [r for r in results if isinstance(r, Mapping)] if isinstance(results, list) else []


def _merge(rows: list[Billed], tokens: Mapping[tuple[date, str], int] | None) -> list[Billed]:
    by: dict[tuple[date, str], Billed] = {}
    for row in rows:
        old = by.get((row.day, row.model))
        by[(row.day, row.model)] = row if old is None else old._replace(cost=old.cost + row.cost)
    if tokens is not None:
        for (day, model), count in tokens.items():
            old = by.get((day, model)) or Billed(day, model)
            by[(day, model)] = old._replace(tokens=count)
        by = {k: v if v.tokens is not None else v._replace(tokens=0) for k, v in by.items()}
    return sorted(by.values())


def openai_billed(
    client: Any, base_url: str, key: str, start: datetime, end: datetime
) -> list[Billed]:
    """OpenAI's costs (USD) and completion tokens per UTC day and model in [start, end)."""
    headers = {"Authorization": f"Bearer {key}"}
    params = {
        "start_time": int(start.timestamp()),
        "end_time": int(end.timestamp()),
        "bucket_width": "1d",
        "limit": 31,
    }
    base = base_url.rstrip("/")
    rows = []
    for bucket in _pages(
        client, base + "/organization/costs", {**params, "group_by": "line_item"}, headers, key
    ):
        for result in _results(bucket):
            amount = result.get("amount")
            if not isinstance(amount, Mapping):
                continue
            if str(amount.get("currency", "usd")).lower() != "usd":
                raise BillingError(f"a cost is in {amount.get('currency')!r}, not usd")
            item = str(result.get("line_item") or "")
            model = item.split(",")[0].strip() or "(other)"
            rows.append(Billed(_day(bucket), model, _amount(amount.get("value", 0))))
    tokens: dict[tuple[date, str], int] = {}
    for bucket in _pages(
        client,
        base + "/organization/usage/completions",
        {**params, "group_by": "model"},
        headers,
        key,
    ):
        for result in _results(bucket):
            model = str(result.get("model") or "(other)")
            count = _count(result, "input_tokens") + _count(result, "output_tokens")
            day = _day(bucket)
            tokens[(day, model)] = tokens.get((day, model), 0) + count
    return _merge(rows, tokens)


def anthropic_billed(
    client: Any, base_url: str, key: str, start: datetime, end: datetime
) -> list[Billed]:
    """Anthropic's cost report (cents → USD) and message tokens per UTC day and model."""
    headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    base = base_url.rstrip("/").removesuffix("/v1")
    when = {
        "starting_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ending_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bucket_width": "1d",
    }
    rows = []
    for bucket in _pages(
        client,
        base + "/v1/organizations/cost_report",
        {**when, "group_by[]": "description"},
        headers,
        key,
    ):
        for result in _results(bucket):
            if str(result.get("currency", "USD")).upper() != "USD":
                raise BillingError(f"a cost is in {result.get('currency')!r}, not USD")
            cents = _amount(result.get("amount", "0"))
            model = str(result.get("model") or "(other)")
            rows.append(Billed(_day(bucket), model, cents / 100))
    tokens: dict[tuple[date, str], int] = {}
    for bucket in _pages(
        client,
        base + "/v1/organizations/usage_report/messages",
        {**when, "group_by[]": "model"},
        headers,
        key,
    ):
        for result in _results(bucket):
            names = ("uncached_input_tokens", "cache_read_input_tokens", "output_tokens")
            count = sum(_count(result, name) for name in names)
            creation = result.get("cache_creation")
            if isinstance(creation, Mapping):  # {ephemeral_5m_input_tokens: …, …}
                count += sum(_count(creation, name) for name in creation)
            day, model = _day(bucket), str(result.get("model") or "(other)")
            tokens[(day, model)] = tokens.get((day, model), 0) + count
    return _merge(rows, tokens)
