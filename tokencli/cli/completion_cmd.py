"""`tokencli completion SHELL`: print a completion script (see completions/)."""

from typing import Annotated

import typer

from ..errors import UsageError
from .context import app_context

HELP = """Print the shell completion script for bash, zsh or fish.

bash: tokencli completion bash > ~/.local/share/bash-completion/completions/tokencli
zsh:  tokencli completion zsh > ~/.zfunc/_tokencli   (with ~/.zfunc on $fpath)
fish: tokencli completion fish > ~/.config/fish/completions/tokencli.fish
"""


def register(app: typer.Typer) -> None:
    app.command("completion", help=HELP)(completion)


def completion(
    ctx: typer.Context,
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    from .completion import SHELLS, generate

    if shell not in SHELLS:
        raise UsageError(f"No completion for {shell!r}.", f"Choose one of: {', '.join(SHELLS)}.")
    app_context(ctx).streams.stdout.write(generate(shell))
