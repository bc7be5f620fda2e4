"""The ledger's file formats: JSON lines (a backup another ledger imports), CSV for
spreadsheets, and Prometheus textfile counters for node_exporter.

Rows are tuples in `IMPORT_COLUMNS` order (see `ledger.transfer`). A JSON line
is one call: `{"v": 1, "id": ..., "ts": ..., ...}` with null fields left out,
money as an exact decimal string (`"cost": "0.000123"`), and tags, params
and extra as objects. `decode_jsonl` checks every field's type, so a bad
line is refused with its number instead of landing in the ledger.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..money import PICOS_PER_UNIT, to_picos
from ..redact import redact
from ..window import EARLIEST, LATEST
from .store import IMPORT_COLUMNS, STATUSES, format_ts

VERSION = 1
FINISHED = tuple(s for s in STATUSES if s != "pending")

# How each column is written and checked.
_REQUIRED = ("id", "ts", "host", "provider", "model", "status")
_INTS = {"pid", "prompt_version", "duration_ms", "ttft_ms"}
_TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
)
_OBJECTS = {"tags", "params", "extra"}  # stored as JSON text, written as objects
_INDEX = {name: i for i, name in enumerate(IMPORT_COLUMNS)}
_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
# Ledger times compare as text: a call's time lies in [EARLIEST, LATEST), as periods do.
_TS_MIN, _TS_MAX = format_ts(EARLIEST), format_ts(LATEST)
# The start of every line `encode_jsonl` writes: the id is readable without parsing.
EXPORTED_ID = re.compile(r'^\{"v":1,"id":"([^"\\]+)"')
# Bounds that keep every value and every rollup sum inside SQLite's 64-bit integers.
MAX_COUNT = 2**53  # tokens, milliseconds, pids
MAX_PICOS = 10**18  # a million currency units on one call


class FormatError(ValueError):
    """A line that is not a call this version can import (its reason, without the line number)."""


# ------------------------------------------------------------------ JSON lines


def picos_text(picos: int) -> str:
    """Exact decimal text of an amount in picos: 1230000 → '0.00000123'."""
    sign = "-" if picos < 0 else ""
    whole, fraction = divmod(abs(picos), PICOS_PER_UNIT)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:012d}".rstrip("0")


_ENCODE_PLAN = tuple(
    (i, "cost" if name == "cost_pico" else name, name)
    for i, name in enumerate(IMPORT_COLUMNS)
    if name not in _OBJECTS
)
_OBJECT_COLUMNS = tuple((i, name) for i, name in enumerate(IMPORT_COLUMNS) if name in _OBJECTS)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_jsonl(row: Sequence[Any]) -> str:
    """One call as one JSON line (without the newline).

    One C-encoded dict for the plain fields; tags, params and extra are
    already JSON text in the ledger and are spliced in as they are.
    """
    record: dict[str, Any] = {"v": VERSION}
    for i, key, column in _ENCODE_PLAN:
        value = row[i]
        if value is not None:
            if column == "cost_pico":
                value = picos_text(value)
            elif column == "stream":
                value = bool(value)
            record[key] = value
    text = _encode(record)
    objects = [f',"{name}":{row[i]}' for i, name in _OBJECT_COLUMNS if row[i] is not None]
    return text[:-1] + "".join(objects) + "}" if objects else text


_KEYS = tuple("cost" if c == "cost_pico" else c for c in IMPORT_COLUMNS)
_COST = _INDEX["cost_pico"]
_TS_I = _INDEX["ts"]
_STATUS_I = _INDEX["status"]
_STREAM_I = _INDEX["stream"]
_NUMBER_I = tuple(_INDEX[c] for c in (*_TOKENS, *_INTS))
_OBJECT_I = tuple(_INDEX[c] for c in _OBJECTS)
_TEXT_I = tuple(
    i
    for c, i in _INDEX.items()
    if c not in _TOKENS
    and c not in _INTS
    and c not in _OBJECTS
    and c not in ("cost_pico", "stream")
)
_REQUIRED_I = tuple(_INDEX[c] for c in _REQUIRED)
_DEFAULT_ZERO_I = tuple(_INDEX[c] for c in _TOKENS[:-1])
_PLAIN_COST = re.compile(r"^(\d+)(?:\.(\d{1,12}))?$")
_FINISHED = frozenset(FINISHED)
_TOTAL_I = _INDEX["total_tokens"]
_INPUT_I, _OUTPUT_I = _INDEX["input_tokens"], _INDEX["output_tokens"]
_TAGS_I = _INDEX["tags"]
_ERROR_I = _INDEX["error_message"]
_dumps = json.dumps


def _no_constant(name: str) -> Any:
    raise FormatError(f"has {name}, which is not a number JSON allows")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant)


def decode_jsonl(line: str) -> list[Any]:
    """One JSON line back into a row for `Ledger.import_rows`; FormatError says what is wrong.

    The common case (a line `ledger export` wrote) is checked with a few
    tight loops; anything unusual goes through `_decode_checked`, which
    accepts the same lines and finds the words for what is wrong.
    """
    try:
        row = _decode(line)
    except RecursionError:  # JSON nested thousands deep: no call looks like that
        raise FormatError("is JSON nested too deeply to be a call") from None
    if row[_ERROR_I]:  # a backup from elsewhere: no credential enters this ledger
        row[_ERROR_I] = redact(row[_ERROR_I])
    return row


def _decode(line: str) -> list[Any]:
    if "\\u" in line:  # escapes may hide lone surrogates, which SQLite cannot store
        return _decode_checked(line)
    try:
        record = _loads(line)
    except (ValueError, RecursionError):
        return _decode_checked(line)
    if type(record) is not dict or record.get("v") != VERSION:
        return _decode_checked(line)
    get = record.get
    row: list[Any] = [get(key) for key in _KEYS]
    for i in _TEXT_I:
        if row[i] is not None and type(row[i]) is not str:
            return _decode_checked(line)
    for i in _NUMBER_I:
        value = row[i]
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_COUNT):
            return _decode_checked(line)
    for i in _REQUIRED_I:
        if row[i] is None:
            return _decode_checked(line)
    _default_tokens(row)
    ts, cost, stream = row[_TS_I], row[_COST], row[_STREAM_I]
    if not _ts_ok(ts) or row[_STATUS_I] not in _FINISHED or not row[0].strip():
        return _decode_checked(line)
    if cost is not None:
        plain = _PLAIN_COST.match(cost) if type(cost) is str else None
        if plain is None or len(plain.group(1)) > 6:
            return _decode_checked(line)
        whole, fraction = plain.groups()
        row[_COST] = int(whole) * PICOS_PER_UNIT + (int(fraction.ljust(12, "0")) if fraction else 0)
    if stream is not None:
        if type(stream) is not bool:
            return _decode_checked(line)
        row[_STREAM_I] = int(stream)
    for i in _OBJECT_I:
        value = row[i]
        if value is not None:
            if type(value) is not dict:
                return _decode_checked(line)
            if i == _TAGS_I:
                if not all(type(v) is str for v in value.values()):
                    return _decode_checked(line)
                row[i] = _dumps(value, ensure_ascii=False, sort_keys=True) if value else None
            else:
                row[i] = _dumps(value, sort_keys=True) if value else None
    return row


def _decode_checked(line: str) -> list[Any]:
    """Every field checked one by one, with a FormatError naming what is wrong."""
    try:
        record = _loads(line)
    except FormatError:
        raise
    except ValueError as exc:
        raise FormatError(f"is not JSON ({getattr(exc, 'msg', exc)})") from None
    except RecursionError:
        raise FormatError("is JSON nested too deeply to be a call") from None
    if not isinstance(record, dict):
        raise FormatError("is not a JSON object")
    version = record.get("v")
    if version != VERSION:
        if version is None:
            raise FormatError('has no "v" field: it was not written by tokencli ledger export')
        raise FormatError(f"has format version {version!r}; this tokencli reads version 1")
    row: list[Any] = [None] * len(IMPORT_COLUMNS)
    for name, value in record.items():
        if name == "v":
            continue
        if name == "cost":
            row[_INDEX["cost_pico"]] = _cost(value)
            continue
        i = _INDEX.get(name)
        if i is None or name == "cost_pico":
            continue  # a field from a newer version: not ours to keep
        if value is None:
            continue
        row[i] = _checked(name, value)
    for name in _REQUIRED:
        if row[_INDEX[name]] is None:
            raise FormatError(f'has no "{name}"')
    _default_tokens(row)
    return row


def _default_tokens(row: list[Any]) -> None:
    """Counts left out are zero; a total left out is input plus output."""
    for i in _DEFAULT_ZERO_I:
        if row[i] is None:
            row[i] = 0
    if row[_TOTAL_I] is None:
        row[_TOTAL_I] = row[_INPUT_I] + row[_OUTPUT_I]


def _checked(name: str, value: Any) -> Any:
    if name in _TOKENS or name in _INTS:
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            raise FormatError(f'has "{name}": {value!r}, not a whole number from 0 to 2^53')
        return value
    if name in _OBJECTS:
        if not isinstance(value, dict):
            raise FormatError(f'has "{name}" that is not an object')
        if name == "tags":
            if not all(isinstance(v, str) for v in value.values()):
                raise FormatError('has "tags" whose values are not all text')
            for text in (*value, *value.values()):
                _unicode(name, text)
            return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
        return json.dumps(value, sort_keys=True) if value else None
    if name == "stream":
        if not isinstance(value, bool):
            raise FormatError(f'has "stream": {value!r}, not true or false')
        return int(value)
    if not isinstance(value, str):
        raise FormatError(f'has "{name}": {value!r}, not text')
    _unicode(name, value)
    if name == "ts":
        return _timestamp(value)
    if name == "status" and value not in FINISHED:
        raise FormatError(f'has "status": {value!r}, not one of {", ".join(FINISHED)}')
    if name == "id" and not value.strip():
        raise FormatError('has an empty "id"')
    return value


def _unicode(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f'has "{name}" with a lone surrogate, not valid Unicode text') from None
    # SQLite's text functions (json_extract on tags, grouping in reports) stop at a NUL, so
    # a label holding one would be shown and grouped as something else. Texts keep theirs.
    if "\x00" in text and name not in TEXT_COLUMNS:
        raise FormatError(f'has "{name}" with a NUL character, which no label can hold')


def _ts_ok(ts: str) -> bool:
    """A time as `ledger export` writes it, a real one, within the periods' range."""
    if not (_TS.match(ts) and _TS_MIN <= ts < _TS_MAX):
        return False
    try:
        datetime.fromisoformat(ts[:-1])
    except ValueError:  # 2026-13-45
        return False
    return True


def _timestamp(text: str) -> str:
    if _ts_ok(text):
        return text
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f'has "ts": {text!r}, not an ISO time') from None
    if when.tzinfo is None:
        raise FormatError(f'has "ts": {text!r} without a time zone (ledger times are UTC)')
    try:
        utc: datetime | None = when.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        # The range every period option reads (`window`): a call dated year 1 or 9999
        # would be out of reach of every report, and of datetime in some zones.
        raise FormatError(
            f'has "ts": {text!r}, outside the years {EARLIEST.year} to {LATEST.year - 1}'
        )
    return format_ts(utc)


def _cost(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FormatError(f'has "cost": {value!r}, not a decimal amount')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise FormatError(f'has "cost": {value!r}, not a decimal amount') from None
    if not amount.is_finite():
        raise FormatError(f'has "cost": {value!r}, not a decimal amount')
    picos = to_picos(amount)
    if abs(picos) > MAX_PICOS:
        raise FormatError(f'has "cost": {value!r}, more than a million on one call')
    return picos


# ------------------------------------------------------------------------ CSV

CSV_COLUMNS = (
    "id",
    "ts",
    "host",
    "provider",
    "model",
    "response_model",
    "alias",
    "project",
    "tags",
    "prompt_name",
    "prompt_version",
    *_TOKENS,
    "usage_source",
    "cost",
    "currency",
    "price_source",
    "duration_ms",
    "ttft_ms",
    "status",
    "error_kind",
    "error_message",
    "request_id",
    "finish_reason",
    "stream",
    "batch_id",
    "batch_item",
)
TEXT_COLUMNS = ("system_text", "prompt_text", "response_text")


def csv_rows(rows: Iterable[Sequence[Any]], *, with_text: bool) -> Iterator[str]:
    """The header, then one CSV line per call (each with its line ending), written by
    the one CSV writer (`csvout`: formula-looking text neutralised, numbers kept)."""
    from ..csvout import CsvWriter

    columns = CSV_COLUMNS + (TEXT_COLUMNS if with_text else ())
    picks = [_INDEX["cost_pico" if c == "cost" else c] for c in columns]
    writer = CsvWriter()
    yield writer.line(columns)
    for row in rows:
        yield writer.line([_cell(c, row[i]) for c, i in zip(columns, picks, strict=True)])


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column == "cost":
        from ..csvout import Number

        return Number(picos_text(value))
    if column == "stream":
        return "true" if value else "false"
    return value


# ----------------------------------------------------------------- Prometheus


def prometheus_text(totals: Iterable[Any], *, now: datetime) -> str:
    """Counters for node_exporter's textfile collector, from all-time rollup totals."""
    totals = list(totals)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], str]]):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")

    def model(t: Any) -> dict[str, str]:
        return {"provider": t.provider, "model": t.model}

    # Totals come per currency too: these counters sum over it.
    calls: Counter[tuple[str, str, str]] = Counter()
    tokens: Counter[tuple[str, str, str]] = Counter()
    unpriced: Counter[tuple[str, str]] = Counter()
    for t in totals:
        for status, n in (
            ("ok", t.ok),
            ("error", t.errors),
            ("blocked", t.blocked),
            ("cached", t.cached),
        ):
            calls[(t.provider, t.model, status)] += n
        for kind in ("input", "cached_input", "cache_write", "output", "reasoning"):
            tokens[(t.provider, t.model, kind)] += getattr(t, f"{kind}_tokens")
        unpriced[(t.provider, t.model)] += t.unpriced
    family(
        "tokencli_calls_total",
        "counter",
        "Finished calls in the ledger by outcome (error includes interrupted calls).",
        [({"provider": p, "model": m, "status": s}, str(n)) for (p, m, s), n in calls.items()],
    )
    family(
        "tokencli_tokens_total",
        "counter",
        "Tokens of calls that reached a model; cached_input and cache_write are parts of input.",
        [({"provider": p, "model": m, "kind": k}, str(n)) for (p, m, k), n in tokens.items()],
    )
    family(
        "tokencli_cost_total",
        "counter",
        "Spend on calls with a known price, in each price's currency.",
        [
            ({**model(t), "currency": t.currency}, picos_text(t.cost_pico))
            for t in totals
            if t.currency and (t.cost_pico or t.ok)
        ],
    )
    family(
        "tokencli_cache_savings_total",
        "counter",
        "What answers served from the response cache would have cost.",
        [
            ({**model(t), "currency": t.currency}, picos_text(t.savings_pico))
            for t in totals
            if t.currency and t.savings_pico
        ],
    )
    family(
        "tokencli_unpriced_calls_total",
        "counter",
        "Calls recorded with an unknown cost (no price for the model).",
        [({"provider": p, "model": m}, str(n)) for (p, m), n in unpriced.items() if n],
    )
    family(
        "tokencli_export_timestamp_seconds",
        "gauge",
        "When this file was written (Unix time).",
        [({}, str(int(now.timestamp())))],
    )
    return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
