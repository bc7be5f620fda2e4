"""The one meaning of usage the ledger stores (DESIGN.md, "Usage normalization").

- `input_tokens`: every input token, cache reads and cache writes included;
- `cached_input_tokens`, `cache_write_tokens`: parts of `input_tokens`;
- `output_tokens`: every generated token, reasoning included;
- `reasoning_tokens`: the reasoning part of `output_tokens`;
- `total_tokens` = input + output;
- `source`: `reported` (provider), `counted` (own tokenizer), `estimated`.

Each protocol module turns its provider's fields into this shape; nothing
downstream knows how a provider counts.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

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
    """A token count from a provider's JSON; absent, null or junk → 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    return 0


# CJK ideographs, kana and hangul: tokenizers spend about one token on each.
# Compiled on first use: a class of wide ranges takes milliseconds to compile.
_WIDE_PATTERN = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"


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
