"""Keep API keys out of everything tokencli prints or stores.

Known keys (the ones in use) are replaced wherever they appear, and so is
anything shaped like a common provider key, because providers sometimes echo
a wrong key back in their error text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# Shapes of real keys: OpenAI/DeepSeek/Moonshot/OpenRouter style `sk-…`,
# Anthropic `sk-ant-…`, Google `AIza…`, and bearer tokens in echoed headers.
_KEY_SHAPES = re.compile(
    r"(?:sk-(?:ant-|or-|proj-)?[A-Za-z0-9_\-]{16,})"
    r"|(?:AIza[0-9A-Za-z_\-]{30,})"
    r"|(?<=Bearer )[A-Za-z0-9_\-\.=]{16,}"
)

_known: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a key in use so that any later output can be scrubbed of it."""
    if secret and len(secret) >= 6:
        _known.add(secret)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    if not text:
        return text
    for secret in sorted(
        {*_known, *(s for s in extra if s and len(s) >= 6)}, key=len, reverse=True
    ):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


def mask(secret: str) -> str:
    """`sk-…abcd`: enough to tell two keys apart, never the key."""
    if len(secret) < 12:
        return "…" + "•" * 4
    prefix = secret[:3] if secret[:3].isalpha() or secret.startswith("sk-") else ""
    return f"{prefix}…{secret[-4:]}"
