"""Template variables from the command line: `--var KEY=VALUE`, `--vars-file F`, stdin.

A vars file is a JSON object (`{"topic": "tides", "length": 200}`), or lines of
`KEY=VALUE` (blank lines and `#` comments skipped). `--var` wins over the file.
`--var KEY=-` reads piped stdin into KEY.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .template import NAME


def parse_vars(
    pairs: list[str],
    vars_file: Path | None = None,
    stdin: Callable[[], str | None] | None = None,
) -> dict[str, str]:
    """`--var` pairs and a vars file → {name: value}.

    `stdin` returns piped stdin's text (None when nothing is piped); it is called
    once, only when a pair's value is `-`.
    """
    variables = read_vars_file(vars_file) if vars_file is not None else {}
    reads_stdin: str | None = None
    for pair in pairs:
        key, value = parse_pair(pair)
        if value == "-":
            if reads_stdin is not None:
                raise UsageError(
                    f"--var {reads_stdin}=- and --var {key}=- both read stdin.",
                    "Only one variable can be read from stdin.",
                )
            reads_stdin = key
            text = stdin() if stdin is not None else None
            if text is None:
                raise UsageError(
                    f"--var {key}=- reads stdin, but nothing was piped (or it was empty).",
                    f"Pipe the text in (… | tokencli run --var {key}=-), or pass --var {key}=VALUE.",
                )
            value = text
        variables[key] = value
    return variables


def read_vars_file(path: Path) -> dict[str, str]:
    """A JSON object, or KEY=VALUE lines; a bad line is named by its number."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise UsageError(f"No such vars file: {path}.", "Check the --vars-file path.") from None
    except UnicodeDecodeError:
        raise UsageError(f"The vars file {path} is not UTF-8 text.", None) from None
    except OSError as exc:
        raise UsageError(f"Cannot read the vars file {path}: {exc.strerror}.", None) from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{path} line {exc.lineno} is not valid JSON ({exc.msg}).",
                'A vars file is a JSON object ({"topic": "tides"}) or KEY=VALUE lines.',
            ) from None
        return vars_from_json(data, str(path))
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"{path} line {number} is not KEY=VALUE.",
                'A vars file is a JSON object ({"topic": "tides"}) or KEY=VALUE lines.',
            )
        _check_name(key, f"{path} line {number}")
        variables[key] = value.strip()
    return variables


def parse_pair(pair: str) -> tuple[str, str]:
    """One `--var KEY=VALUE` → (key, value); the key must be a variable's name."""
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"--var {pair!r} is not KEY=VALUE.", "e.g. --var topic=tides.")
    _check_name(key, f"--var {pair!r}")
    return key, value


def vars_from_json(data: Any, where: str) -> dict[str, str]:
    """A JSON object of variables → {name: text}: numbers and booleans become their JSON text."""
    if not isinstance(data, dict):
        raise UsageError(
            f"{where}: the variables are not a JSON object.", 'Write {"topic": "tides"}.'
        )
    variables: dict[str, str] = {}
    for key, value in data.items():
        _check_name(key, where)
        if isinstance(value, str):
            variables[key] = value
        elif isinstance(value, bool | int | float):
            variables[key] = json.dumps(value)
        else:
            raise UsageError(
                f"{where}: variable {key!r} is not text or a number.",
                "Give each variable a string value.",
            )
    return variables


def _check_name(key: str, where: str) -> None:
    if not NAME.fullmatch(key):
        raise UsageError(
            f"{where}: {key!r} is not a variable name.",
            "A variable's name is a letter or _, then letters, digits, _, - or '.'.",
        )
