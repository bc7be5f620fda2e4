"""The statements of a TOML text with their spans, for editing it in place.

`tomllib` gives values, not positions. To replace one table and leave every
other byte alone, the editor needs to know where each table header and each
key/value pair starts and ends: `statements()` splits a text into lines of
those kinds (a value may run over several lines: arrays, multi-line strings).

The text must already be valid TOML (tomllib accepted it): this scanner finds
boundaries and decodes keys, it does not validate.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Statement:
    kind: str  # header | array_header | pair | comment | blank
    # header: the table it opens; pair: the full path of its value (table + dotted key).
    key: tuple[str, ...]
    start: int  # offset of the first character of its first line
    end: int  # offset after its last line's newline (the text's length at the end)
    line: int  # 1-based line it starts on

    @property
    def is_header(self) -> bool:
        return self.kind in ("header", "array_header")


def statements(text: str) -> list[Statement]:
    out: list[Statement] = []
    table: tuple[str, ...] = ()
    pos, line, n = 0, 1, len(text)
    while pos < n:
        start = pos
        pos = _skip_blanks(text, pos)
        key: tuple[str, ...] = ()
        if pos >= n or text[pos] in "\r\n":
            kind = "blank"
        elif text[pos] == "#":
            kind = "comment"
        elif text[pos] == "[":
            kind = "array_header" if text.startswith("[[", pos) else "header"
            key, pos = _key(text, pos + (2 if kind == "array_header" else 1))
            table = key
        else:
            dotted, pos = _key(text, pos)
            pos = _skip_value(text, _skip_blanks(text, pos + 1))  # past the '='
            kind, key = "pair", (*table, *dotted)
        # Whatever follows on the last line (a closing bracket, a comment) belongs to it.
        newline = text.find("\n", pos)
        end = n if newline < 0 else newline + 1
        out.append(Statement(kind, key, start, end, line))
        line += text.count("\n", start, end)
        pos = end
    return out


def _skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _key(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """A dotted key starting at `pos` (blanks allowed around dots) → its parts, the offset after."""
    parts: list[str] = []
    while True:
        pos = _skip_blanks(text, pos)
        if text[pos] == '"':
            end = _basic_string_end(text, pos)
            raw = text[pos:end]
            # Escapes (\u00e9, \") decode the way tomllib decodes them.
            parts.append(tomllib.loads(f"k = {raw}")["k"] if "\\" in raw else raw[1:-1])
        elif text[pos] == "'":
            end = text.index("'", pos + 1) + 1
            parts.append(text[pos + 1 : end - 1])
        else:
            match = _BARE.match(text, pos)
            if match is None:
                raise ValueError(f"no key at offset {pos}")
            end = match.end()
            parts.append(match.group())
        pos = _skip_blanks(text, end)
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return tuple(parts), pos


def _skip_value(text: str, pos: int) -> int:
    """Past a value that may span lines; a one-line value is left to the line's end."""
    if text.startswith('"""', pos) or text.startswith("'''", pos):
        return _multiline_string_end(text, pos)
    if pos < len(text) and text[pos] in "[{":
        return _bracket_end(text, pos)
    return pos


def _basic_string_end(text: str, pos: int) -> int:
    i = pos + 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _multiline_string_end(text: str, pos: int) -> int:
    quote = text[pos]
    i = pos + 3
    while True:
        if quote == '"' and text[i] == "\\":
            i += 2
        elif text.startswith(quote * 3, i):
            # Up to two quotes of the content may sit just before the closing three.
            end = i
            while end < len(text) and text[end] == quote:
                end += 1
            return end
        else:
            i += 1


def _bracket_end(text: str, pos: int) -> int:
    """Past the array or inline table opening at `pos`, with everything nested in it."""
    depth, i = 0, pos
    while True:
        c = text[i]
        if c in "[{":
            depth += 1
            i += 1
        elif c in "]}":
            depth -= 1
            i += 1
            if depth == 0:
                return i
        elif c == "#":  # arrays may hold comments
            i = text.index("\n", i)
        elif text.startswith('"""', i) or text.startswith("'''", i):
            i = _multiline_string_end(text, i)
        elif c == '"':
            i = _basic_string_end(text, i)
        elif c == "'":
            i = text.index("'", i + 1) + 1
        else:
            i += 1
