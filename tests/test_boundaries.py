"""Architecture rules that keep tokencli fast and the core usable without the CLI."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

PACKAGE = Path(__file__).resolve().parents[1] / "tokencli"
HEAVY = {
    "httpx", "genai_prices", "torch", "transformers", "sqlite_utils", "pydantic", "uvicorn", "starlette"
}  # fmt: skip


def imported_modules(home: Path, *args: str) -> set[str]:
    """Top-level modules a real `tokencli ARGS` process imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tokencli", *args],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("logs",),
        ("logs", "--json"),
        ("config", "show"),
        ("run", "--help"),
        ("serve", "--help"),
        ("serve", "--print-service"),
        ("report", "--by", "day"),
        ("report", "--format", "html"),
        ("forecast", "--by", "provider"),
        ("ledger", "export"),
        ("ledger", "export", "--format", "prometheus"),
        ("ledger", "prune", "--older-than", "30d", "--dry-run"),
    ],
)
def test_fast_paths_import_nothing_heavy(home, args):
    assert cli_run_mock(home)  # a ledger with a call in it
    assert imported_modules(home, *args) & HEAVY == set()


def test_models_with_a_warm_price_index_imports_nothing_heavy(home):
    imported_modules(home, "models")  # the first run builds the index
    assert imported_modules(home, "models") & HEAVY == set()


def test_a_mock_run_needs_no_network_library(home):
    assert (
        imported_modules(home, "run", "-m", "mock:echo", "hi") & {"httpx", "torch", "transformers"}
        == set()
    )


def cli_run_mock(home: Path) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "tokencli", "run", "-m", "mock:echo", "x"],
        env=subprocess_env(home),
        capture_output=True,
    )
    return result.returncode == 0


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_cli_imports_typer_and_rich():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imports(path) & {"typer", "rich", "click"})
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


SQL_MODULES = {"sqlite3", "sqlite_utils"}
# A ledger's connection, or the write transaction that hands it out.
_CONNECTION = re.compile(r"\._?conn\b|\bledger\.write\(")


def sql_doors(path: Path) -> list[str]:
    """What in a module outside tokencli/ledger/ reaches SQL around the ledger's methods."""
    found = sorted(_imports(path) & SQL_MODULES)
    found += _CONNECTION.findall(path.read_text())
    return found


def test_only_the_ledger_speaks_sql():
    offenders = {
        str(path.relative_to(PACKAGE)): doors
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "ledger" and (doors := sql_doors(path))
    }
    assert offenders == {}


def test_the_sql_boundary_check_bites(tmp_path):
    module = tmp_path / "reporting.py"
    module.write_text(
        "import sqlite3\n"
        "from sqlite_utils import Database\n"
        "rows = ledger.conn.execute('SELECT 1')\n"
        "other = store._conn\n"
        "with ledger.write() as c:\n"
        "    pass\n"
        "sys.stdout.write('fine'); ledger.connect_timeout = 1\n"
    )
    assert sql_doors(module) == ["sqlite3", "sqlite_utils", ".conn", "._conn", "ledger.write("]


def test_core_works_without_the_cli_loaded(tmp_path):
    code = (
        "import sys, tokencli.calls.engine, tokencli.settings.loader, tokencli.ledger, tokencli.pricing.cost, tokencli.pricing.index;"
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_every_command_has_help():
    import typer.main

    from tokencli.cli.app import build_app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    missing = [
        " ".join(p)
        for p, c in walk(typer.main.get_command(build_app()), ["tokencli"])
        if not (c.help or "").strip()
    ]
    assert missing == []


def test_root_help_from_summaries_equals_the_full_tree(cli):
    """The fast root help (names and summaries only) prints exactly what the full tree would."""
    import typer.main

    from tokencli.cli.app import COMMANDS, build_app, summary_app

    full = typer.main.get_command(build_app())
    for name, (_, summary) in COMMANDS.items():
        first_paragraph = " ".join(
            (full.commands[name].help or "").strip().split("\n\n")[0].split()
        )
        assert summary == first_paragraph, name

    def root_help(app):
        command = typer.main.get_command(app)
        ctx = command.make_context("tokencli", [], resilient_parsing=True)
        return command.get_help(ctx)

    assert root_help(summary_app()) == root_help(build_app())
    assert cli("--help").stdout == cli().stdout
    assert "count" in cli("--help").stdout
