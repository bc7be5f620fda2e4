"""Values made safe to show: one function for the terminal, one for HTML.

A project, tag, model name, request id or error text can come from a flag, an
imported file or a provider's response. Shown raw, an ESC starts a terminal
escape sequence (colours, cursor moves, an OSC 8 link, a changed window
title), a newline forges a line of output, a bidi override reverses what
follows. `visible` shows every such character as an escape (`\\x1b`, `\\n`,
`\\u202e`) instead, so what reaches the terminal is exactly the characters it
prints. It leaves backslashes alone, so applying it twice changes nothing.

JSON output is never passed through it (JSON is exact); the answer text of
`run` is the user's own content and is printed as it came (SECURITY.md).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+0080–U+009F, which include the 8-bit CSI and OSC),
# lone surrogates (undecodable bytes from argv under surrogateescape), the line and
# paragraph separators, and the bidirectional formatting characters (embeddings,
# overrides, isolates and marks) that reorder what follows them.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_UNSAFE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, multiline: bool = False) -> str:
    """`value` as text with every control, separator and bidi character shown escaped.

    `multiline` keeps newlines and tabs (for a document whose lines are its own,
    such as a stored prompt shown by `logs show`); everything else is escaped.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_KEEP_LINES if multiline else _UNSAFE
    return pattern.sub(_escape, text)


def html_text(value: object) -> str:
    """`value` as HTML text or attribute content: markup escaped, controls made visible
    (an ESC is not even allowed in XML, and a report may be printed to a terminal)."""
    from html import escape

    return escape(visible(value))
