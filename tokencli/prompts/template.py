"""Prompt templates: text with named variables written `{{name}}`.

As promptfoo and Langfuse write them: `{{topic}}` or `{{ topic }}`; single braces
stay literal, so a prompt that asks for JSON (`{"title": "..."}`) needs no
escaping. A name is a letter or `_`, then letters, digits, `_`, `-` or `.`.
A third brace stays literal too: `{{{topic}}}` is `{` + the value + `}`.

Anything else that starts with `{{` is a mistake, refused with its line: a
`{{` with no `}}` after it, or `{{ ... }}` holding something that is not a name.
Values are inserted as they are and never read as templates themselves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import UsageError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_INSIDE = re.compile(r"\s*([^\s{}]*)\s*")


class Template:
    """A parsed template: literal text and variable names, in order."""

    __slots__ = ("_parts", "names", "text")

    def __init__(self, text: str, *, where: str = "the template") -> None:
        self.text = text
        # Even indexes hold literal text, odd ones variable names.
        self._parts: list[str] = []
        names: dict[str, None] = {}
        literal_start = pos = 0
        while True:
            start = text.find("{{", pos)
            if start < 0:
                break
            if text.startswith("{{{", start):  # the first brace is literal
                pos = start + 1
                continue
            end = text.find("}}", start + 2)
            line = text.count("\n", 0, start) + 1
            if end < 0:
                raise UsageError(
                    f"{_cap(where)} has an unclosed placeholder at line {line}: "
                    f"{_excerpt(text[start:])!r} has no closing '}}}}'.",
                    "Write variables as {{name}}.",
                )
            inside = _INSIDE.fullmatch(text, start + 2, end)
            name = inside.group(1) if inside else ""
            if not NAME.fullmatch(name):
                raise UsageError(
                    f"{_cap(where)} has a bad placeholder at line {line}: "
                    f"{_excerpt(text[start : end + 2])!r} is not {{{{name}}}}.",
                    "A variable's name is a letter or _, then letters, digits, _, - or '.'.",
                )
            self._parts += [text[literal_start:start], name]
            names[name] = None
            literal_start = pos = end + 2
        self._parts.append(text[literal_start:])
        self.names: tuple[str, ...] = tuple(names)

    def render(self, variables: Mapping[str, str]) -> str:
        """The text with every variable filled in (a missing one is a UsageError)."""
        missing = [n for n in self.names if n not in variables]
        if missing:
            raise missing_error(missing)
        return "".join(
            part if i % 2 == 0 else variables[part] for i, part in enumerate(self._parts)
        )


def missing_error(missing: list[str], what: str = "the template") -> UsageError:
    listed = ", ".join(missing)
    first = missing[0]
    return UsageError(
        f"Missing variable{'s' if len(missing) > 1 else ''} for {what}: {listed}.",
        f"Pass --var {first}=VALUE (or --var {first}=- to read it from stdin).",
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _excerpt(text: str, limit: int = 30) -> str:
    first = text.split("\n", 1)[0]
    return first if len(first) <= limit else first[:limit] + "…"
