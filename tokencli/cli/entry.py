"""The `tokencli` executable: answers --version before loading the CLI framework."""

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from .. import __version__

        try:
            print(f"tokencli {__version__}", flush=True)
        except OSError as exc:  # a closed or full stdout: as the CLI's boundary says it
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the exit's flush must not fail again
            if isinstance(exc, BrokenPipeError):  # the reader went away: as SIGPIPE would
                sys.exit(141)
            print(
                f"tokencli: Cannot write to stdout: {exc.strerror}."
                " Free some space, or send the output elsewhere.",
                file=sys.stderr,
            )
            sys.exit(2)
        return
    from .app import main as app_main

    app_main()
