"""Forecast backtest: month-end projections on day 10 and day 20, against a linear burn.

    python benchmarks/forecast_backtest.py [--trials 200] [--seed 1]

For each kind of synthetic daily spend series below, `--trials` random
series are drawn (noise, start weekday and event days vary). Each has eight
weeks of history before a 30-day month. On the morning of day 11 and of
day 21 (10 and 20 complete days) both methods project the month's total:

- tokencli's forecast (`tokencli.insights.forecast.outlook`: weekday factors, robust
  level, damped trend), spend so far plus the expected rest;
- a linear burn rate: spend so far / days so far × days in the month.

Printed: the mean absolute percentage error (MAPE) of each, and how often the
month's real total fell inside tokencli's 80% interval (it should be near 80%).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokencli.insights.forecast import HISTORY_DAYS, linear_burn, outlook

MONTH = 30
BASE = 10.0  # a day's spend, in any currency


def noisy(rng: random.Random, value: float, sigma: float = 0.25) -> float:
    return value * rng.lognormvariate(-sigma * sigma / 2, sigma)  # mean-preserving


def flat(rng: random.Random, first_weekday: int) -> list[float]:
    return [noisy(rng, BASE) for _ in range(HISTORY_DAYS + MONTH)]


def growing(rng: random.Random, first_weekday: int) -> list[float]:
    growth = rng.uniform(0.01, 0.03)  # 1-3% a day: doubling in 3 to 10 weeks
    return [
        noisy(rng, BASE * (1 + growth) ** (d - HISTORY_DAYS)) for d in range(HISTORY_DAYS + MONTH)
    ]


def weekly(rng: random.Random, first_weekday: int) -> list[float]:
    weekend = rng.uniform(0.05, 0.3)
    return [
        noisy(rng, BASE * (weekend if (first_weekday + d) % 7 >= 5 else 1.3))
        for d in range(HISTORY_DAYS + MONTH)
    ]


def spike(rng: random.Random, first_weekday: int) -> list[float]:
    days = flat(rng, first_weekday)
    at = HISTORY_DAYS + rng.randrange(1, 10)  # inside the month, before day 10
    days[at] += BASE * rng.uniform(10, 20)  # a runaway batch job
    return days


def project_starts(rng: random.Random, first_weekday: int) -> list[float]:
    days = flat(rng, first_weekday)
    start = HISTORY_DAYS + rng.randrange(3, 17)  # between day 4 and day 17
    extra = rng.uniform(1, 3)  # the project spends 1-3 times the old total
    return [v + (noisy(rng, BASE * extra) if d >= start else 0) for d, v in enumerate(days)]


SERIES: dict[str, Callable[[random.Random, int], list[float]]] = {
    "flat": flat,
    "growing": growing,
    "weekly pattern": weekly,
    "one-off spike": spike,
    "project starts mid-month": project_starts,
}


def project_month(
    days: list[float], first_weekday: int, done: int
) -> tuple[float, float, float, float]:
    """(tokencli projection, low, high, linear burn) after `done` complete days of the month."""
    seen = days[: HISTORY_DAYS + done]
    history = seen[-HISTORY_DAYS:]
    history_weekday = (first_weekday + len(seen) - len(history)) % 7
    spent = sum(seen[HISTORY_DAYS:])
    result = outlook(
        history,
        history_weekday,
        today_so_far=0.0,
        today_elapsed=0.0,
        days_after_today=MONTH - done - 1,
    )
    expected = spent + sum(result.daily)
    return expected, spent + result.low, spent + result.high, linear_burn(spent, done, MONTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{args.trials} series of each kind, {HISTORY_DAYS} days of history, a {MONTH}-day month\n"
    )
    print("| series | day | tokencli MAPE | linear burn MAPE | inside 80% interval |")
    print("|---|---:|---:|---:|---:|")
    overall: dict[int, list[tuple[float, float]]] = {10: [], 20: []}
    for name, make in SERIES.items():
        rng = random.Random(f"{args.seed}:{name}")
        for done in (10, 20):
            ours, burn, inside = [], [], 0
            for _ in range(args.trials):
                first_weekday = rng.randrange(7)
                days = make(rng, first_weekday)
                actual = sum(days[HISTORY_DAYS:])
                expected, low, high, linear = project_month(days, first_weekday, done)
                ours.append(abs(expected - actual) / actual)
                burn.append(abs(linear - actual) / actual)
                inside += low <= actual <= high
            a, b = statistics.fmean(ours) * 100, statistics.fmean(burn) * 100
            overall[done].append((a, b))
            print(f"| {name} | {done} | {a:.1f}% | {b:.1f}% | {inside / args.trials:.0%} |")
    for done, pairs in overall.items():
        a = statistics.fmean(p[0] for p in pairs)
        b = statistics.fmean(p[1] for p in pairs)
        print(f"| **mean of the kinds** | {done} | **{a:.1f}%** | **{b:.1f}%** | |")


if __name__ == "__main__":
    main()
