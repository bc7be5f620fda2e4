"""The ledger as files at scale: export, import and prune a year of heavy use.

    python benchmarks/ledger_io.py [--ledger PATH] [--calls 1000000] [--workdir DIR]

Builds (or reuses, at --ledger) a ledger of --calls calls over 12 months
through the ledger's own write path (benchmarks/scale_ledger.py), then times
whole `tokencli` processes, each next to a floor measured in the same run:

- `ledger export --format jsonl -o FILE` against a bare Python loop that
  fetches the same rows from SQLite (no encoding, no writing);
- `ledger import FILE` into an empty ledger, and again into the full one
  (every call already present), against a bare loop that reads the file and
  `json.loads` every line (no checking, no writing); a file this big is parsed
  in a second process while the first writes (see tokencli/ledger/staging.py);
- `ledger export --format prometheus`;
- `ledger prune --older-than 180d` on a copy (dry run, then for real), with
  the month report of a pruned month before and after, which must not change.

Target (issue 5): importing a million calls "in well under a minute".
Machines here are shared and noisy: the ratios to the floors travel better
than the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_scale import tokencli_exe
from scale_ledger import build

FETCH_FLOOR = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
cur = conn.execute("SELECT c.*, t.system_text, t.prompt_text, t.response_text FROM calls c "
                   "LEFT JOIN call_texts t ON t.call_id = c.id ORDER BY c.ts, c.id")
n = 0
while rows := cur.fetchmany(2000):
    n += len(rows)
print(n)
"""
PARSE_FLOOR = """
import json, sys
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)
        n += 1
print(n)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-800:]}")
    return elapsed, done.stdout + done.stderr


def month_total(exe: list[str], env: dict[str, str], month: str) -> tuple[int, str]:
    _, out = timed([*exe, "report", "--month", month, "--tz", "UTC", "--json"], env)
    data = json.loads(out[: out.rindex("}") + 1])
    return data["totals"]["calls"], data["totals"]["cost"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", type=Path, default=Path("/tmp/tokencli-bench-1m.db"))
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tokencli-bench-io"))
    args = parser.parse_args()

    if not args.ledger.exists():
        print(f"building {args.calls:,} calls into {args.ledger} ...", flush=True)
        seconds = build(args.ledger, args.calls, 12, datetime.now(UTC))
        print(f"built in {seconds:.0f} s (the ledger's import path, rollups included)")
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    exe = tokencli_exe()
    env = dict(os.environ, TZ="UTC")
    src = ["--db", str(args.ledger)]
    calls = sqlite3.connect(args.ledger).execute("SELECT count(*) FROM calls").fetchone()[0]
    dump = args.workdir / "ledger.jsonl"
    fresh = args.workdir / "fresh.db"
    rows: list[tuple[str, float, float | None]] = []

    floor, _ = timed([sys.executable, "-c", FETCH_FLOOR, str(args.ledger)], env)
    took, _ = timed([*exe, *src, "ledger", "export", "-o", str(dump)], env)
    rows.append(("export --format jsonl -o FILE", took, took / floor))
    rows.append(("  floor: fetch the same rows in Python", floor, None))
    size = dump.stat().st_size

    floor, _ = timed([sys.executable, "-c", PARSE_FLOOR, str(dump)], env)
    took, out = timed([*exe, "--db", str(fresh), "ledger", "import", str(dump)], env)
    rows.append(("import FILE (empty ledger)", took, took / floor))
    rows.append(("  floor: read the file and json.loads each line", floor, None))
    print(out.strip())
    took, out = timed([*exe, "--db", str(fresh), "ledger", "import", str(dump)], env)
    rows.append(("import FILE again (all present)", took, took / floor))
    print(out.strip())

    took, _ = timed([*exe, *src, "ledger", "export", "--format", "prometheus"], env)
    rows.append(("export --format prometheus", took, None))

    copy = args.workdir / "pruned.db"
    shutil.copy(args.ledger, copy)
    first = sqlite3.connect(copy).execute("SELECT min(ts) FROM calls").fetchone()[0]
    old_month = first[:7]
    before = month_total(exe, {**env, "TOKENCLI_DB": str(copy)}, old_month)
    took, out = timed([*exe, "--db", str(copy), "ledger", "prune", "--older-than", "180d",
                       "--dry-run"], env)  # fmt: skip
    rows.append(("prune --older-than 180d --dry-run", took, None))
    took, out = timed([*exe, "--db", str(copy), "ledger", "prune", "--older-than", "180d",
                       "--yes"], env)  # fmt: skip
    rows.append(("prune --older-than 180d --yes", took, None))
    print(out.strip())
    after = month_total(exe, {**env, "TOKENCLI_DB": str(copy)}, old_month)
    left = sqlite3.connect(copy).execute("SELECT count(*) FROM calls").fetchone()[0]

    print(f"\n{calls:,} calls; the JSON lines file is {size / 2**20:.0f} MiB\n")
    print("| step | seconds | × floor |")
    print("|---|---:|---:|")
    for name, seconds, ratio in rows:
        print(f"| {name} | {seconds:.2f} | {f'{ratio:.2f}' if ratio else ''} |")
    rate = calls / next(s for n, s, _ in rows if n.startswith("import FILE (empty"))
    print(f"\nimport rate: {rate:,.0f} calls/s")
    print(f"prune kept {left:,} calls; report --month {old_month}: {before} before, {after} after")
    if before != after:
        raise SystemExit("the pruned month's report changed")


if __name__ == "__main__":
    main()
