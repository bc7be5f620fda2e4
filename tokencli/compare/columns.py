"""A comparison's columns, its inputs, and the `{{var}}` templating they share.

What a column argument means, first match wins:

1. `@PATH`: the text of that file (it must exist);
2. the path of an existing file: its text;
3. `NAME` or `NAME@VERSION` / `NAME@LABEL` (a name: a letter, then letters,
   digits, `_ - .`, ending in a letter or digit; no spaces): a version from the
   prompt library;
4. anything else (a text with a space in it, say): the text itself.

A column's text is a template: `{{name}}` is a variable (`--var`, a line of
`--vars-file`), `{{input}}` the text of an `--input` file. A template without an
`{{input}}` placeholder gets the input appended after a blank line, so
`compare "Summarize:" "Sum up briefly:" --input a.txt` compares two instructions
over the same document. Single braces stay literal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..prompts import PromptVersion

INPUT_VAR = "input"
_PROMPT_REF = re.compile(r"^[A-Za-z](?:[\w.-]*\w)?(@[\w.-]*\w)?$")
# Looks a prompt ref (`NAME`, `NAME@3`, `NAME@production`) up in the prompt library.
PromptLookup = Callable[[str], "PromptVersion"]


@dataclass(frozen=True)
class Column:
    """One side of the comparison: a system part, a user template, where they came from."""

    label: str  # A, B, C…
    ref: str  # as given on the command line
    kind: str  # inline | file | prompt
    template: str
    system: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    model: str | None = None  # the model saved with a prompt version
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, variables: Mapping[str, str]) -> tuple[str | None, str, set[str]]:
        """(system, user text, names of `variables` not used) for one input."""
        system, used_s = render_template(self.system, variables) if self.system else (None, set())
        user, used_u = render_template(self.template, variables)
        used = used_s | used_u
        if INPUT_VAR in variables and INPUT_VAR not in used:
            user = f"{user.rstrip()}\n\n{variables[INPUT_VAR]}"
            used.add(INPUT_VAR)
        return system, user, set(variables) - used

    def spec(self) -> dict[str, Any]:
        """What is saved with the comparison (enough to run it again: `--resume`)."""
        return {
            "label": self.label,
            "ref": self.ref,
            "kind": self.kind,
            "template": self.template,
            "system": self.system,
            "prompt_name": self.prompt_name,
            "prompt_version": self.prompt_version,
            "params": self.params,
        }

    @classmethod
    def from_spec(cls, data: Mapping[str, Any]) -> Column:
        return cls(
            label=data["label"],
            ref=data["ref"],
            kind=data["kind"],
            template=data["template"],
            system=data.get("system"),
            prompt_name=data.get("prompt_name"),
            prompt_version=data.get("prompt_version"),
            params=dict(data.get("params") or {}),
        )


# ---------------------------------------------------------------- templating


def render_template(template: str, variables: Mapping[str, str]) -> tuple[str, set[str]]:
    """`{{name}}` → its value, as the prompt library renders (single braces stay).

    Returns (text, names used); a placeholder without a value, or a malformed
    one, is a usage error naming it (`prompts.Template`).
    """
    from ..prompts.template import Template

    parsed = Template(template)
    return parsed.render(variables), set(parsed.names)


# ---------------------------------------------------------------- columns


def resolve_columns(
    refs: Sequence[str],
    read_file: Callable[[str], str] | None = None,
    lookup: PromptLookup | None = None,
) -> list[Column]:
    """Every column argument → a `Column`, labelled A, B, C… in order."""
    if len(refs) < 2:
        raise UsageError(
            "A comparison needs at least two columns.",
            'Give two or more prompts, e.g. tokencli compare "Summarize: …" "In one line: …" -m MODEL.',
        )
    return [resolve_column(ref, _label(i), read_file, lookup) for i, ref in enumerate(refs)]


def _label(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def resolve_column(
    ref: str,
    label: str,
    read_file: Callable[[str], str] | None = None,
    lookup: PromptLookup | None = None,
) -> Column:
    read = read_file or _read_text
    if ref.startswith("@") and len(ref) > 1:
        return Column(label, ref, "file", read(ref[1:]))
    if "\n" not in ref and len(ref) < 1024 and Path(ref).is_file():
        return Column(label, ref, "file", read(ref))
    if _PROMPT_REF.match(ref):
        column = resolve_prompt_column(ref, lookup)
        return Column(
            label,
            ref,
            "prompt",
            column.template,
            column.system,
            column.prompt_name,
            column.prompt_version,
            column.model,
            column.params,
        )
    if not ref.strip():
        raise UsageError(f"Column {label} is empty.", "Give a prompt text, @FILE or NAME@VERSION.")
    return Column(label, ref, "inline", ref)


def resolve_prompt_column(ref: str, lookup: PromptLookup | None) -> Column:
    """`NAME[@VERSION|@LABEL]` → a column from the prompt library."""
    if lookup is None:
        raise UsageError(
            f"{ref!r} is not a file, and no prompt library was given to look it up in.",
            "Write the text itself (with a space in it), @FILE, or a path.",
        )
    version = lookup(ref)
    return Column(
        "",
        ref,
        "prompt",
        version.template,
        version.system,
        version.name,
        version.version,
        version.model,
        dict(version.params),
    )


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise UsageError(f"No such file: {path}.", "Check the path.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory.", "Give a file.") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text.", None) from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror}.", None) from None


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """One set of variables the columns are rendered with."""

    label: str
    variables: dict[str, str]


def parse_var(text: str) -> tuple[str, str]:
    """`--var KEY=VALUE`, as `run --prompt` reads it."""
    from ..prompts.variables import parse_pair

    return parse_pair(text)


def parse_vars_file(text: str, source: str) -> list[dict[str, str]]:
    """JSON lines, one object of variables per line (blank lines and `#` comments skipped);
    each line's values read as `run --prompt --vars-file` reads a JSON object."""
    from ..prompts.variables import vars_from_json

    found: list[dict[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{source} line {number} is not valid JSON ({exc.msg}).",
                'Each line is an object of variables, e.g. {"topic": "tides"}.',
            ) from None
        if not isinstance(data, dict) or not data:
            raise UsageError(
                f"{source} line {number} is not an object of variables.",
                'Each line is an object of variables, e.g. {"topic": "tides"}.',
            )
        found.append(vars_from_json(data, f"{source} line {number}"))
    if not found:
        raise UsageError(f"{source} has no variables.", "Write one JSON object per line.")
    return found


def build_inputs(
    variables: Mapping[str, str],
    vars_lines: Sequence[dict[str, str]] = (),
    input_files: Sequence[tuple[str, str]] = (),
) -> list[Input]:
    """The inputs: each vars-file line and each --input file over the --var values; else those alone."""
    inputs = [
        Input(f"vars line {i}", {**variables, **line}) for i, line in enumerate(vars_lines, 1)
    ]
    inputs += [Input(Path(name).name, {**variables, INPUT_VAR: text}) for name, text in input_files]
    return inputs or [Input("input", dict(variables))]
