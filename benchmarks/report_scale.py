"""Reports at scale: whole-process times of `tokencli report` on a year of heavy use.

    python benchmarks/report_scale.py [--ledger PATH] [--calls 1000000] [--runs 11]

Builds (or reuses, at --ledger) a ledger of --calls calls over 12 months
through the ledger's own write path (benchmarks/scale_ledger.py), then times,
interleaved and as medians of --runs whole processes:

- `python -c pass` and `tokencli --help` (the floors, in the same run);
- `tokencli report --month THIS-MONTH`;
- `tokencli report --by day --last 365d`;
- `tokencli report --by project --month THIS-MONTH` (the daily detail rollup).

Targets (issue 5): under 200 ms and 300 ms whole process for the first two.
Machines here are shared and noisy: the ratios to the floors travel better
than the milliseconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_ledger import build


def tokencli_exe() -> list[str]:
    found = shutil.which("tokencli", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "tokencli"]


def time_once(cmd: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-500:]}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", type=Path, default=Path("/tmp/tokencli-bench-1m.db"))
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()

    if not args.ledger.exists():
        print(f"building {args.calls:,} calls into {args.ledger} ...", flush=True)
        seconds = build(args.ledger, args.calls, 12, datetime.now(UTC))
        print(f"built in {seconds:.0f} s (the ledger's import path, rollups included)")
    env = dict(os.environ, TOKENCLI_DB=str(args.ledger), TZ=os.environ.get("TZ", "UTC"))
    month = datetime.now(UTC).strftime("%Y-%m")
    exe = tokencli_exe()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "tokencli --help": [*exe, "--help"],
        f"report --month {month}": [*exe, "report", "--month", month],
        "report --by day --last 365d": [*exe, "report", "--by", "day", "--last", "365d"],
        f"report --by project --month {month}": [
            *exe,
            "report",
            "--by",
            "project",
            "--month",
            month,
        ],
    }
    for cmd in commands.values():  # warm the page cache and the bytecode
        time_once(cmd, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            samples[name].append(time_once(cmd, env))
    floor = statistics.median(samples["tokencli --help"])
    print(f"\n{args.ledger} ({args.calls:,} calls), median of {args.runs} runs\n")
    print("| command | median ms | × tokencli --help |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.0f} | {median / floor:.2f} |")


if __name__ == "__main__":
    main()
