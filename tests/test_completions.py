"""Completion scripts: committed copies match the CLI, and they complete for real."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tokencli.cli.completion import SHELLS, generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_scripts_are_current(shell):
    committed = (ROOT / "completions" / f"tokencli.{shell}").read_text()
    assert committed == generate(shell), (
        f"completions/tokencli.{shell} is stale: run `tokencli completion {shell} > completions/tokencli.{shell}`"
    )


def test_completion_command_prints_the_script(cli):
    r = cli("completion", "fish")
    assert r.exit_code == 0 and r.stdout == generate("fish")
    r = cli("completion", "powershell")
    assert r.exit_code == 2 and "Choose one of: bash, zsh, fish." in r.stderr


def bash_complete(*words: str) -> list[str]:
    """Run the bash completion function as bash would for `tokencli WORDS`."""
    script = ROOT / "completions" / "tokencli.bash"
    line = " ".join(["tokencli", *words])
    cword = len(words)
    quoted = " ".join(f"'{w}'" for w in ["tokencli", *words])
    program = f"""
source '{script}'
COMP_WORDS=({quoted})
COMP_CWORD={cword}
COMP_LINE='{line}'
_tokencli
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True).stdout
    return sorted(x for x in out.splitlines() if x)


def test_bash_completes_commands_subcommands_options_and_choices(tmp_path):
    assert bash_complete("lo") == ["logs"]
    assert bash_complete("") == [
        "alerts",
        "batch",
        "budget",
        "compare",
        "completion",
        "config",
        "count",
        "forecast",
        "keys",
        "ledger",
        "logs",
        "models",
        "prompt",
        "reconcile",
        "refill",
        "report",
        "run",
        "serve",
    ]
    assert bash_complete("prompt", "") == [
        "diff",
        "export",
        "import",
        "label",
        "list",
        "rm",
        "save",
        "show",
    ]
    assert bash_complete("prompt", "export", "--format", "") == ["toml", "yaml"]
    assert "--vars-file" in bash_complete("run", "--va")
    assert bash_complete("config", "") == ["init", "path", "show", "validate"]
    assert bash_complete("ledger", "") == ["export", "import", "prune"]
    assert bash_complete("ledger", "export", "--format", "") == ["csv", "jsonl", "prometheus"]
    assert bash_complete("--db", "x.db", "keys", "") == ["list", "rm", "set"]
    assert "--max-tokens" in bash_complete("run", "--ma")
    assert bash_complete("logs", "--status", "in") == ["interrupted"]
    assert bash_complete("logs", "-n", "5", "sh") == ["show"]
    assert bash_complete("run", "-m", "mock:echo", "--js") == ["--json"]


@pytest.mark.parametrize("shell,flag", [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")])
def test_scripts_parse_in_their_shell(shell, flag):
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    result = subprocess.run(
        [exe, flag, str(ROOT / "completions" / f"tokencli.{shell}")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
