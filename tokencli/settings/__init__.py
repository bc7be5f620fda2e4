"""Settings, resolved once with their source: paths, keys, the config file.

- `model`: the typed settings (`Settings`, `Defaults`, `Budget` ...);
- `schema`: `FieldSpec` and the `Checker` whose errors name file and line;
- `sections`: one parser per config section, in one ordered table;
- `loader`: the TOML file read and checked into a `Settings`;
- `editor`: one table of config.toml rewritten in place, every other byte kept;
- `paths`: where the config, ledger and key files live;
- `keys`: the owner-only key store;
- `tomlpos`, `tomlscan`: where keys and statements sit in a TOML text.

The public names below load their module on first use, so importing one
submodule (the provider registry needs `schema.FieldSpec`) does not load the
rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .editor import remove_table, set_table
    from .loader import load_settings, read_config_file, settings_from_doc
    from .model import (
        DEFAULT_MODEL,
        Budget,
        Currencies,
        Defaults,
        ModelSettings,
        PriceOverride,
        Settings,
    )
    from .schema import FieldSpec

_HOMES = {
    "load_settings": "loader",
    "read_config_file": "loader",
    "settings_from_doc": "loader",
    "set_table": "editor",
    "remove_table": "editor",
    "DEFAULT_MODEL": "model",
    "Budget": "model",
    "Currencies": "model",
    "Defaults": "model",
    "ModelSettings": "model",
    "PriceOverride": "model",
    "Settings": "model",
    "FieldSpec": "schema",
}

__all__ = [
    "DEFAULT_MODEL",
    "Budget",
    "Currencies",
    "Defaults",
    "FieldSpec",
    "ModelSettings",
    "PriceOverride",
    "Settings",
    "load_settings",
    "read_config_file",
    "remove_table",
    "set_table",
    "settings_from_doc",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
