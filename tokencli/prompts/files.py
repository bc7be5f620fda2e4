"""Prompt files a user keeps in git: TOML (or YAML, when PyYAML is installed).

One file holds one prompt or many:

    format = "tokencli.prompts/1"

    [[prompts]]
    name = "summary"
    labels = { production = 2 }

    [[prompts.versions]]
    version = 1
    created = "2026-11-20T09:00:00.000000Z"
    model = "openai:gpt-4o-mini"
    params = { temperature = 0.2 }
    note = "first draft"
    system = "You are a careful editor."
    template = '''
    Summarize {{text}} in {{words}} words.'''

Only `name` and each version's `template` are required. Importing is
idempotent: a version already in the ledger (the same content and creation time,
or, without `created`, the same content) is not added again, and neither is one
identical to the prompt's latest version. Numbers are kept where they are free
(above every number the prompt has used); labels are set as the file says.
Retired versions are not exported.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .library import (
    PromptVersion,
    check_label,
    check_name,
    check_params,
    content_hash,
    list_versions,
    save_prompt,
)

if TYPE_CHECKING:
    from ..ledger import Ledger

FORMAT = "tokencli.prompts/1"
FORMATS = ("toml", "yaml")
_VERSION_KEYS = {"version", "created", "model", "params", "note", "system", "template"}
_PROMPT_KEYS = {"name", "labels", "versions"}


# ------------------------------------------------------------------ export


def export_data(ledger: Ledger | None, names: Iterable[str]) -> dict[str, Any]:
    """The file's content for `names`: their current versions and labels."""
    prompts = []
    for name in names:
        versions = [v for v in list_versions(ledger, name) if not v.retired]
        if not versions:  # removed: only retired versions are left
            continue
        labels = {label: v.version for v in versions for label in v.labels}
        entry: dict[str, Any] = {"name": name}
        if labels:
            entry["labels"] = dict(sorted(labels.items()))
        entry["versions"] = [_version_data(v) for v in versions]
        prompts.append(entry)
    return {"format": FORMAT, "prompts": prompts}


def _version_data(v: PromptVersion) -> dict[str, Any]:
    data: dict[str, Any] = {"version": v.version, "created": v.created}
    if v.model:
        data["model"] = v.model
    if v.params:
        data["params"] = dict(v.params)
    if v.note:
        data["note"] = v.note
    if v.system is not None:
        data["system"] = v.system
    data["template"] = v.template
    return data


def dumps(data: Mapping[str, Any], fmt: str) -> str:
    header = "# tokencli prompts: load with `tokencli prompt import FILE`\n"
    if fmt == "yaml":
        yaml = _yaml()

        class Dumper(yaml.SafeDumper):  # type: ignore[name-defined]
            pass

        def text(dumper: Any, value: str) -> Any:
            # Multi-line texts as block scalars, readable in a diff.
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        body = yaml.dump(dict(data), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
        return header + body
    import tomli_w

    return header + tomli_w.dumps(dict(data), multiline_strings=True)


def file_format(path: Path | None, fmt: str | None) -> str:
    """--format, else the file's suffix (.yaml, .yml), else TOML."""
    if fmt is None:
        fmt = "yaml" if path is not None and path.suffix.lower() in (".yaml", ".yml") else "toml"
    if fmt not in FORMATS:
        raise UsageError(f"Unknown format {fmt!r}.", "Choose toml or yaml.")
    if fmt == "yaml":
        _yaml()
    return fmt


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise UsageError(
            "YAML needs the PyYAML package, which is not installed.",
            "Use TOML (--format toml, or a .toml file), or pip install pyyaml.",
        ) from None
    return yaml


# ------------------------------------------------------------------ import


@dataclass
class ImportTally:
    prompts: int = 0
    added: int = 0  # versions
    present: int = 0  # versions already in the ledger
    labels: int = 0  # labels set


def loads(text: str, where: str) -> dict[str, Any]:
    """A prompt file's text → its data (the format told by its first character)."""
    if where.lower().endswith((".yaml", ".yml")):
        yaml = _yaml()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise UsageError(f"{where}{line} is not valid YAML.", None) from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{where} is not valid TOML: {exc}.", None) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(
            f"{where} is not a tokencli prompt file.",
            f'It starts with format = "{FORMAT}"; write one with tokencli prompt export.',
        )
    return data


def import_data(
    ledger: Ledger, data: Mapping[str, Any], where: str, *, now: datetime
) -> ImportTally:
    """Add the file's versions the ledger lacks, and set its labels (see the module doc)."""
    from ..ledger import prompts as store

    prompts = data.get("prompts", [])
    if not isinstance(prompts, list):
        raise UsageError(f"{where}: prompts is not a list.", None)
    checked = [_check_prompt(p, f"{where}: prompt {i + 1}") for i, p in enumerate(prompts)]
    tally = ImportTally()
    for name, labels, versions in checked:
        tally.prompts += 1
        existing = store.all_versions(ledger, name)
        by_identity = {(r.hash, r.ts) for r in existing}
        hashes = {r.hash: r.version for r in existing}
        numbers: dict[int, int] = {}  # the file's number → the ledger's
        for v in versions:
            digest = content_hash(v["system"], v["template"], v["model"], v["params"])
            created = v["created"]
            if (created is not None and (digest, created) in by_identity) or (
                created is None and digest in hashes
            ):
                tally.present += 1
                match = next(
                    r for r in existing if r.hash == digest and (created is None or r.ts == created)
                )
                number = match.version
            else:
                saved = save_prompt(
                    ledger,
                    name,
                    v["template"],
                    system=v["system"],
                    model=v["model"],
                    params=v["params"],
                    note=v["note"],
                    now=now,
                    version=v["version"],
                    created=created,
                )
                tally.added += saved.added
                tally.present += not saved.added
                number = saved.version.version
            if v["version"] is not None:
                numbers[v["version"]] = number
        current = store.labels(ledger, name).get(name, {})
        for label, file_version in labels.items():
            if file_version not in numbers:
                raise UsageError(
                    f"{where}: prompt {name!r}'s label {label!r} names version {file_version},"
                    " which the file does not hold.",
                    None,
                )
            if current.get(label) != numbers[file_version]:
                from ..ledger import format_ts

                store.set_label(ledger, name, label, numbers[file_version], format_ts(now))
                tally.labels += 1
    return tally


def _check_prompt(entry: Any, where: str) -> tuple[str, dict[str, int], list[dict[str, Any]]]:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a table.", None)
    unknown = set(entry) - _PROMPT_KEYS
    if unknown:
        raise UsageError(f"{where} has unknown keys: {', '.join(sorted(unknown))}.", None)
    name = entry.get("name")
    if not isinstance(name, str):
        raise UsageError(f"{where} has no name.", None)
    check_name(name)
    where = f"{where.rsplit(': ', 1)[0]}: prompt {name!r}"
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels.values()
    ):
        raise UsageError(f"{where}: labels must map each label to a version number.", None)
    for label in labels:
        check_label(str(label))
    versions = entry.get("versions")
    if not isinstance(versions, list) or not versions:
        raise UsageError(f"{where} has no versions.", None)
    return (
        name,
        labels,
        [_check_version(v, f"{where} version {i + 1}") for i, v in enumerate(versions)],
    )


def _check_version(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a table.", None)
    unknown = set(entry) - _VERSION_KEYS
    if unknown:
        raise UsageError(f"{where} has unknown keys: {', '.join(sorted(unknown))}.", None)

    def text(key: str, required: bool = False) -> str | None:
        value = entry.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise UsageError(
                f"{where}: {key} {'is missing' if value is None else 'is not text'}.", None
            )
        return value

    number = entry.get("version")
    if number is not None and (
        not isinstance(number, int) or isinstance(number, bool) or number < 1
    ):
        raise UsageError(f"{where}: version is not a positive whole number.", None)
    created = _created(entry.get("created"), where)
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise UsageError(f"{where}: params is not a table.", None)
    return {
        "version": number,
        "created": created,
        "model": text("model"),
        "params": check_params(params, where),
        "note": text("note"),
        "system": text("system"),
        "template": text("template", required=True),
    }


def _created(value: Any, where: str) -> str | None:
    """A version's creation time as a ledger timestamp (UTC); a time without a zone is UTC."""
    from datetime import UTC

    from ..ledger import format_ts

    if value is None:
        return None
    when = value  # TOML and YAML read bare times as datetimes
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            when = None
    if not isinstance(when, datetime):
        raise UsageError(
            f"{where}: created {value!r} is not a time.", "Write e.g. 2026-11-20T09:00:00Z."
        )
    from ..window import EARLIEST, LATEST

    utc: datetime | None
    try:
        utc = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # year 1 in a zone east of UTC
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise UsageError(
            f"{where}: created {str(value)!r} is outside the years {EARLIEST.year} to"
            f" {LATEST.year - 1}.",
            "Write e.g. 2026-11-20T09:00:00Z.",
        )
    return format_ts(utc)
