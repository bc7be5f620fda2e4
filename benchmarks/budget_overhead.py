"""What budget enforcement adds to a call: 20 budgets on a big ledger, in process.

    python benchmarks/budget_overhead.py [--calls 1000000] [--runs 300] [--ledger PATH]

Builds (or reuses) a synthetic ledger with `scale_ledger.py`, then times
`Engine.run` against the mock, alternating blocks of calls with 20 budgets
that all cover the call (so each is checked and reserved) and calls with no
budgets, on the same ledger. Prints the median per call of each and the
difference; the target is under 2 ms added.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.scale_ledger import build
from tokencli.calls.budget_guard import BudgetGuard
from tokencli.calls.engine import Engine
from tokencli.calls.resolve import RunOptions
from tokencli.ledger import Ledger
from tokencli.settings.loader import load_settings

PRICES = '[prices."mock:echo"]\ninput = 1\noutput = 2\n[currency]\nrates = { CNY = 0.14 }\n'


def twenty_budgets() -> str:
    """Twenty budgets over every scope kind and period, all covering the timed call."""
    scopes = [
        "",
        'provider = "mock"\n',
        'model = "mock:echo"\n',
        'project = "blog"\n',
        'tag = ["step=draft"]\n',
    ]
    out = []
    for i in range(20):
        scope = scopes[i % len(scopes)]
        period = ("day", "week", "month")[i % 3]
        limit = "tokens = 100_000_000_000\n" if i % 4 == 3 else "amount = 1_000_000\n"
        currency = 'currency = "CNY"\n' if i % 5 == 4 and "amount" in limit else ""
        block = "block = true\n" if i % 2 == 0 else ""
        out.append(f'[budgets.b{i:02}]\n{limit}{currency}period = "{period}"\n{scope}{block}')
    return "\n".join(out)


def engine_for(home: Path, db: Path, config: str) -> Engine:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(config, "utf-8")
    env = {**os.environ, "TOKENCLI_HOME": str(home), "TOKENCLI_DB": str(db)}
    settings = load_settings(env)

    def open_ledger() -> Ledger:
        ledger = Ledger.open(db)
        assert ledger is not None
        return ledger

    return Engine(settings, ledger=open_ledger)


def time_calls(engine: Engine, n: int) -> list[float]:
    opts = RunOptions(
        prompt="Draft a short note about tides.",
        model="mock:echo",
        max_tokens=64,
        project="blog",
        tags={"step": "draft"},
        cache=False,
    )
    times = []
    for _ in range(n):
        began = time.perf_counter()
        engine.run(opts)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--ledger", type=Path, help="reuse a ledger built by scale_ledger.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.ledger or Path(tmp) / "ledger.db"
        if not db.exists():
            seconds = build(db, args.calls, 12, datetime.now(UTC))
            print(f"built {args.calls:,} calls in {seconds:.1f} s")
        plain = engine_for(Path(tmp) / "plain", db, PRICES)
        budgeted = engine_for(Path(tmp) / "budgets", db, PRICES + twenty_budgets())
        assert len(budgeted.settings.budgets) == 20
        guard = next(g for g in budgeted.guards if isinstance(g, BudgetGuard))
        checks: list[float] = []
        admit = guard.admit

        def timed_admit(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return admit(*args)
            finally:
                checks.append(time.perf_counter() - began)

        guard.admit = timed_admit  # type: ignore[method-assign]
        time_calls(plain, 10)  # warm both: imports, connections, the page cache
        time_calls(budgeted, 10)
        with_budgets: list[float] = []
        without: list[float] = []
        block = 25
        checks.clear()
        for _ in range(max(1, args.runs // block)):
            without += time_calls(plain, block)
            with_budgets += time_calls(budgeted, block)
        plain.close()
        budgeted.close()
    a, b = statistics.median(without) * 1000, statistics.median(with_budgets) * 1000
    print(f"calls timed: {len(without)} each")
    print(f"no budgets:  median {a:.2f} ms per call")
    print(f"20 budgets:  median {b:.2f} ms per call")
    print(f"added:       {b - a:.2f} ms ({b / a:.2f}x)")
    print(f"the check:   median {statistics.median(checks) * 1000:.2f} ms per call")


if __name__ == "__main__":
    main()
