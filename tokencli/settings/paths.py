"""Where tokencli keeps its files, each path with where it came from.

Order (DESIGN.md): `--config`/`--db` flags > `TOKENCLI_CONFIG`/`TOKENCLI_DB` >
`TOKENCLI_HOME` > platformdirs' user config and data directories. Nothing is
created here: directories appear when something is first written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "tokencli"


@dataclass(frozen=True)
class Paths:
    config: Path
    config_source: str
    db: Path
    db_source: str
    # Beside the default config: the keys file (owner-only).
    config_dir: Path
    # Derived data that can be rebuilt at any time (the price index).
    cache_dir: Path

    @property
    def keys(self) -> Path:
        return self.config_dir / "keys.json"


def _expand(value: str) -> Path:
    return Path(value).expanduser()


def resolve_paths(
    env: Mapping[str, str], *, config_flag: str | None = None, db_flag: str | None = None
) -> Paths:
    home = env.get("TOKENCLI_HOME")
    if home:
        home_path = _expand(home)
        config_dir = home_path
        data_dir = home_path
        cache_dir = home_path / "cache"
        default_source = "env TOKENCLI_HOME"
    else:
        import platformdirs

        config_dir = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
        data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        cache_dir = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
        default_source = "default"

    if config_flag:
        config, config_source = _expand(config_flag), "flag --config"
    elif env.get("TOKENCLI_CONFIG"):
        config, config_source = _expand(env["TOKENCLI_CONFIG"]), "env TOKENCLI_CONFIG"
    else:
        config, config_source = config_dir / "config.toml", default_source

    if db_flag:
        db, db_source = _expand(db_flag), "flag --db"
    elif env.get("TOKENCLI_DB"):
        db, db_source = _expand(env["TOKENCLI_DB"]), "env TOKENCLI_DB"
    else:
        db, db_source = data_dir / "ledger.db", default_source

    return Paths(
        config=config,
        config_source=config_source,
        db=db,
        db_source=db_source,
        config_dir=config_dir,
        cache_dir=cache_dir,
    )
