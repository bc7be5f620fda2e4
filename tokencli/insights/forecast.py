"""Spend forecasts from a daily series: weekday pattern, robust level, damped trend.

Pure arithmetic on floats (a forecast is an estimate, not money owed; callers
turn the results back into `Decimal`). The method, for a series of complete
days plus the day in progress:

1. **Weekday factors.** With two weeks or more, each day is compared with
   the mean of the seven days centred on it; the median ratio per weekday is
   that weekday's factor (so one odd Tuesday does not make every Tuesday
   odd), halved towards 1 while there are only two weeks to go on.
2. **Level and trend.** Holt's damped-trend smoothing on the series with the
   weekday pattern divided out. Each day's surprise is clipped at three
   robust standard deviations before it moves the level, so a one-off spike
   does not raise every later day, while a lasting change (a new project)
   moves the level within days. The smoothing weights are the ones, from a
   small grid, that best predicted each next day of this series.
3. **Interval.** 1,000 futures, each replaying surprises drawn from this
   series' own past (scaled to the present spread), give the 10th and 90th
   percentiles of the total: an 80% interval, and the chance a budget runs out.

`linear_burn` is the straight line from the start of the period that most
tools draw; `benchmarks/forecast_backtest.py` compares the two.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# Smoothing weights tried for level (alpha), trend (beta) and damping (phi).
ALPHAS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7)
BETAS = (0.0, 0.05, 0.15)
PHIS = (0.85, 0.95)
TREND_PENALTY = 0.03  # a trend must predict 3% better than none to be chosen
CLIP = 3.0  # surprises beyond this many robust standard deviations are clipped
SHIFT_DAYS = 3  # this many days beyond the clip, the same way, are a level shift
SCALE_WINDOW = 14  # days of surprises behind the current spread
MIN_DAYS_FOR_WEEKDAYS = 14
PATHS = 1000
HISTORY_DAYS = 56  # eight weeks: enough weeks for a weekday pattern, recent enough to matter
LOW_Q, HIGH_Q = 0.10, 0.90
_MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class Fit:
    """A fitted model: where the series stands, where it heads, how it wobbles."""

    level: float  # per day, weekday pattern divided out
    trend: float  # change of the level per day
    alpha: float
    beta: float
    phi: float
    weekday: tuple[float, ...]  # factor per weekday, Monday first; mean 1
    scale: float  # robust standard deviation of recent surprises
    surprises: tuple[float, ...]  # past surprises divided by the spread at the time
    last_weekday: int  # weekday of the last complete day


@dataclass(frozen=True)
class Outlook:
    """What is expected from now on: the rest of today, then each following day."""

    daily: tuple[float, ...]  # expected spend: [0] the rest of today, [1:] whole days after
    low: float  # 80% interval of the sum of `daily`
    high: float
    paths: tuple[tuple[float, ...], ...]  # simulated futures, each like `daily`
    method: str  # "weekday+trend", "trend" (under two weeks), "today only", "no history"


def linear_burn(spent: float, elapsed_days: float, period_days: float) -> float:
    """The period's total if spending goes on at its average rate so far."""
    if elapsed_days <= 0:
        return spent
    return spent / elapsed_days * period_days


# ------------------------------------------------------------------ fitting


def weekday_factors(days: Sequence[float], first_weekday: int) -> tuple[float, ...]:
    """Spend on each weekday relative to its week, Monday first, averaging 1."""
    flat = (1.0,) * 7
    if len(days) < MIN_DAYS_FOR_WEEKDAYS:
        return flat
    ratios: list[list[float]] = [[] for _ in range(7)]
    window = sum(days[:7])
    for i in range(3, len(days) - 3):
        if i > 3:
            window += days[i + 3] - days[i - 4]
        if window > 0:
            ratios[(first_weekday + i) % 7].append(days[i] * 7 / window)
    if any(not r for r in ratios):
        return flat
    raw = [_median(r) for r in ratios]
    mean = sum(raw) / 7
    if mean <= 0:
        return flat
    weeks = min(len(r) for r in ratios)
    # Two weeks of history give one comparison per weekday: count it half.
    shrink = min(1.0, weeks / 2)
    return tuple(1 + (r / mean - 1) * shrink for r in raw)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _spread(errors: Sequence[float], fallback: float) -> float:
    recent = errors[-SCALE_WINDOW:]
    if len(recent) >= 3:
        mad = _median([abs(e) for e in recent]) * _MAD_TO_SD
        if mad > 0:
            return mad
    return fallback


def _smooth(
    z: Sequence[float], weights: Sequence[float], alpha: float, beta: float, phi: float
) -> tuple[float, float, float, float, list[float]]:
    """One pass of robust damped Holt: (level, trend, loss, scale, standardized surprises)."""
    start = z[: min(7, len(z))]
    level, trend = _median(start), 0.0
    floor = max(abs(level) * 0.05, 1e-9)
    scale = max(_median([abs(v - level) for v in start]) * _MAD_TO_SD, abs(level) * 0.25, floor)
    errors: list[float] = []
    surprises: list[float] = []
    loss = 0.0
    run = 0  # consecutive days beyond the clip, the same way
    for t, (value, weight) in enumerate(zip(z, weights, strict=True)):
        expected = level + phi * trend
        if weight <= 0:  # a weekday that carries no spend tells nothing about the level
            level, trend = expected, phi * trend
            continue
        error = value - expected
        limit = CLIP * scale
        clipped = max(-limit, min(limit, error))
        if t >= len(start):  # judge the weights on days the start did not see
            loss += abs(clipped) * weight
            surprises.append(error / scale)
        level = expected + alpha * clipped
        trend = phi * trend + alpha * beta * clipped
        errors.append(error)
        run = run + 1 if abs(error) > limit and (run == 0 or (error > 0) == (errors[-2] > 0)) else 0
        if run >= SHIFT_DAYS:
            # Days on end far off the same way: not a spike but a new normal (a
            # project started, a pipeline stopped). Start again from those days.
            level, trend = _median(z[t - SHIFT_DAYS + 1 : t + 1]), 0.0
            del errors[-SHIFT_DAYS:]
            run = 0
        scale = max(_spread(errors, scale), floor)
    return level, trend, loss, scale, surprises


def fit(days: Sequence[float], first_weekday: int) -> Fit:
    """Fit the model to complete days (oldest first; `first_weekday` 0 = Monday)."""
    if not days:
        raise ValueError("fit needs at least one day")
    weekday = weekday_factors(days, first_weekday)
    factors = [weekday[(first_weekday + i) % 7] for i in range(len(days))]
    # A weekday whose factor is near 0 (no weekend use) says little about the level.
    weights = [min(1.0, f / 0.5) if f > 0.1 else 0.0 for f in factors]
    z = [v / f if f > 0.1 else 0.0 for v, f in zip(days, factors, strict=True)]
    best: Fit | None = None
    best_loss = 0.0
    for alpha in ALPHAS:
        for beta in BETAS:
            for phi in PHIS if beta else PHIS[:1]:  # without a trend, nothing to damp
                level, trend, loss, scale, surprises = _smooth(z, weights, alpha, beta, phi)
                if beta:  # a trend has to earn its place: noise alone fits one a little
                    loss *= 1 + TREND_PENALTY
                if best is None or loss < best_loss - 1e-12:
                    best_loss = loss
                    best = Fit(
                        level=level,
                        trend=trend,
                        alpha=alpha,
                        beta=beta,
                        phi=phi,
                        weekday=weekday,
                        scale=scale,
                        surprises=tuple(surprises),
                        last_weekday=(first_weekday + len(days) - 1) % 7,
                    )
    assert best is not None
    return best


# ------------------------------------------------------------------ projecting


def expected_days(model: Fit, horizon: int) -> list[float]:
    """Expected spend of each of the next `horizon` whole days."""
    out, level, trend = [], model.level, model.trend
    for h in range(1, horizon + 1):
        trend *= model.phi
        level += trend
        factor = model.weekday[(model.last_weekday + h) % 7]
        out.append(max(0.0, level) * factor)
    return out


def simulate(model: Fit, horizon: int, paths: int, rng: random.Random) -> list[list[float]]:
    """`paths` futures of `horizon` days, each replaying surprises drawn from the past."""
    scale, alpha, beta, phi = model.scale, model.alpha, model.beta, model.phi
    limit = CLIP * scale
    factors = [model.weekday[(model.last_weekday + h) % 7] for h in range(1, horizon + 1)]
    if len(model.surprises) >= 5:
        draws = rng.choices([s * scale for s in model.surprises], k=horizon * paths)
    else:
        draws = [rng.gauss(0.0, scale) for _ in range(horizon * paths)]
    out = []
    for p in range(paths):
        level, trend = model.level, model.trend
        path = []
        for error, factor in zip(draws[p * horizon : (p + 1) * horizon], factors, strict=True):
            expected = level + phi * trend
            value = expected + error
            if value < 0:
                value = 0.0
            clipped = value - expected
            if clipped > limit:
                clipped = limit
            elif clipped < -limit:
                clipped = -limit
            level = expected + alpha * clipped
            trend = phi * trend + alpha * beta * clipped
            path.append(value * factor)
        out.append(path)
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def outlook(
    history: Sequence[float],
    first_weekday: int,
    *,
    today_so_far: float,
    today_elapsed: float,
    days_after_today: int,
    seed: int = 0,
) -> Outlook:
    """Expected spend for the rest of today and `days_after_today` whole days.

    `history` is complete days, oldest first, the last one yesterday; days
    before the first spend are dropped (a series starts when its use does).
    `today_elapsed` is the fraction of today gone (0 to 1): the rest of today
    is expected to bring the same fraction of a day's spend.
    """
    days = list(history)
    while days and days[0] <= 0:
        days.pop(0)
        first_weekday = (first_weekday + 1) % 7
    rest_of_today = max(0.0, 1.0 - today_elapsed)
    if not days:
        if today_so_far > 0 and today_elapsed > 0:
            # Only today to go on: today's rate, no interval worth the name.
            rate = today_so_far / today_elapsed
            daily = (rate * rest_of_today, *(rate for _ in range(days_after_today)))
            total = sum(daily)
            return Outlook(daily, 0.0, total * 2, (daily,), "today only")
        zeros = (0.0,) * (days_after_today + 1)
        return Outlook(zeros, 0.0, 0.0, (zeros,), "no history")
    model = fit(days, first_weekday)
    horizon = days_after_today + 1  # today first
    expected = expected_days(model, horizon)
    expected[0] *= rest_of_today
    paths = []
    for path in simulate(model, horizon, PATHS, random.Random(seed)):
        path[0] *= rest_of_today
        paths.append(tuple(path))
    totals = sorted(sum(p) for p in paths)
    method = "weekday+trend" if len(days) >= MIN_DAYS_FOR_WEEKDAYS else "trend"
    return Outlook(
        tuple(expected),
        _quantile(totals, LOW_Q),
        _quantile(totals, HIGH_Q),
        tuple(paths),
        method,
    )


def crossing(spent: float, daily: Sequence[float], limit: float) -> int | None:
    """Index into `daily` of the day cumulative spend reaches `limit`; None if it does not."""
    total = spent
    for i, value in enumerate(daily):
        total += value
        if total >= limit:
            return i
    return None


def chance_of_reaching(spent: float, paths: Sequence[Sequence[float]], limit: float) -> float:
    """The share of simulated futures in which spend reaches `limit`."""
    if not paths:
        return 0.0
    return sum(1 for p in paths if spent + sum(p) >= limit) / len(paths)
