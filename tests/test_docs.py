"""The README's commands stay true: CI runs the same install and test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fenced_commands(text: str) -> list[str]:
    return [
        line for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()
    ]


def test_readme_test_command_matches_ci():
    readme = fenced_commands((ROOT / "README.md").read_text())
    test_command = next(line for line in readme if "pytest" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    assert (
        "pip install torch==2.13.0" in test_command
        and "python -m pip install -q torch==2.13.0" in ci
    )
    assert (
        "pip install -e '.[dev,local,gateway]'" in test_command
        and "python -m pip install -q -e '.[dev,local,gateway]'" in ci
    )
    assert "OMP_NUM_THREADS=1 python -m pytest" in test_command
    assert "export OMP_NUM_THREADS=1" in ci and "python -m pytest" in ci


def test_readme_quick_start_runs_the_mock_offline(cli):
    """The tokencli steps of the README's first command work with no key and no network."""
    import shlex

    quick = fenced_commands((ROOT / "README.md").read_text())[0]
    assert quick.startswith("python3 -m venv .venv") and "pip install ." in quick
    steps = [shlex.split(step) for step in quick.split("&&")]
    tokencli_steps = [words[1:] for words in steps if words[0] == "tokencli"]
    assert [words[0] for words in tokencli_steps] == ["run", "logs"]
    for words in tokencli_steps:
        result = cli(*words)
        assert result.exit_code == 0, result.stderr
    assert "mock:echo" in cli("logs").stdout


def readme_tokencli_commands() -> list[list[str]]:
    """Every `tokencli ...` line of the README's shell blocks, as arguments (up to a pipe or redirect)."""
    import shlex

    commands = []
    for line in fenced_commands((ROOT / "README.md").read_text()):
        if not line.startswith("tokencli "):
            continue
        lexer = shlex.shlex(line.replace("<ID>", "01ABCDEF"), posix=True, punctuation_chars="|<>")
        lexer.whitespace_split = True
        words = []
        for word in lexer:
            if word[0] in "|<>":
                break
            words.append(word)
        commands.append(words[1:])
    return commands


@pytest.mark.parametrize("args", readme_tokencli_commands(), ids=" ".join)
def test_readme_commands_name_real_commands_and_options(args):
    """Each command the README shows parses: its subcommands, options and choices exist."""
    import typer

    from tokencli.cli.app import build_app, command_name

    # typer bundles its own click: groups are told apart by having subcommands.
    command = typer.main.get_command(build_app(command_name(args)))
    rest, name, parent = list(args), "tokencli", None
    while True:
        ctx = command.make_context(name, rest, parent=parent, resilient_parsing=False)
        if not hasattr(command, "commands"):
            break
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"{name}: no such command"
        command, parent = sub, ctx
