"""docs/cli.md is the command tree's own help: a test fails when it falls behind."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tokencli.cli.docs import REGENERATE, reference

CLI_MD = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_the_current_help():
    written, current = CLI_MD.read_text("utf-8"), reference()
    if written != current:
        diff = difflib.unified_diff(
            written.splitlines(), current.splitlines(), "docs/cli.md", "--help", lineterm="", n=1
        )
        pytest.fail(
            f"docs/cli.md is stale; regenerate it: {REGENERATE}\n" + "\n".join(list(diff)[:40])
        )


def test_the_reference_covers_every_command_and_sub_command():
    text = reference()
    for path in (
        "tokencli",
        "tokencli run",
        "tokencli logs show",
        "tokencli ledger import",
        "tokencli ledger prune",
        "tokencli config show",
        "tokencli keys set",
    ):
        assert f"\n## {path}\n\n```text\nUsage: {path} " in text, path


def test_the_reference_does_not_depend_on_the_terminal(monkeypatch):
    first = reference()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert reference() == first
    assert "\x1b[" not in first
