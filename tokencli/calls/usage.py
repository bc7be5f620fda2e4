"""The one meaning of usage the ledger stores (DESIGN.md, "Usage normalization").

- `input_tokens`: every input token, cache reads and cache writes included;
- `cached_input_tokens`, `cache_write_tokens`: parts of `input_tokens`;
- `output_tokens`: every generated token, reasoning included;
- `reasoning_tokens`: the reasoning part of `output_tokens`;
- `total_tokens` = input + output;
- `source`: `reported` (provider), `counted` (own tokenizer), `estimated`.

Each protocol module turns its provider's fields into this shape; nothing
downstream knows how a provider counts. What a provider reports is checked
here before it is used or stored (`check_usage`, `check_cost`,
`provider_text`): a count or cost no call can have is refused with a note and
the call's usage estimated instead, so the finishing write never overflows
and no spend is negative.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, replace
from decimal import Decimal
from typing import Any

REPORTED = "reported"
COUNTED = "counted"
ESTIMATED = "estimated"
USAGE_SOURCES = (REPORTED, COUNTED, ESTIMATED)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    source: str = REPORTED

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def with_source(self, source: str) -> Usage:
        return replace(self, source=source)

    def as_dict(self) -> dict[str, int | str]:
        data: dict[str, int | str] = dict(asdict(self))
        source = data.pop("source")
        data["total_tokens"] = self.total_tokens
        data["usage_source"] = source
        return data


def as_count(value: object) -> int:
    """A token count from a provider's JSON: absent or null → 0; a value no count
    can be (negative, fractional, not a number: `-5`, `2.5`, `"abc"`, `true`) →
    `NOT_A_COUNT`, which `check_usage` refuses like a count above a billion."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return NOT_A_COUNT
    if isinstance(value, float) and value.is_integer():
        value = Decimal(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        # JSON numbers with a fraction or exponent decode as Decimal; `1e999999`
        # is not turned into a million-digit int: above MAX_COUNT is refused anyway.
        value = int(value) if value <= MAX_COUNT else MAX_COUNT + 1
    if not isinstance(value, int) or value < 0:
        return NOT_A_COUNT
    # Capped, so that no sum of counts (an int of 10**30) cancels a NOT_A_COUNT.
    return min(value, MAX_COUNT + 1)


def as_mapping(value: object) -> Mapping[str, Any]:
    """A nested usage object from a provider's JSON; anything but an object → {}."""
    return value if isinstance(value, dict) else {}


# No call reads or writes a billion tokens: a larger count is not a count.
MAX_COUNT = 10**9
# What `as_count` makes of a value that is no count. So far below 0 that a parser's
# sums (input + cache reads, candidates + thoughts) stay below 0 (or above MAX_COUNT):
# an impossible part always makes an impossible whole.
NOT_A_COUNT = -(10**18)
# No call costs a million (in any currency): a larger reported cost is not a cost.
MAX_COST = Decimal(1_000_000)
# Request ids and model names longer than this are cut when stored.
MAX_LABEL = 200


def check_usage(usage: Usage) -> tuple[Usage | None, str | None]:
    """A reported usage, or None and a note (finishing "...") when it is impossible."""
    for name, value in zip(Usage.__dataclass_fields__, astuple(usage), strict=True):
        if isinstance(value, int) and not 0 <= value <= MAX_COUNT:
            return None, (
                f"reported an impossible token count ({name} "
                f"{'below 0 or not a whole number' if value < 0 else 'above a billion'}); "
                "its usage is estimated instead."
            )
    return usage, None


def check_cost(cost: Decimal | None) -> tuple[Decimal | None, str | None]:
    """A reported cost, or None and a note when it is negative, not finite or absurd."""
    if cost is None:
        return None, None
    if not cost.is_finite() or cost < 0 or cost > MAX_COST:
        shown = "not a number" if cost.is_nan() else ("negative" if cost < 0 else "absurd")
        return None, f"reported a cost that is {shown}; it is priced from the price list instead."
    return cost, None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def provider_text(value: object, limit: int = MAX_LABEL) -> str | None:
    """A request id or model name a provider sent, fit to store: text, no control
    characters, at most `limit` characters; anything else is None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    if isinstance(value, int) and abs(value) > 10**30:
        return None
    text = _CONTROL.sub("", str(value)[: limit * 4]).strip()[:limit]
    return text or None


# CJK ideographs, kana and hangul: tokenizers spend about one token on each.
# Compiled on first use: a class of wide ranges takes milliseconds to compile.
_WIDE_PATTERN = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"


def text_weight(text: str) -> float:
    """`estimate_tokens` unrounded, so that the pieces of a stream add up."""
    wide = len(re.findall(_WIDE_PATTERN, text))
    return wide + (len(text) - wide) / 4


def estimate_tokens(text: str) -> int:
    """A rough, tokenizer-free count for texts whose real count is unknown.

    Used for estimated usage (a stream cut before usage arrived) and labelled
    as such. About four characters per token for Latin text, one per CJK
    character; it tracks BPE tokenizers within roughly 20% on prose.
    """
    if not text:
        return 0
    wide = len(re.findall(_WIDE_PATTERN, text))
    narrow = len(text) - wide
    return wide + max(1, round(narrow / 4)) if narrow else wide
