"""API keys: from the provider's environment variable, else from the keys file.

The keys file (`keys.json` beside the config) is created owner-only (0600)
and refused if anyone else can read it, the way ssh treats private keys.
Keys never reach the ledger, logs or error messages (see `redact`).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..providers.registry import ProviderConfig
from ..redact import register_secret


@dataclass(frozen=True)
class ResolvedKey:
    value: str
    source: str  # "env OPENAI_API_KEY" or "keys file"


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._cache is not None:
            return self._cache
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._cache = {}
            return self._cache
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"Keys file {self.path} can be read by other users.",
                f"Run 'chmod 600 {self.path}' and try again.",
            )
        again = "Remove it and set the keys again with 'tokencli keys set PROVIDER'."
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError):
            raise ConfigError(f"Keys file {self.path} is unreadable or damaged.", again) from None
        keys = data.get("keys", {}) if isinstance(data, dict) else None
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise ConfigError(
                f'Keys file {self.path} is not shaped as {{"keys": {{"PROVIDER": "KEY"}}}}.', again
            )
        self._cache = keys
        return self._cache

    def get(self, provider: str) -> str | None:
        key = self._load().get(provider)
        problem = key_problem(key) if key is not None else None
        if problem:
            raise ConfigError(
                f"Keys file {self.path}: the key for {provider} {problem}.",
                f"Set it again with 'tokencli keys set {provider}'.",
            )
        return key

    def names(self) -> list[str]:
        return sorted(self._load())

    def set(self, provider: str, key: str) -> None:
        keys = dict(self._load())
        keys[provider] = key
        self._write(keys)

    def remove(self, provider: str) -> bool:
        keys = dict(self._load())
        if keys.pop(provider, None) is None:
            return False
        self._write(keys)
        return True

    def _write(self, keys: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        # Created 0600 from the start: the key is never on disk world-readable.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"keys": keys}, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._cache = keys


def key_problem(key: str) -> str | None:
    """What makes `key` impossible as an API key (it travels in an HTTP header), if anything."""
    if not key:
        return "is empty"
    if not key.isascii():
        return "has a character that is not ASCII"
    if not key.isprintable() or any(ch.isspace() for ch in key):
        return "has spaces, newlines or control characters"
    return None


def resolve_key(
    provider: ProviderConfig, env: Mapping[str, str], store: KeyStore
) -> ResolvedKey | None:
    for var in provider.api_key_env:
        value = env.get(var, "").strip()
        if value:
            register_secret(value)
            problem = key_problem(value)
            if problem:
                raise ConfigError(
                    f"The key in {var} {problem}.", f"Set {var} to the key alone and try again."
                )
            return ResolvedKey(value, f"env {var}")
    stored = store.get(provider.name)
    if stored:
        register_secret(stored)
        return ResolvedKey(stored, "keys file")
    return None


def require_key(provider: ProviderConfig, env: Mapping[str, str], store: KeyStore) -> str | None:
    """The key to send, or None when the provider needs none. Missing → exit 6."""
    found = resolve_key(provider, env, store)
    if found:
        return found.value
    if not provider.key_required:
        return None
    var = provider.api_key_env[0] if provider.api_key_env else None
    how = (
        f"Set {var} or run 'tokencli keys set {provider.name}'."
        if var
        else f"Run 'tokencli keys set {provider.name}'."
    )
    raise ConfigError(f"No API key for {provider.name}.", how)
