"""Whole-process times of the same commands on two tokencli installs, interleaved.

    python benchmarks/ab_startup.py OLD_TOKENCLI NEW_TOKENCLI [--runs 41]

e.g. an install of an earlier commit in one virtual environment and of this
tree in another. Each install gets its own TOKENCLI_HOME (a warm price index
and a few calls in its ledger) so neither rebuilds the other's files. Runs
alternate which install goes first; the table gives each command's median and
the ratio new ÷ old, which travels better than milliseconds on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["logs"],
    ["logs", "--json", "-n", "50"],
    ["models"],
    ["config", "show"],
    ["run", "-m", "mock:echo", "hi"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the baseline's tokencli executable")
    parser.add_argument("new", help="the tokencli executable to compare")
    parser.add_argument("--runs", type=int, default=41)
    args = parser.parse_args()
    installs = {"old": args.old, "new": args.new}
    with tempfile.TemporaryDirectory() as tmp:
        envs = {}
        for name, exe in installs.items():
            env = dict(os.environ, TOKENCLI_HOME=str(Path(tmp) / name))
            for warm in (
                ["models"],
                ["run", "-m", "mock:echo", "a"],
                ["run", "-m", "mock:echo", "b"],
            ):
                subprocess.run([exe, *warm], env=env, capture_output=True, check=True)
            envs[name] = env
        times: dict[tuple[str, int], list[float]] = {}
        for run in range(args.runs):
            for index, command in enumerate(COMMANDS):
                order = list(installs.items())
                for name, exe in order if run % 2 else reversed(order):
                    start = time.perf_counter()
                    subprocess.run([exe, *command], env=envs[name], capture_output=True)
                    times.setdefault((name, index), []).append(time.perf_counter() - start)
    print(f"median of {args.runs} runs each\n")
    print("| command | old | new | new ÷ old |")
    print("|---|---:|---:|---:|")
    for index, command in enumerate(COMMANDS):
        old = statistics.median(times[("old", index)]) * 1000
        new = statistics.median(times[("new", index)]) * 1000
        print(f"| `tokencli {' '.join(command)}` | {old:.1f} ms | {new:.1f} ms | {new / old:.2f} |")


if __name__ == "__main__":
    main()
