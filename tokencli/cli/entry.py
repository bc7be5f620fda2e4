"""The `tokencli` executable: answers --version before loading the CLI framework."""

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from .. import __version__

        print(f"tokencli {__version__}")
        return
    from .app import main as app_main

    app_main()
