"""The config's small schema: what kind each setting is, and the checks that
turn a TOML value into a typed one or a `ConfigError` naming file, line, key
and fix.

Each section parser (`sections.py`) and each provider type declares its
settings as `FieldSpec`s; `Checker.fields` checks a table against them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..money import parse_amount
from . import tomlpos


@dataclass(frozen=True)
class FieldSpec:
    kind: str  # str | bool | int | int_list | number | str_list | str_table
    help: str


# Whole numbers in a config stay below this (2**53): past it they are typos, and
# SQLite and JSON would not hold them exactly.
MAX_INT = 2**53
# Numbers (seconds, prices, amounts, rates) stay at or below a billion: beyond it a
# wait no longer fits the platform's timers and a value is a typo, not a setting.
MAX_NUMBER = 10**9


class Checker:
    """Type checks with errors that say file, line, key and fix."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = tomlpos.key_lines(text)

    def where(self, key_path: tuple[str, ...]) -> str:
        line = tomlpos.line_of(self.lines, key_path)
        return f"{self.path.name}:{line}" if line else self.path.name

    def fail(self, key_path: tuple[str, ...], problem: str, hint: str | None = None) -> ConfigError:
        line = tomlpos.line_of(self.lines, key_path)
        at = f" (line {line})" if line else ""
        return ConfigError(
            f"Invalid config {self.path}{at}: {dotted(key_path)} {problem}.",
            hint or "Fix the value, then check it with 'tokencli config validate'.",
        )

    def value(self, key_path: tuple[str, ...], value: Any, kind: str) -> Any:
        if kind == "str":
            if not isinstance(value, str):
                raise self.fail(key_path, f"must be a string, not {_type_name(value)}")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(key_path, f"must be true or false, not {_type_name(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(key_path, f"must be a whole number ≥ 0, not {value!r}")
            if value > MAX_INT:
                raise self.fail(key_path, f"is too large (at most {MAX_INT:,})")
            return value
        if kind == "int_list":
            if not isinstance(value, list):
                raise self.fail(
                    key_path, f"must be a list of whole numbers, not {_type_name(value)}"
                )
            return [self.value(key_path, v, "int") for v in value]
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(key_path, f"must be a number ≥ 0, not {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                # TOML allows nan and inf; no wait, price, amount or temperature is either.
                raise self.fail(key_path, f"must be a finite number, not {value!r}")
            if value < 0:
                raise self.fail(key_path, f"must be a number ≥ 0, not {value!r}")
            if value > MAX_NUMBER:
                raise self.fail(key_path, f"is too large (at most {MAX_NUMBER:,})")
            return parse_amount(value)
        if kind == "str_list":
            if isinstance(value, str):
                return [value] if value else []
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return [v for v in value if v]
            raise self.fail(key_path, "must be a string or a list of strings")
        if kind == "str_table":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise self.fail(key_path, "must be a table of strings")
            return value
        raise AssertionError(kind)

    def table(self, key_path: tuple[str, ...], value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key_path, f"must be a table, not {_type_name(value)}")
        return value

    def fields(
        self, key_path: tuple[str, ...], table: Mapping[str, Any], specs: Mapping[str, FieldSpec]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Every key of `table` checked against `specs`: (values, where each came from)."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, raw in table.items():
            spec = specs.get(key)
            if spec is None:
                raise self.fail(
                    (*key_path, key),
                    "is not a known setting",
                    f"Known settings here: {', '.join(sorted(specs))}.",
                )
            values[key] = self.value((*key_path, key), raw, spec.kind)
            sources[key] = self.where((*key_path, key))
        return values, sources

    def currency(self, key_path: tuple[str, ...], value: str) -> str:
        """An ISO code, upper-cased: "cny" → "CNY"."""
        code = value.strip().upper()
        if len(code) != 3 or not code.isalpha():
            raise self.fail(
                key_path, f"must be a three-letter currency code like USD or CNY, not {value!r}"
            )
        return code

    def base_url(self, key_path: tuple[str, ...], url: str) -> str:
        """An http(s) URL without its trailing slash."""
        url = url.strip().rstrip("/")
        if not (url.startswith("http://") or url.startswith("https://")) or len(url) < 10:
            raise self.fail(
                key_path, f"must be an http(s) URL, not {url!r}", "e.g. https://api.openai.com/v1."
            )
        return url


def dotted(key_path: tuple[str, ...]) -> str:
    """("prices", "qwen:qwen-max") → 'prices."qwen:qwen-max"', as a person would write it."""
    out = []
    for part in key_path:
        bare = part.replace("_", "").replace("-", "").isalnum()
        # Quoted as TOML writes a key: a newline or a quote in it is shown escaped.
        out.append(part if bare else json.dumps(part, ensure_ascii=False))
    return ".".join(out)


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
