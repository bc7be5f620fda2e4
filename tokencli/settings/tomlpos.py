"""Where a key sits in a TOML text, so config errors can name the line.

`tomllib` reports positions only for syntax errors. For a value of the wrong
type we scan the text once, following `[table]` headers and `key = value`
lines, and map each dotted key to its line number. Inline tables and
multi-line values map to the line where they start, which is what a person
needs to find them.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> list[str] | None:
    """`a."b:c".d` → ['a', 'b:c', 'd']; None if it is not a plain dotted key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            match = _BARE.match(text, i)
            if not match:
                return None
            parts.append(match.group())
            i = match.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return parts or None


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map every table header and key to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            inner = line[2:] if line.startswith("[[") else line[1:]
            close = inner.find("]")
            if close < 0:
                continue
            parts = _split_key(inner[:close])
            if parts:
                table = tuple(parts)
                lines.setdefault(table, number)
            continue
        eq = line.find("=")
        if eq <= 0:
            continue
        parts = _split_key(line[:eq])
        if parts:
            lines.setdefault((*table, *parts), number)
    return lines


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of `path`, or of its nearest enclosing table."""
    for end in range(len(path), 0, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None
