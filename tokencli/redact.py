"""Keep API keys and every other credential out of everything tokencli prints or stores.

Known keys (the ones in use) are replaced wherever they appear, and so is
anything shaped like a common provider key, because providers sometimes echo
a wrong key back in their error text. Credentials in the forms a URL or an
HTTP header carries them are replaced too, wherever they appear in a text:
`user:password@` in a URL, a query parameter named like a credential
(`key`, `api_key`, `token`, `access_token`, `signature`, `sig`, `secret`,
`password`, `auth`, …, any case), `Authorization: Basic …`/`Bearer …` and the
`x-api-key`, `x-goog-api-key`, `api-key` headers (as header lines or as JSON,
since servers echo requests back in their error bodies). This module is the
one place that knows those forms: error messages, stderr, ledger rows, exports
and `config show` all pass through `redact`.
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

# `scheme://user:password@host` (or a bare `token@host`), also as JSON writes it (`\/\/`).
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*:(?:\\?/){2})([^/\s?#\"<>\\]+)@")
# `user:password@host` without its scheme (a URL's netloc quoted on its own).
_BARE_USERINFO = re.compile(r"(?<![\w.%+\-:/@])(?!mailto:)([\w.%+\-]+:[^\s@/:\"<>]+)@(?=[\w\[])")
# A query or form parameter whose name says it holds a credential.
_PARAM_NAME = (
    r"[\w.\-]*(?:key|token|secret|passw(?:or)?d|signature|credential|auth)[\w.\-]*|sig|pass|pwd"
)
_PARAM = re.compile(rf"(?i)([?&;#]|&amp;)((?:{_PARAM_NAME})(?:%5B%5D|\[\])?=)([^&;#\s\"<>\\]*)")
# Header lines and JSON or dict renderings of headers that carry a credential.
_HEADER_NAME = (
    r"(?:proxy-)?authorization|x-api-key|x-goog-api-key|api-key|apikey|x-auth-token"
    r"|x-access-token|cookie|set-cookie"
)
_HEADER = re.compile(
    rf"(?i)(\b(?:{_HEADER_NAME})(?:\\?[\"'])?\s*:\s*(?:\\?[\"'])?)([^\"'\r\n\\]+)",
)
# An authorization value on its own: `Basic dXNlcjpwYXNz` (base64), `Bearer abc…`.
_SCHEME = re.compile(
    r"(?i)\b(Basic\s+)((?=(?-i:[A-Za-z0-9+/=]*[A-Z0-9+/=]))[A-Za-z0-9+/]{6,}=*)"
    r"|\b(Bearer\s+)([A-Za-z0-9+/=_\-.~]{6,})"
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
    text = _KEY_SHAPES.sub(REDACTED, text)
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
        text = _BARE_USERINFO.sub(f"{REDACTED}@", text)
    if "=" in text:
        text = _PARAM.sub(_param, text)
    if ":" in text:
        text = _HEADER.sub(_header, text)
    return _SCHEME.sub(_scheme, text)


def _param(match: re.Match[str]) -> str:
    if not match.group(3):
        return match.group()
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def _header(match: re.Match[str]) -> str:
    value = match.group(2)
    if value.strip() in ("", REDACTED):
        return match.group()
    return f"{match.group(1)}{REDACTED}"


def _scheme(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}{REDACTED}"
    return f"{match.group(3)}{REDACTED}"


def mask(secret: str) -> str:
    """`sk-…abcd`: enough to tell two keys apart, never the key."""
    if len(secret) < 12:
        return "…" + "•" * 4
    prefix = secret[:3] if secret[:3].isalpha() or secret.startswith("sk-") else ""
    return f"{prefix}…{secret[-4:]}"
