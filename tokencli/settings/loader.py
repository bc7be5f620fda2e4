"""Settings, resolved once: flag > environment > config file > default.

`load_settings()` reads the TOML file (if any), checks every section with its
parser (`sections.SECTIONS`), and returns a `Settings` whose values remember
where they came from (`config show` prints that). Errors name the file, the
line and the fix; they are `ConfigError`s (exit 6).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .model import (
    DEFAULT_MODEL,
    Budget,
    Currencies,
    Defaults,
    ModelSettings,
    PriceOverride,
    Settings,
)
from .paths import Paths, resolve_paths
from .schema import Checker
from .sections import SECTIONS, Reader

__all__ = [
    "DEFAULT_MODEL",
    "Budget",
    "Currencies",
    "Defaults",
    "ModelSettings",
    "PriceOverride",
    "Settings",
    "load_settings",
    "read_config_file",
    "settings_from_doc",
]


# No config is this long: a longer file (--config /dev/zero) is refused, not read whole.
MAX_CONFIG_BYTES = 4 * 2**20


def read_config_file(path: Path) -> tuple[dict[str, Any], str]:
    """Parse the TOML file; a missing file is an empty config."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}, ""
    except IsADirectoryError:
        raise ConfigError(
            f"Config path {path} is a directory.", "Point --config at a TOML file."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config {path}: {exc.strerror}.", None) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB.",
            "Point --config at a TOML file.",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"Config {path} is not UTF-8 text.", "Save it as UTF-8.") from None
    return parse_config_text(path, text), text


def parse_config_text(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(
            f"Config {path} is not valid TOML: {exc}.",
            "Fix that line, then run 'tokencli config validate'.",
        ) from None
    except RecursionError:
        raise ConfigError(
            f"Config {path} nests arrays or tables too deeply.",
            "Fix it, then run 'tokencli config validate'.",
        ) from None


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    config_flag: str | None = None,
    db_flag: str | None = None,
) -> Settings:
    env = dict(os.environ if env is None else env)
    paths = resolve_paths(env, config_flag=config_flag, db_flag=db_flag)
    if config_flag and not paths.config.exists():
        raise ConfigError(f"Config file {paths.config} does not exist.", "Check the --config path.")
    doc, text = read_config_file(paths.config)
    return settings_from_doc(doc, text, paths, env, exists=bool(text) or paths.config.exists())


def settings_from_doc(
    doc: Mapping[str, Any], text: str, paths: Paths, env: Mapping[str, str], *, exists: bool
) -> Settings:
    """Every section of a parsed config checked by its parser, in `SECTIONS` order."""
    checker = Checker(paths.config, text)
    # A NUL reaches a parsed config only through an escape (TOML forbids it raw): most
    # configs have none, and need no walk.
    if any(escape in text for escape in ("\\u0000", "\\U00000000", "\\x00")):
        _refuse_nul(checker, (), doc)
    reader = Reader(checker, doc)
    reader.refuse_unknown_sections()
    parsed = {section.attribute: reader.section(section.name) for section in SECTIONS}
    return Settings(paths=paths, env=env, **parsed, sources=reader.sources, config_exists=exists)


def _refuse_nul(checker: Checker, key_path: tuple[str, ...], value: Any) -> None:
    """No key or string anywhere in the config holds a NUL (TOML's \\u0000).

    Names and labels from the config reach the ledger, where SQLite's text functions
    (tags read with json_extract, grouping in reports) stop at a NUL: a label holding
    one would be split or lost. Checked once here for every section, keys included.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise checker.fail(key_path, "holds a NUL character (\\u0000)", "Remove it.")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise checker.fail(
                    (*key_path, key), "is a name with a NUL character (\\u0000)", "Remove it."
                )
            _refuse_nul(checker, (*key_path, key), item)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(checker, key_path, item)
