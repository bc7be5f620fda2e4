"""The comparison itself: offline counts and estimates, live runs, and their statistics.

Offline, every column is rendered with every input and counted on every model's
own tokenizer (`pricing.counting`, as `count` counts), and priced for 1,000 runs:
the input exactly, the output from the ledger's history (this prompt version on
this model, else this model), else `--max-tokens`, else an assumed length.

Live, every column runs on every model for every input, `runs` times, through
one shared `Engine` (rate limits, budgets, the ledger) from a few worker threads.
Each call is an ordinary ledger row tagged `compare=<id>`, with the comparison's
id as its batch id and its place (`column.model.input.run`) as its batch item,
which is what `--resume` reads back.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import Interrupted, TokencliError
from ..money import decimal_str
from .columns import Column, Input

if TYPE_CHECKING:
    from ..calls.engine import Engine
    from ..calls.resolve import ResolvedModel
    from ..ledger import Call, Ledger
    from ..providers.base import ChatRequest, TokenTally
    from ..settings.loader import Currencies, Settings

    ExactCount = Callable[[ResolvedModel, ChatRequest], TokenTally | None]

ASSUMED_OUTPUT_TOKENS = 256  # no history and no --max-tokens: said as "assumed"
RUNS_PER_ESTIMATE = 1000


@dataclass
class Spec:
    """What is compared: columns × models over inputs, `runs` times each (live)."""

    columns: list[Column]
    models: list[str]
    inputs: list[Input]
    runs: int = 1
    max_tokens: int | None = None
    temperature: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": [c.spec() for c in self.columns],
            "models": self.models,
            "inputs": [{"label": i.label, "variables": i.variables} for i in self.inputs],
            "runs": self.runs,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spec:
        return cls(
            columns=[Column.from_spec(c) for c in data["columns"]],
            models=list(data["models"]),
            inputs=[Input(i["label"], dict(i["variables"])) for i in data["inputs"]],
            runs=int(data.get("runs", 1)),
            max_tokens=data.get("max_tokens"),
            temperature=data.get("temperature"),
        )

    def rendered(self) -> list[list[tuple[str | None, str]]]:
        """[column][input] → (system, user text): rendered once."""
        return [[c.render(i.variables)[:2] for i in self.inputs] for c in self.columns]

    def unused_variables(self) -> set[str]:
        unused: set[str] | None = None
        for column in self.columns:
            for item in self.inputs:
                left = column.render(item.variables)[2]
                unused = left if unused is None else unused & left
        return unused or set()

    def plan(self) -> list[tuple[str, int, int, int, int]]:
        """Every live run: (key, column, model, input, run)."""
        return [
            (f"{c}.{m}.{i}.{r}", c, m, i, r)
            for c in range(len(self.columns))
            for m in range(len(self.models))
            for i in range(len(self.inputs))
            for r in range(self.runs)
        ]


# ------------------------------------------------------------------ offline


@dataclass
class Estimate:
    """One column on one model, without a call: counted input, estimated output, cost."""

    column: int
    model_index: int
    model: str
    input_tokens: int  # mean over the inputs (exact with one input)
    counted: bool  # False: some count is an estimate (no tokenizer for this model)
    method: str
    output_tokens: float
    output_source: str
    cost_per_run: Decimal | None
    input_cost_per_run: Decimal | None
    currency: str | None
    notes: list[str] = field(default_factory=list)


def resolve_models(settings: Settings, models: Sequence[str]) -> list[ResolvedModel]:
    """Each `-m` once, resolved (an unknown provider or model: exit 6)."""
    from ..calls.resolve import resolve_model
    from ..errors import ConfigError
    from ..providers import mock

    resolved = []
    for spec in models:
        target = resolve_model(settings, spec)
        if target.provider.type == "mock" and target.model not in mock.MODELS:
            raise ConfigError(
                f"Unknown model {target.ref}.",
                "Known models: " + ", ".join(f"{target.provider.name}:{m}" for m in mock.MODELS),
            )
        resolved.append(target)
    return resolved


def estimate(
    settings: Settings,
    spec: Spec,
    targets: Sequence[ResolvedModel],
    history: Ledger | None,
    when: datetime,
    exact: ExactCount | None = None,
) -> list[Estimate]:
    """Every column × model offline: no call, no money (`exact`: free count endpoints)."""
    from ..calls.resolve import RunOptions, build_request
    from ..calls.usage import Usage
    from ..pricing.cost import price_call
    from ..pricing.counting import TokenCount, count_request

    rendered = spec.rendered()
    out: list[Estimate] = []
    for m, target in enumerate(targets):
        for c, column in enumerate(spec.columns):
            counts = []
            for system, user in rendered[c]:
                opts = RunOptions(
                    prompt=user,
                    model=spec.models[m],
                    system=system,
                    max_tokens=_param(spec.max_tokens, column, "max_tokens", int),
                    temperature=_param(spec.temperature, column, "temperature", float),
                    stream=False,
                )
                request = build_request(settings, target, opts)
                count = count_request(settings, target, request, when=when)
                tally = exact(target, request) if exact is not None else None
                if tally is not None:
                    usage = Usage(input_tokens=tally.tokens)
                    count = TokenCount(
                        provider=count.provider,
                        model=count.model,
                        input_tokens=tally.tokens,
                        usage_source=tally.source,
                        method=tally.method,
                        cost=price_call(settings, target.provider, target.model, usage, when=when),
                    )
                counts.append(count)
            output, source = _output_estimate(settings, spec, column, target, history)
            costs: list[Decimal] = []
            input_costs: list[Decimal] = []
            currency = counts[0].cost.currency
            for count in counts:
                if count.cost.amount is None:
                    break
                usage = Usage(input_tokens=count.input_tokens, output_tokens=round(output))
                try:
                    cost = price_call(settings, target.provider, target.model, usage, when=when)
                except Exception:
                    break
                if cost.amount is None:
                    break
                costs.append(cost.amount)
                input_costs.append(count.cost.amount)
                currency = cost.currency
            n = len(counts)
            all_counted = all(x.usage_source == "counted" for x in counts)
            out.append(
                Estimate(
                    column=c,
                    model_index=m,
                    model=target.ref,
                    input_tokens=round(sum(x.input_tokens for x in counts) / n),
                    counted=all_counted,
                    method=counts[0].method,
                    output_tokens=output,
                    output_source=source,
                    cost_per_run=sum(costs, Decimal(0)) / n if len(costs) == n else None,
                    input_cost_per_run=(
                        sum(input_costs, Decimal(0)) / n if len(input_costs) == n else None
                    ),
                    currency=currency,
                    notes=sorted({note for x in counts for note in x.notes}),
                )
            )
    return out


EXACT_TYPES = ("anthropic", "gemini")  # provider types with a free count-tokens endpoint


class EndpointCounter:
    """`--exact`: counts through the providers' free count-tokens endpoints (one request each).

    Only Anthropic and Gemini have one; every other model keeps its offline count.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers: dict[str, Any] = {}

    def __call__(self, target: ResolvedModel, request: ChatRequest) -> TokenTally | None:
        from ..providers.base import CountsTokens
        from ..providers.registry import load_protocol
        from ..settings.keys import KeyStore, require_key

        config = target.provider
        if config.type not in EXACT_TYPES:
            return None
        provider = self.providers.get(config.name)
        if provider is None:
            key = require_key(config, self.settings.env, KeyStore(self.settings.paths.keys))
            provider = self.providers[config.name] = load_protocol(config.type)(config, key)
        if not isinstance(provider, CountsTokens):
            return None
        return provider.count_tokens(request)

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()
        self.providers.clear()


def _param(given: Any, column: Column, name: str, kind: type) -> Any:
    """A flag wins; else the parameter saved with a prompt version; else None (the config's)."""
    if given is not None:
        return given
    value = column.params.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _output_estimate(
    settings: Settings,
    spec: Spec,
    column: Column,
    target: ResolvedModel,
    history: Ledger | None,
) -> tuple[float, str]:
    """Output tokens per run, and where the figure comes from, in words."""
    from ..ledger.comparisons import output_history

    if history is not None:
        if column.prompt_name is not None:
            found = output_history(
                history,
                target.provider.name,
                target.model,
                column.prompt_name,
                column.prompt_version,
            )
            if found:
                return found[0], f"mean of {found[1]} calls of this prompt version"
        found = output_history(history, target.provider.name, target.model)
        if found:
            return found[0], f"mean of {found[1]} calls of this model"
    limit = _param(spec.max_tokens, column, "max_tokens", int)
    if limit is None:
        limit = settings.defaults.max_tokens
    if limit is not None:
        return float(limit), "max_tokens (no history)"
    return float(ASSUMED_OUTPUT_TOKENS), f"assumed {ASSUMED_OUTPUT_TOKENS} (no history)"


def projected_cost(
    spec: Spec, estimates: Sequence[Estimate], currencies: Currencies
) -> tuple[Decimal, bool]:
    """The whole live comparison's estimated cost in the report currency (other currencies
    converted with `[currency] rates`), and whether every cell could be priced so."""
    total = Decimal(0)
    known = True
    for e in estimates:
        rate = (
            Decimal(1)
            if e.currency in (None, currencies.report)
            else currencies.rates.get(e.currency or "")
        )
        if e.cost_per_run is None or rate is None:
            known = False
            continue
        total += e.cost_per_run * len(spec.inputs) * spec.runs * rate
    return total, known


# ------------------------------------------------------------------ statistics

# Two-sided 95% quantiles of Student's t, by degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: float) -> float:
    if df < 1:
        df = 1
    if df <= 30:
        return _T975[int(df) - 1]
    for limit, value in ((40, 2.042), (60, 2.021), (120, 2.000)):
        if df < limit:
            return value
    return 1.980 if df < 1000 else 1.960


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Difference:
    """B against A, in percent of A: the point estimate and its 95% interval (None: n < 2)."""

    percent: float
    low: float | None
    high: float | None

    def as_json(self) -> dict[str, Any]:
        return {"percent": _round(self.percent), "low": _round(self.low), "high": _round(self.high)}


def difference(first: Sequence[float], other: Sequence[float]) -> Difference | None:
    """How much `other`'s mean differs from `first`'s, in percent, with a 95% interval.

    The ratio of the means with its delta-method standard error and a Welch
    t quantile; with fewer than two samples on either side there is no interval.
    """
    if not first or not other:
        return None
    ma, mb = statistics.fmean(first), statistics.fmean(other)
    if ma == 0:
        return None
    ratio = mb / ma
    percent = 100 * (ratio - 1)
    na, nb = len(first), len(other)
    if na < 2 or nb < 2:
        return Difference(percent, None, None)
    va, vb = statistics.variance(first), statistics.variance(other)
    a, b = va / (na * ma * ma), (vb / (nb * mb * mb) if mb else 0.0)
    se = abs(ratio) * math.sqrt(a + b) if mb else math.sqrt(vb / nb) / abs(ma)
    # Welch–Satterthwaite degrees of freedom (of the two means' variances).
    sa, sb = va / na, vb / nb
    denom = (sa * sa) / (na - 1) + (sb * sb) / (nb - 1)
    df = (sa + sb) ** 2 / denom if denom else float(na + nb - 2)
    half = 100 * t975(df) * se
    return Difference(percent, percent - half, percent + half)


def _round(value: float | None, places: int = 2) -> float | None:
    return None if value is None else round(value, places)


# ------------------------------------------------------------------ live


@dataclass(frozen=True)
class RunDone:
    key: str
    call: Call | None
    error: str | None = None
    exit_code: int = 0


class LiveRunner:
    """Runs every cell run not answered yet, a few at a time; Ctrl-C keeps what finished."""

    def __init__(
        self,
        engine: Engine,
        spec: Spec,
        compare_id: str,
        *,
        concurrency: int = 4,
        on_done: Callable[[RunDone], None] = lambda _: None,
        force: bool = False,
    ) -> None:
        self.engine = engine
        self.force = force  # past blocking budgets
        self.spec = spec
        self.compare_id = compare_id
        self.concurrency = max(1, concurrency)
        self.on_done = on_done
        self.stop = threading.Event()
        self.rendered = spec.rendered()

    def run(self, answered: set[str]) -> bool:
        """Run what is not in `answered`; True when it was interrupted."""
        queue = [k for k in self.spec.plan() if k[0] not in answered]
        try:
            self._run(queue)
        except KeyboardInterrupt:
            return True
        return False

    def _run(self, queue: list[tuple[str, int, int, int, int]]) -> None:
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="tokencli-compare") as pool:
            running: dict[Future[RunDone], str] = {}
            try:
                while queue or running:
                    while queue and len(running) < self.concurrency and not self.stop.is_set():
                        item = queue.pop(0)
                        running[pool.submit(self._one, *item)] = item[0]
                    if not running:
                        break
                    finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.pop(future)
                        self.on_done(future.result())
            except KeyboardInterrupt:
                # Hand out nothing more; calls in flight stop at their next token.
                self.stop.set()
                for future in list(running):
                    self.on_done(future.result())
                raise

    def _one(self, key: str, c: int, m: int, i: int, _r: int) -> RunDone:
        from ..calls.resolve import RunOptions
        from ..errors import CallFailed

        column = self.spec.columns[c]
        system, user = self.rendered[c][i]

        def guard(_text: str) -> None:
            if self.stop.is_set():
                raise Interrupted("The comparison was interrupted.")

        opts = RunOptions(
            prompt=user,
            model=self.spec.models[m],
            system=system,
            max_tokens=_param(self.spec.max_tokens, column, "max_tokens", int),
            temperature=_param(self.spec.temperature, column, "temperature", float),
            tags={"compare": self.compare_id},
            prompt_name=column.prompt_name,
            prompt_version=column.prompt_version,
            cache=False,  # every run is a fresh sample
            batch_id=self.compare_id,
            batch_item=key,
            force=self.force,
        )
        try:
            return RunDone(key, self.engine.run(opts, guard).call)
        except CallFailed as failed:
            return RunDone(key, failed.call, failed.message, int(failed.exit_code))
        except TokencliError as exc:
            return RunDone(key, None, exc.message, int(exc.exit_code))
        except Exception as exc:  # a bug in one run must not stop the others
            return RunDone(key, None, f"internal error: {exc}", 1)


# ------------------------------------------------------------------ results


def offline_results(
    spec: Spec,
    estimates: Sequence[Estimate],
    notes: Sequence[str] = (),
    *,
    currencies: Currencies,
) -> dict[str, Any]:
    """The saved (and `--json`) results of an offline comparison."""
    by_cell = {(e.column, e.model_index): e for e in estimates}
    cells = []
    for e in estimates:
        first = by_cell[(0, e.model_index)]
        diff = e.input_tokens - first.input_tokens
        cells.append(
            {
                **_estimate_fields(e),
                "tokens_diff": diff if e.column else None,
                "tokens_diff_percent": (
                    _round(100 * diff / first.input_tokens)
                    if e.column and first.input_tokens
                    else None
                ),
            }
        )
    projected, known = projected_cost(spec, estimates, currencies)
    return {
        "cells": cells,
        "projected_cost": decimal_str(projected) if known else None,
        "projected_currency": currencies.report,
        "notes": list(notes),
    }


def _estimate_fields(e: Estimate) -> dict[str, Any]:
    per = RUNS_PER_ESTIMATE
    return {
        "column": e.column,
        "model": e.model,
        "input_tokens": e.input_tokens,
        "counted": e.counted,
        "method": e.method,
        "output_tokens": _round(e.output_tokens, 1),
        "output_source": e.output_source,
        "cost_per_1000": decimal_str(e.cost_per_run * per) if e.cost_per_run is not None else None,
        "input_cost_per_1000": (
            decimal_str(e.input_cost_per_run * per) if e.input_cost_per_run is not None else None
        ),
        "currency": e.currency,
    }


def live_results(
    spec: Spec,
    estimates: Sequence[Estimate],
    calls: dict[str, Call],
    notes: Sequence[str] = (),
    *,
    currencies: Currencies,
) -> dict[str, Any]:
    """The saved (and `--json`) results of a live comparison, from its recorded calls."""
    offline = offline_results(spec, estimates, notes, currencies=currencies)
    samples: dict[tuple[int, int], dict[str, list[float]]] = {}
    outputs: dict[tuple[int, int], list[dict[str, Any]]] = {}
    states: dict[tuple[int, int], dict[str, int]] = {}
    for key, c, m, i, r in spec.plan():
        cell = (c, m)
        sample = samples.setdefault(
            cell, {"input": [], "output": [], "total": [], "cost": [], "latency": []}
        )
        state = states.setdefault(cell, {"ok": 0, "failed": 0, "interrupted": 0, "not_run": 0})
        call = calls.get(key)
        if call is None:
            state["not_run"] += 1
            continue
        ok = call.status in ("ok", "cached")
        state["ok" if ok else "interrupted" if call.status == "interrupted" else "failed"] += 1
        outputs.setdefault(cell, []).append(
            {
                "input": i,
                "run": r,
                "call_id": call.id,
                "status": call.status,
                "text": call.response_text if ok else None,
            }
        )
        if not ok:
            continue
        u = call.usage
        sample["input"].append(float(u.input_tokens))
        sample["output"].append(float(u.output_tokens))
        sample["total"].append(float(u.input_tokens + u.output_tokens))
        if call.cost is not None:
            sample["cost"].append(float(call.cost))
        if call.duration_ms is not None:
            sample["latency"].append(float(call.duration_ms))
    cells = []
    for e, cell_data in zip(estimates, offline["cells"], strict=True):
        c, m = e.column, e.model_index
        sample = samples[(c, m)]
        first = samples[(0, m)]
        in_mean, in_sd = mean_sd(sample["input"])
        out_mean, out_sd = mean_sd(sample["output"])
        lat_mean, lat_sd = mean_sd(sample["latency"])
        cost_total: Decimal = sum(
            (calls[k].cost or Decimal(0))
            for k, cc, mm, _, _ in spec.plan()
            if cc == c and mm == m and k in calls and calls[k].status == "ok"
        ) or Decimal(0)
        n_cost = len(sample["cost"])
        tokens_diff = difference(first["total"], sample["total"]) if c else None
        cost_diff = difference(first["cost"], sample["cost"]) if c else None
        cells.append(
            {
                **cell_data,
                "live": {
                    **states[(c, m)],
                    "input_tokens_mean": _round(in_mean),
                    "input_tokens_sd": _round(in_sd),
                    "output_tokens_mean": _round(out_mean),
                    "output_tokens_sd": _round(out_sd),
                    "latency_ms_mean": _round(lat_mean, 1),
                    "latency_ms_sd": _round(lat_sd, 1),
                    "cost_mean": decimal_str(cost_total / n_cost) if n_cost else None,
                    "cost_total": decimal_str(cost_total),
                    "tokens_vs_first": tokens_diff.as_json() if tokens_diff else None,
                    "cost_vs_first": cost_diff.as_json() if cost_diff else None,
                },
                "outputs": sorted(outputs.get((c, m), []), key=lambda o: (o["input"], o["run"])),
            }
        )
    offline["cells"] = cells
    return offline
