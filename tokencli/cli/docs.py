"""docs/cli.md: the command-line reference, generated from the command tree's own help.

    python -m tokencli.cli.docs > docs/cli.md

Every command and sub-command (the `ledger`, `config`, `keys` and `logs` groups
included) gets its `--help` text, as plain text at a fixed width, so the file is
the same on every machine; `tests/test_cli_docs.py` fails when it is stale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from .app import build_app

WIDTH = 100
REGENERATE = "python -m tokencli.cli.docs > docs/cli.md"


def commands() -> Iterator[tuple[str, str]]:
    """(command path, help text) for the root and every command under it, depth first."""
    root = typer.main.get_command(build_app())  # every command module, not the lazy subset
    ctx = root.make_context(
        "tokencli", [], resilient_parsing=True, terminal_width=WIDTH, max_content_width=WIDTH
    )
    yield from _walk(root, ctx)


def _walk(command: Any, ctx: Any) -> Iterator[tuple[str, str]]:
    yield ctx.command_path, command.get_help(ctx).rstrip() + "\n"
    if not hasattr(command, "commands"):  # typer bundles its own click: a group has commands
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        yield from _walk(sub, sub.make_context(name, [], parent=ctx, resilient_parsing=True))


def reference() -> str:
    """docs/cli.md's text."""
    found = list(commands())
    lines = [
        "# Command-line reference",
        "",
        f"Generated from the commands' `--help` by `{REGENERATE}`; do not edit it by hand.",
        "The `--json` documents are described in [json.md](json.md).",
        "",
        *(f"- [`{path}`](#{_anchor(path)})" for path, _ in found),
    ]
    for path, text in found:
        lines += ["", f"## {path}", "", "```text", text.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def _anchor(path: str) -> str:
    return path.replace(" ", "-")


if __name__ == "__main__":
    import sys

    sys.stdout.write(reference())
