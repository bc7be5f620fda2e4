"""Rewrite one table of config.toml in place, keeping every other byte.

`set_table(path, ("budgets", "monthly"), {"amount": 50, "period": "month"})`
renders the table with tomli-w and puts it where the table was: its header,
its keys and its sub-tables (`[budgets.monthly.x]`) make way for the new text.
A table the file does not have yet goes after its siblings (the last
`[budgets.*]`), or at the end. `remove_table` takes a table out. Comments,
order, spacing and line endings everywhere else stay exactly as they were;
comments inside the replaced table go with it.

A table written inline (`monthly = { amount = 50 }`) or with dotted keys
(`monthly.amount = 50`) is rewritten as a `[budgets.monthly]` section; one
inside another inline table or an array of tables is refused. Every edit is
checked before it is written: the new text must parse to the old document
with only that table changed, or the file is left alone and a `ConfigError`
says why. A file that does not parse is never rewritten.

Writes are atomic (a temporary file renamed over the config, with the
config's mode; a new config is owner-only, 0600), and a symlinked config is
written where the link points.
"""

from __future__ import annotations

import copy
import os
import stat
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigError
from . import tomlscan
from .loader import parse_config_text, read_config_file
from .schema import dotted

_HINT = "Edit that part of the file by hand, then check it with 'tokencli config validate'."


@dataclass(frozen=True)
class Edit:
    text: str  # the whole new text
    # Where the rendered table, with the blank lines set around it, sits in `text`
    # (start == end when a table was only removed).
    start: int
    end: int


def set_table(path: Path, key_path: Sequence[str], table: Mapping[str, Any]) -> None:
    """Write `[KEY.PATH]` with `table`'s values (sub-dicts become sub-tables)."""
    _edit(path, _keys(key_path), table)


def remove_table(path: Path, key_path: Sequence[str]) -> bool:
    """Take `[KEY.PATH]` and its sub-tables out; False if the file has no such table."""
    return _edit(path, _keys(key_path), None)


def _keys(key_path: Sequence[str]) -> tuple[str, ...]:
    if isinstance(key_path, str):  # "budgets.monthly" would be split into letters
        raise TypeError(f"give the keys apart, e.g. ('budgets', 'monthly'), not {key_path!r}")
    return tuple(key_path)


def splice_table(
    text: str, key_path: tuple[str, ...], table: Mapping[str, Any] | None, path: Path
) -> Edit:
    """`text` with the table at `key_path` replaced by `table` (None: removed).

    Pure: `path` only names the file in errors.
    """
    if not key_path or not all(isinstance(k, str) for k in key_path):
        raise ValueError(f"not a table path: {key_path!r}")
    doc = parse_config_text(path, text)
    try:
        statements = tomlscan.statements(text)
    except (IndexError, ValueError):  # a layout the scanner does not follow: touch nothing
        raise ConfigError(
            f"Cannot edit {path}: tokencli cannot follow its layout.", _HINT
        ) from None
    _refuse_non_tables(doc, key_path, statements, path)
    removals, anchor = _pieces(statements, key_path, path)
    if table is None:
        removals = _tidy(text, removals)

    kept = _without(text, removals)
    if table is None:
        new_text, start, end = kept, 0, 0
        expected = _with_table(doc, key_path, None)
    else:
        newline = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
        rendered = tomli_w.dumps(_nest(key_path, table))
        if anchor is not None:
            at = _shift(anchor, removals)
            insert = rendered.replace("\n", newline)
        else:
            at = _shift(_after_siblings(statements, key_path, removals, len(text)), removals)
            insert = _separated(kept, at, rendered.replace("\n", newline), newline)
        new_text = kept[:at] + insert + kept[at:]
        start, end = at, at + len(insert)
        expected = _with_table(doc, key_path, _at(tomllib.loads(rendered), key_path))

    try:
        result = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        result = None
    if result is None or _pruned(result, key_path) != _pruned(expected, key_path):
        line = min((s.line for s in statements if _within(s.key, key_path)), default=None)
        at_line = f" (line {line})" if line else ""
        raise ConfigError(
            f"Cannot edit {path}{at_line}: {dotted(key_path)} is written in a way "
            "tokencli cannot rewrite without changing something else.",
            _HINT,
        )
    return Edit(new_text, start, end)


# ----------------------------------------------------------------- the pieces


def _refuse_non_tables(
    doc: Mapping[str, Any],
    key_path: tuple[str, ...],
    statements: list[tomlscan.Statement],
    path: Path,
) -> None:
    """Refuse a path through an array of tables, or to a value that is not a table."""
    current: Any = doc
    for depth, key in enumerate(key_path, start=1):
        if not isinstance(current, dict) or key not in current:
            return
        current = current[key]
        prefix = key_path[:depth]
        if isinstance(current, list):
            raise _refusal(path, statements, prefix, "is an array, not a table")
        if not isinstance(current, dict):
            raise _refusal(path, statements, prefix, "is a value, not a table")


def _refusal(
    path: Path, statements: list[tomlscan.Statement], key_path: tuple[str, ...], problem: str
) -> ConfigError:
    line = next((s.line for s in statements if s.key == key_path), None)
    at_line = f" (line {line})" if line else ""
    return ConfigError(f"Cannot edit {path}{at_line}: {dotted(key_path)} {problem}.", _HINT)


def _pieces(
    statements: list[tomlscan.Statement], key_path: tuple[str, ...], path: Path
) -> tuple[list[tuple[int, int]], int | None]:
    """The spans that define the table, and where its new text goes if in their place.

    Header blocks of the table and its sub-tables (`[t]`, `[t.sub]`, `[[t.list]]`)
    run from the first header to the last key before a header of another table:
    the comments and blank lines after that belong to what follows. Pairs that
    define it from outside (`t = {...}`, `t.x = 1`) are single statements. The
    new text goes where the first header block was; with none, nowhere yet.
    """
    removals: list[tuple[int, int]] = []
    anchor: int | None = None
    block_start: int | None = None  # of the run of the table's header blocks being read
    block_end = 0
    for s in statements:
        if s.is_header:
            if _within(s.key, key_path):
                if block_start is None:
                    block_start = s.start
                    anchor = s.start if anchor is None else anchor
                block_end = s.end
            elif block_start is not None:
                removals.append((block_start, block_end))
                block_start = None
        elif block_start is not None:
            if s.kind == "pair":
                block_end = s.end
        elif s.kind == "pair":
            if _within(s.key, key_path):
                removals.append((s.start, s.end))
            elif s.key == key_path[: len(s.key)]:
                raise ConfigError(
                    f"Cannot edit {path} (line {s.line}): {dotted(s.key)} is an inline table, "
                    f"and {dotted(key_path)} is inside it.",
                    f"Write it as [{dotted(key_path)}] sections, or edit it by hand.",
                )
    if block_start is not None:
        removals.append((block_start, block_end))
    return removals, anchor


def _tidy(text: str, removals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Removals that also take one of the blank lines they would leave side by side,
    so a table set at the end and removed again leaves the file as it was."""
    out = []
    for start, end in removals:
        blank_before = start == 0 or _last_line_blank(text[:start])
        if blank_before and end < len(text) and not _first_line(text[end:]).strip(" \t\r"):
            newline = text.find("\n", end)
            end = len(text) if newline < 0 else newline + 1
        elif start > 0 and blank_before and not text[end:].strip(" \t\r\n"):
            start = text.rfind("\n", 0, text.rfind("\n", 0, start)) + 1
        out.append((start, end))
    return out


def _within(key: tuple[str, ...], key_path: tuple[str, ...]) -> bool:
    return key[: len(key_path)] == key_path


def _after_siblings(
    statements: list[tomlscan.Statement],
    key_path: tuple[str, ...],
    removals: list[tuple[int, int]],
    end_of_text: int,
) -> int:
    """Where a new table goes: after the last key of the last `[parent...]` block, else at the end."""
    parent = key_path[:-1]
    removed = set(removals)
    at: int | None = None
    in_family = False
    for s in statements:
        if s.is_header:
            in_family = bool(parent) and _within(s.key, parent)
            if in_family:
                at = s.end
        elif in_family and s.kind == "pair" and (s.start, s.end) not in removed:
            at = s.end
    return end_of_text if at is None else at


def _without(text: str, removals: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in removals:  # in order; a tidied one may overlap the one before
        out.append(text[pos:start])
        pos = max(pos, end)
    out.append(text[pos:])
    return "".join(out)


def _shift(offset: int, removals: list[tuple[int, int]]) -> int:
    """Where `offset` of the old text lands once `removals` are taken out."""
    return offset - sum(min(end, offset) - start for start, end in removals if start < offset)


def _separated(text: str, at: int, rendered: str, newline: str) -> str:
    """`rendered` with a blank line before and after it, where there is none already."""
    before, after = text[:at], text[at:]
    lead = trail = ""
    if before:
        if not before.endswith("\n"):
            lead = newline
        if not _last_line_blank(before + lead):
            lead += newline
    if after and _first_line(after).strip(" \t\r"):
        trail = newline
    return lead + rendered + trail


def _last_line_blank(text: str) -> bool:
    """Whether the line ending `text` (which ends with a newline) holds nothing."""
    body = text[:-1]
    return not body.rsplit("\n", 1)[-1].strip(" \t\r") if "\n" in body else not body.strip(" \t\r")


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


# ------------------------------------------------------------------ documents


def _nest(key_path: tuple[str, ...], table: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = dict(table)
    for key in reversed(key_path):
        nested = {key: nested}
    return nested


def _at(doc: Mapping[str, Any], key_path: tuple[str, ...]) -> Any:
    for key in key_path:
        doc = doc[key]
    return doc


def _with_table(
    doc: Mapping[str, Any], key_path: tuple[str, ...], table: Any | None
) -> dict[str, Any]:
    out = copy.deepcopy(dict(doc))
    current = out
    for key in key_path[:-1]:
        current = current.setdefault(key, {})
    if table is None:
        current.pop(key_path[-1], None)
    else:
        current[key_path[-1]] = table
    return out


def _pruned(doc: Mapping[str, Any], key_path: tuple[str, ...]) -> dict[str, Any]:
    """`doc` without the tables on `key_path` left empty: removing `[a.b]` may take an
    `a` that only it created."""
    out = copy.deepcopy(dict(doc))
    for depth in range(len(key_path) - 1, 0, -1):
        try:
            parent = _at(out, key_path[: depth - 1])
            if parent[key_path[depth - 1]] == {}:
                del parent[key_path[depth - 1]]
        except (KeyError, TypeError):
            pass
    return out


# ----------------------------------------------------------------------- files


def _edit(path: Path, key_path: tuple[str, ...], table: Mapping[str, Any] | None) -> bool:
    # A symlinked config is edited where it points, the link left in place.
    target = Path(os.path.realpath(path))
    existed = target.exists()
    _, text = read_config_file(path)  # a file that does not parse stops here
    edit = splice_table(text, key_path, table, path)
    if edit.text == text:
        return False
    data = edit.text.encode("utf-8")
    try:
        if existed and target.read_bytes() != text.encode("utf-8"):
            raise ConfigError(
                f"Config {path} changed while it was being edited.", "Run the command again."
            )
        _write_atomically(target, data, existed)
    except OSError as exc:
        raise ConfigError(f"Cannot write config {path}: {exc.strerror}.", None) from None
    return True


def _write_atomically(target: Path, data: bytes, existed: bool) -> None:
    if existed:
        mode = stat.S_IMODE(target.stat().st_mode)
    else:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = 0o600
    # mkstemp creates the file 0600; it gets the config's own mode before it replaces it.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
