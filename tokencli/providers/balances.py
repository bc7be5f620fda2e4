"""Live balances from the providers that publish one (reference/providers.md §12).

Each provider's endpoint answers its own shape; `PARSERS` turns each into
`Figure`s (one per currency). `fetch_balances` asks every provider at once, on
threads, with a short timeout, and returns one `Snapshot` per figure, or one
with its `error` when the query failed: a timeout, a refused key, an HTML page,
an answer without the expected fields. A failure is never a zero balance. Keys
are sent in the Authorization header only and never appear in what is returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..ledger.refills import Snapshot
from ..money import parse_amount
from .registry import ProviderConfig, host_currency

TIMEOUT_S = 5.0
NOVITA_UNIT = Decimal(10000)  # Novita counts in 1/10000 USD


class Figure(NamedTuple):
    currency: str
    balance: Decimal
    granted: Decimal | None = None
    paid: Decimal | None = None
    detail: Mapping[str, Any] = {}


class BalanceError(Exception):
    """The endpoint answered, but not with a balance."""


class Endpoint(NamedTuple):
    kind: str  # deepseek | moonshot | siliconflow | openrouter | novita
    url: str
    path: str  # what is shown and saved: "GET /user/balance"


def _money(data: Mapping[str, Any], name: str) -> Decimal:
    if name not in data or data[name] is None:
        raise BalanceError(f"the answer has no {name}")
    try:
        return parse_amount(data[name])
    except ValueError:
        raise BalanceError(f"{name} is not a number: {str(data[name])[:40]!r}") from None


def _object(data: Any, name: str) -> Mapping[str, Any]:
    value = data.get(name) if isinstance(data, Mapping) else None
    if not isinstance(value, Mapping):
        raise BalanceError(f"the answer has no {name} object")
    return value


def parse_deepseek(data: Any, currency: str) -> list[Figure]:
    """`{"is_available", "balance_infos": [{"currency", "total_balance", "granted_balance",
    "topped_up_balance"}]}`: strings in current docs, numbers in older ones."""
    infos = data.get("balance_infos") if isinstance(data, Mapping) else None
    if not isinstance(infos, list):
        raise BalanceError("the answer has no balance_infos list")
    out = []
    for info in infos:
        code = info.get("currency") if isinstance(info, Mapping) else None
        if not isinstance(code, str) or not (len(code) == 3 and code.isascii() and code.isalpha()):
            raise BalanceError("a balance_infos entry has no currency code")
        out.append(
            Figure(
                info["currency"].upper(),
                _money(info, "total_balance"),
                _money(info, "granted_balance"),
                _money(info, "topped_up_balance"),
                {"is_available": bool(data.get("is_available", True))},
            )
        )
    return out


def parse_moonshot(data: Any, currency: str) -> list[Figure]:
    """`{"data": {"available_balance", "voucher_balance", "cash_balance"}}`; cash may be
    negative (a debt); no currency field: CNY on .cn, USD on .ai."""
    body = _object(data, "data")
    return [
        Figure(
            currency,
            _money(body, "available_balance"),
            _money(body, "voucher_balance"),
            _money(body, "cash_balance"),
        )
    ]


def parse_siliconflow(data: Any, currency: str) -> list[Figure]:
    """`{"data": {"balance" (gift), "chargeBalance" (paid), "totalBalance"}}`, strings."""
    body = _object(data, "data")
    return [
        Figure(
            currency,
            _money(body, "totalBalance"),
            _money(body, "balance"),
            _money(body, "chargeBalance"),
        )
    ]


def parse_openrouter_key(data: Any, currency: str) -> list[Figure]:
    """`/api/v1/key`: `data.limit_remaining` is the key's own cap (null: no cap, so no
    balance to read here: the account's needs `/api/v1/credits` and a management key)."""
    body = _object(data, "data")
    detail = {
        k: str(body[k])
        for k in ("limit", "usage", "usage_daily", "usage_weekly", "usage_monthly")
        if body.get(k) is not None
    }
    if body.get("limit_remaining") is None:
        raise BalanceError(
            "this key has no spending limit, so /api/v1/key shows no balance; the account's"
            " needs a management key (tokencli keys set openrouter-management)"
        )
    return [Figure("USD", _money(body, "limit_remaining"), detail={"key_limit": True, **detail})]


def parse_openrouter_credits(data: Any, currency: str) -> list[Figure]:
    """`/api/v1/credits`: `data.{total_credits, total_usage}`; balance is their difference."""
    body = _object(data, "data")
    credits, usage = _money(body, "total_credits"), _money(body, "total_usage")
    return [
        Figure(
            "USD",
            credits - usage,
            detail={"total_credits": str(credits), "total_usage": str(usage)},
        )
    ]


def parse_novita(data: Any, currency: str) -> list[Figure]:
    """`{"availableBalance", "cashBalance", "creditLimit", ...}`: strings of 1/10000 USD."""
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    if not isinstance(data, Mapping):
        raise BalanceError("the answer is not an object")
    available = _money(data, "availableBalance") / NOVITA_UNIT
    cash = _money(data, "cashBalance") / NOVITA_UNIT if "cashBalance" in data else None
    return [Figure("USD", available, None, cash)]


PARSERS: dict[str, Callable[[Any, str], list[Figure]]] = {
    "deepseek": parse_deepseek,
    "moonshot": parse_moonshot,
    "siliconflow": parse_siliconflow,
    "openrouter": parse_openrouter_key,
    "openrouter-credits": parse_openrouter_credits,
    "novita": parse_novita,
}
KINDS = ("deepseek", "moonshot", "siliconflow", "openrouter", "novita")
_HOSTS = {
    "api.deepseek.com": "deepseek",
    "api.moonshot.ai": "moonshot",
    "api.moonshot.cn": "moonshot",
    "api.siliconflow.cn": "siliconflow",
    "api.siliconflow.com": "siliconflow",
    "openrouter.ai": "openrouter",
    "api.novita.ai": "novita",
}


def balance_kind(config: ProviderConfig) -> str | None:
    """Which balance endpoint a provider has: by its host, else by its name."""
    host = urlsplit(config.base_url or "").hostname or ""
    if host in _HOSTS:
        return _HOSTS[host]
    return config.name if config.name in KINDS else None


def endpoint(config: ProviderConfig, kind: str, management: bool = False) -> Endpoint:
    base = (config.base_url or "").rstrip("/")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    if kind == "deepseek":
        root = base.removesuffix("/v1")
        return Endpoint(kind, root + "/user/balance", "GET /user/balance")
    if kind == "moonshot":
        return Endpoint(kind, base + "/users/me/balance", "GET /v1/users/me/balance")
    if kind == "siliconflow":
        return Endpoint(kind, base + "/user/info", "GET /v1/user/info")
    if kind == "openrouter":
        if management:
            return Endpoint("openrouter-credits", base + "/credits", "GET /api/v1/credits")
        return Endpoint(kind, base + "/key", "GET /api/v1/key")
    path = "/openapi/v1/billing/balance/detail"
    return Endpoint("novita", origin + path, "GET " + path)


class Query(NamedTuple):
    """One provider to ask: its config, the key to send, and where to ask."""

    provider: str
    endpoint: Endpoint
    key: str | None
    currency: str  # when the answer names none (Moonshot, SiliconFlow)
    problem: str | None = None  # why it cannot be asked (no key, plain http)


def plan(config: ProviderConfig, key: str | None, management_key: str | None = None) -> Query:
    """How to ask `config` for its balance (a Query with `problem` when it cannot be)."""
    from .http import is_loopback

    kind = balance_kind(config) or ""
    use = management_key if kind == "openrouter" and management_key else key
    point = endpoint(config, kind, management=use is not None and use == management_key)
    currency = host_currency(config.base_url) or config.currency
    problem = None
    parts = urlsplit(point.url)
    if use is None:
        var = config.api_key_env[0] if config.api_key_env else None
        how = f"set {var} or run 'tokencli keys set {config.name}'" if var else "run keys set"
        problem = f"no API key ({how})"
    elif parts.scheme != "https" and not (
        parts.scheme == "http" and (config.allow_http or is_loopback(parts.hostname or ""))
    ):
        problem = f"refusing plain http to {parts.hostname}: it would expose the key"
    return Query(config.name, point, use, currency, problem)


MAX_ANSWER = 1 << 20  # a balance is a few hundred bytes; more is not a balance


def read_bounded(
    client: Any,
    url: str,
    headers: Mapping[str, str],
    timeout: float,
    params: Any = None,
    limit: int = MAX_ANSWER,
) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET; BalanceError past `limit` bytes."""
    with client.stream("GET", url, headers=headers, params=params, timeout=timeout) as response:
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise BalanceError(f"the answer is larger than {limit >> 20} MiB")
            chunks.append(chunk)
        kind = response.headers.get("content-type", "").split(";")[0].lower()
        return response.status_code, kind, b"".join(chunks)


def _ask(
    query: Query, now: datetime, timeout: float, client: Any, *, keep_usage: bool = False
) -> list[Snapshot]:
    """One provider's snapshots (or one with the reason it has none). With `keep_usage`,
    OpenRouter's key usage is kept in `detail` even when the key has no limit."""
    import httpx

    from ..redact import redact

    def failed(reason: str) -> list[Snapshot]:
        text = redact(reason, [query.key] if query.key else [])
        return [
            Snapshot(now, query.provider, query.endpoint.path, None, None, None, None, text, {})
        ]

    if query.problem:
        return failed(query.problem)
    try:
        status, content_type, content = read_bounded(
            client,
            query.endpoint.url,
            {"Authorization": f"Bearer {query.key}", "Accept": "application/json"},
            timeout,
        )
    except httpx.TimeoutException:
        return failed(f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return failed(f"could not connect ({type(exc).__name__})")
    except BalanceError as exc:
        return failed(str(exc))
    if status in (401, 403):
        return failed(f"the key was refused (HTTP {status})")
    if status >= 400:
        return failed(f"the endpoint answered HTTP {status}")
    try:
        data = json.loads(content, parse_float=Decimal)  # floats stay exact
    except ValueError:
        html = "html" in content_type or content.lstrip()[:1] == b"<"
        what = "an HTML page" if html else "something else"
        return failed(f"the endpoint answered {what}, not JSON (HTTP {status})")
    try:
        figures = PARSERS[query.endpoint.kind](data, query.currency)
    except BalanceError as exc:
        body = data.get("data") if isinstance(data, Mapping) else None
        if keep_usage and isinstance(body, Mapping) and body.get("usage_monthly") is not None:
            usage = {"usage_monthly": str(body["usage_monthly"])}
            return [
                Snapshot(
                    now,
                    query.provider,
                    query.endpoint.path,
                    "USD",
                    None,
                    None,
                    None,
                    str(exc),
                    usage,
                )
            ]
        return failed(str(exc))
    if not figures:
        return failed("the answer holds no balance")
    return [
        Snapshot(
            now,
            query.provider,
            query.endpoint.path,
            f.currency,
            f.balance,
            f.granted,
            f.paid,
            None,
            dict(f.detail),
        )
        for f in figures
    ]


def fetch_balances(
    queries: Sequence[Query], now: datetime, *, timeout: float = TIMEOUT_S
) -> list[Snapshot]:
    """Every query at once; snapshots in the order of `queries`."""
    if not queries:
        return []
    import httpx

    with (
        httpx.Client(follow_redirects=False) as client,
        ThreadPoolExecutor(max_workers=min(8, len(queries))) as pool,
    ):
        results = pool.map(lambda q: _ask(q, now, timeout, client), queries)
        return [s for found in results for s in found]
