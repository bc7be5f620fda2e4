"""Saved prompts: immutable versions, labels, refs (`NAME`, `NAME@3`, `NAME@production`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .template import Template, missing_error

if TYPE_CHECKING:
    from ..calls.resolve import RunOptions
    from ..ledger import Ledger
    from ..ledger.prompts import VersionRow

PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
LATEST = "latest"  # implicit: always the newest version
# What a version may keep besides its text: the run options it sets by default.
PARAMS: dict[str, type] = {"max_tokens": int, "temperature": float}


@dataclass(frozen=True, eq=False)
class PromptVersion:
    """One immutable version of a saved prompt."""

    name: str
    version: int
    system: str | None
    template: str  # the user part
    model: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    note: str | None = None
    created: str | None = None  # ledger timestamp
    retired: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def content_hash(self) -> str:
        return content_hash(self.system, self.template, self.model, self.params)

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables the system and user parts use, in order of first use."""
        names = dict.fromkeys(self._system_template().names if self.system else ())
        names.update(dict.fromkeys(self._user_template().names))
        return tuple(names)

    def render(self, variables: Mapping[str, str]) -> tuple[str | None, str, list[str]]:
        """(system or None, user text, names in `variables` that neither part uses)."""
        user_t = self._user_template()
        system_t = self._system_template() if self.system else None
        used = dict.fromkeys((*(system_t.names if system_t else ()), *user_t.names))
        missing = [n for n in used if n not in variables]
        if missing:
            raise missing_error(missing, self.ref)
        system = system_t.render(variables) if system_t else None
        return system, user_t.render(variables), sorted(set(variables) - set(used))

    def _user_template(self) -> Template:
        return Template(self.template, where=f"the template of {self.ref}")

    def _system_template(self) -> Template:
        return Template(self.system or "", where=f"the system part of {self.ref}")


def content_hash(
    system: str | None, template: str, model: str | None, params: Mapping[str, Any]
) -> str:
    """What makes two versions the same: texts, model and parameters (not the note)."""
    text = json.dumps([system, template, model, dict(sorted(params.items()))], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def from_row(row: VersionRow, labels: Mapping[str, int] | None = None) -> PromptVersion:
    return PromptVersion(
        name=row.name,
        version=row.version,
        system=row.system,
        template=row.template,
        model=row.model,
        params=row.params,
        labels=tuple(sorted(k for k, v in (labels or {}).items() if v == row.version)),
        note=row.note,
        created=row.ts,
        retired=row.retired,
    )


# ------------------------------------------------------------------ names and refs


def check_name(name: str) -> str:
    if not PROMPT_NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a prompt name.",
            "A name is letters, digits, _, - and '.', starting with a letter or digit.",
        )
    return name


def check_label(label: str) -> str:
    if label == LATEST:
        raise UsageError(
            "'latest' cannot be set: it always names the newest version.",
            "Choose another label, e.g. production.",
        )
    if not LABEL.fullmatch(label):
        raise UsageError(
            f"{label!r} is not a label.",
            "A label starts with a letter, then letters, digits, _, - or '.' (e.g. production).",
        )
    return label


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """`NAME` → (NAME, None); `NAME@3` → (NAME, 3); `NAME@production` → (NAME, "production")."""
    name, sep, selector = ref.strip().partition("@")
    check_name(name)
    if not sep or selector == LATEST:
        return name, None
    if selector.isascii() and selector.isdigit() and int(selector) > 0:
        return name, int(selector)
    if not LABEL.fullmatch(selector):
        raise UsageError(
            f"{ref!r} is not NAME, NAME@VERSION or NAME@LABEL.",
            "e.g. summary@3 or summary@production.",
        )
    return name, selector


def resolve_prompt(
    ledger: Ledger | None, ref: str, *, allow_retired: bool = False
) -> PromptVersion:
    """The version `ref` names; an unknown prompt, version or label is a UsageError.

    A retired version (removed, kept for the calls that used it) is refused
    unless `allow_retired`.
    """
    from ..ledger import prompts as store

    name, selector = parse_ref(ref)
    rows = store.all_versions(ledger, name) if ledger is not None else []
    live = [r for r in rows if not r.retired]
    if not rows:
        raise UsageError(
            f"No prompt named {name!r}.",
            "'tokencli prompt list' shows the saved prompts; 'tokencli prompt save' adds one.",
        )
    labels = store.labels(ledger, name).get(name, {}) if ledger is not None else {}
    if selector is None:
        if not live and not allow_retired:
            raise UsageError(
                f"Prompt {name!r} was removed (its versions that recorded calls used are kept).",
                f"'tokencli prompt list {name}' shows them; 'tokencli prompt save' starts it again.",
            )
        row = (live or rows)[-1]
    else:
        if isinstance(selector, str):
            if selector not in labels:
                known = ", ".join(f"{k} (@{v})" for k, v in sorted(labels.items()))
                raise UsageError(
                    f"Prompt {name!r} has no label {selector!r}.",
                    f"Its labels: {known}." if known else "It has no labels yet.",
                )
            number = labels[selector]
        else:
            number = selector
        found = next((r for r in rows if r.version == number), None)
        if found is None:
            raise UsageError(
                f"Prompt {name!r} has no version {number}.",
                f"Its versions: {', '.join(str(r.version) for r in live)}.",
            )
        if found.retired and not allow_retired:
            raise UsageError(
                f"{name}@{number} was removed (it is kept only because recorded calls used it).",
                f"Use a current version: {', '.join(str(r.version) for r in live) or 'none'}.",
            )
        row = found
    return from_row(row, labels)


# ------------------------------------------------------------------ reading the library


@dataclass(frozen=True, eq=False)
class PromptSummary:
    name: str
    latest: PromptVersion
    versions: int  # current (not retired) versions
    labels: Mapping[str, int]


def list_prompts(ledger: Ledger | None) -> list[PromptSummary]:
    """Each prompt with a current version: its latest, how many versions, its labels."""
    if ledger is None:
        return []
    from ..ledger import prompts as store

    labels = store.labels(ledger)
    by_name: dict[str, list[VersionRow]] = {}
    for row in store.all_versions(ledger):
        if not row.retired:
            by_name.setdefault(row.name, []).append(row)
    return [
        PromptSummary(name, from_row(rows[-1], labels.get(name)), len(rows), labels.get(name, {}))
        for name, rows in by_name.items()
    ]


def list_versions(ledger: Ledger | None, name: str) -> list[PromptVersion]:
    """Every version of `name`, oldest first, retired ones included (and marked)."""
    from ..ledger import prompts as store

    check_name(name)
    rows = store.all_versions(ledger, name) if ledger is not None else []
    if not rows:
        raise UsageError(
            f"No prompt named {name!r}.", "'tokencli prompt list' shows the saved prompts."
        )
    labels = store.labels(ledger, name).get(name, {}) if ledger is not None else {}
    return [from_row(r, labels) for r in rows]


# ------------------------------------------------------------------ changing the library


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`--param K=V` → the run options a version sets by default (max_tokens, temperature).

    `K=` (no value) is None: with `save_prompt(inherit=True)`, drop K from the latest's.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {pair!r} is not KEY=VALUE.", "e.g. --param temperature=0.2.")
        if value.strip():
            params[key] = _param_value(key, value.strip())
        elif key in PARAMS:
            params[key] = None
        else:
            _param_value(key, None)  # raises: unknown parameter
    return params


def _param_value(key: str, value: Any) -> Any:
    kind = PARAMS.get(key)
    if kind is None:
        raise UsageError(
            f"Unknown parameter {key!r}.",
            f"A prompt version keeps {' and '.join(PARAMS)}.",
        )
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if kind is int else float(value)
    except (TypeError, ValueError, OverflowError):  # int(inf) overflows
        raise UsageError(
            f"Parameter {key} = {value!r} is not {'a whole number' if kind is int else 'a number'}.",
            None,
        ) from None
    if (key == "max_tokens" and number < 1) or (key == "temperature" and not 0 <= number <= 2):
        raise UsageError(
            f"Parameter {key} = {value} is out of range.",
            "max_tokens is at least 1; temperature is 0 to 2.",
        )
    return number


def check_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Parameters read from a file: the same keys and ranges as `--param`."""
    try:
        return {k: _param_value(k, v) for k, v in params.items()}
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", exc.hint) from None


@dataclass(frozen=True, eq=False)
class Saved:
    version: PromptVersion
    added: bool  # False: identical to the latest version, nothing added
    label_was: int | None = None  # the version the label pointed at before


def save_prompt(
    ledger: Ledger,
    name: str,
    template: str,
    *,
    system: str | None = None,
    model: str | None = None,
    params: Mapping[str, Any] | None = None,
    note: str | None = None,
    label: str | None = None,
    now: datetime,
    version: int | None = None,
    created: str | None = None,
    inherit: bool = False,
) -> Saved:
    """Add a version of `name` (unless identical to its latest), and point `label` at it.

    With `inherit`, what is not given comes from the latest version: the system
    part and model when None (an empty string clears them), and the parameters,
    `params` overriding them key by key (a None value drops a key).
    """
    from ..ledger import format_ts
    from ..ledger import prompts as store

    check_name(name)
    if label is not None:
        check_label(label)
    if not template.strip():
        raise UsageError(f"The template of {name!r} is empty.", "Give the prompt's text.")
    newest = store.latest(ledger, name) if inherit else None
    if newest is not None:
        system = newest.system if system is None else system
        model = newest.model if model is None else model
        params = {**newest.params, **(params or {})}
    params = {k: v for k, v in (params or {}).items() if v is not None}
    system = system or None
    Template(template, where=f"the template of {name!r}")
    if system:
        Template(system, where=f"the system part of {name!r}")
    row, added = store.add_version(
        ledger,
        name=name,
        system=system,
        template=template,
        model=model or None,
        params=params,
        note=note or None,
        ts=created or format_ts(now),
        hash=content_hash(system, template, model or None, params),
        version=version,
    )
    label_was = None
    if label is not None:
        label_was = store.set_label(ledger, name, label, row.version, format_ts(now))
    labels = store.labels(ledger, name).get(name, {})
    return Saved(from_row(row, labels), added, label_was)


def set_label(
    ledger: Ledger, ref: str, label: str, *, now: datetime
) -> tuple[PromptVersion, int | None]:
    """Point `label` at the version `ref` names; (that version, the one it named before)."""
    from ..ledger import format_ts
    from ..ledger import prompts as store

    check_label(label)
    version = resolve_prompt(ledger, ref)
    before = store.set_label(ledger, version.name, label, version.version, format_ts(now))
    return replace(version, labels=tuple(sorted({*version.labels, label}))), before


@dataclass(frozen=True, eq=False)
class Removed:
    name: str
    deleted: list[int]
    retired: list[int]  # kept: recorded calls used them
    calls: Mapping[int, int]  # version → calls that used it


def remove_prompt(ledger: Ledger | None, ref: str) -> Removed:
    """Remove `NAME` (every version) or one version; versions calls used are only retired."""
    from ..ledger import prompts as store

    name, selector = parse_ref(ref)
    if selector is None and "@" not in ref:
        rows = store.all_versions(ledger, name) if ledger is not None else []
        versions = [r.version for r in rows if not r.retired]
        if not versions:
            raise UsageError(
                f"No prompt named {name!r}.", "'tokencli prompt list' shows the saved prompts."
            )
    else:
        versions = [resolve_prompt(ledger, ref).version]
    assert ledger is not None  # resolved above
    deleted, retired = store.remove_versions(ledger, name, versions)
    return Removed(name, deleted, retired, store.calls_using(ledger, name))


# ------------------------------------------------------------------ using a version


def apply_prompt(
    options: RunOptions, version: PromptVersion, variables: Mapping[str, str]
) -> tuple[RunOptions, list[str]]:
    """Run options for `version` filled with `variables`: (options, unused variable names).

    The version's model and parameters are defaults: what `options` sets wins.
    The call records the prompt's name and version.
    """
    system, text, unused = version.render(variables)
    params = version.params
    filled = replace(
        options,
        prompt=text,
        system=system,
        model=options.model or version.model,
        max_tokens=options.max_tokens
        if options.max_tokens is not None
        else params.get("max_tokens"),
        temperature=options.temperature
        if options.temperature is not None
        else params.get("temperature"),
        prompt_name=version.name,
        prompt_version=version.version,
    )
    return filled, unused
