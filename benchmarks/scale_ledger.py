"""A year of heavy use: a synthetic ledger of N calls, built through the ledger's write path.

    python benchmarks/scale_ledger.py PATH [--calls 1000000] [--months 12]

Calls are spread over the last `--months` months with a weekday and a daily
rhythm; ten models on six providers (one priced in CNY, one local at zero),
four projects and none, tags on a third of the calls, prompt versions on a
fifth, 2-3% errors, some interrupted and cached answers. Deterministic for a
given seed and end time. Used by report_scale.py; reusable by other benchmarks.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokencli.calls.usage import Usage
from tokencli.ids import new_id
from tokencli.ledger import Call, Ledger, format_ts

# (provider, model, share, input $/M, output $/M, currency)
MODELS = [
    ("openai", "gpt-4o-mini", 30, "0.15", "0.6", "USD"),
    ("openai", "gpt-4.1", 8, "2", "8", "USD"),
    ("anthropic", "claude-sonnet-4-5", 12, "3", "15", "USD"),
    ("anthropic", "claude-haiku-4-5", 10, "1", "5", "USD"),
    ("gemini", "gemini-2.5-flash", 10, "0.3", "2.5", "USD"),
    ("gemini", "gemini-2.5-pro", 4, "1.25", "10", "USD"),
    ("deepseek", "deepseek-chat", 12, "2", "8", "CNY"),
    ("openrouter", "meta-llama/llama-3.3-70b-instruct", 5, "0.13", "0.4", "USD"),
    ("local", "HuggingFaceTB/SmolLM2-360M-Instruct", 6, "0", "0", "USD"),
    ("mock", "lorem", 3, "0", "0", "USD"),
]
PROJECTS = ["blog", "newsletter", "podcast", "client-acme", None]
STEPS = ["outline", "draft", "edit", "title", "summary"]
PROMPTS = ["title", "summary", "thread", "alt-text"]
WEEKDAY_WEIGHT = [1.0, 1.1, 1.1, 1.0, 0.9, 0.35, 0.3]


def synthetic_calls(n: int, end: datetime, months: int, seed: int = 7) -> Iterator[Call]:
    rng = random.Random(seed)
    start = end - timedelta(days=round(30.44 * months))
    span_h = int((end - start).total_seconds() // 3600)
    # Hour weights: weekdays and office hours busier, growth over the year.
    weights = []
    for h in range(span_h):
        t = start + timedelta(hours=h)
        diurnal = 0.25 + (1.0 if 8 <= t.hour <= 20 else 0.0)
        weights.append(WEEKDAY_WEIGHT[t.weekday()] * diurnal * (0.6 + 0.8 * h / span_h))
    hours = rng.choices(range(span_h), weights=weights, k=n)
    hours.sort()
    model_weights = [m[2] for m in MODELS]
    for h in hours:
        when = start + timedelta(hours=h, seconds=rng.random() * 3600)
        provider, model, _, pin, pout, currency = rng.choices(MODELS, weights=model_weights)[0]
        inp = int(rng.lognormvariate(6.5, 0.9)) + 20
        out = int(rng.lognormvariate(5.5, 0.8)) + 5
        cached_in = inp // 2 if rng.random() < 0.2 else 0
        roll = rng.random()
        status = (
            "ok"
            if roll < 0.965
            else "error"
            if roll < 0.99
            else "interrupted"
            if roll < 0.995
            else "cached"
        )
        if status == "error":
            out = 0
        cost = (Decimal(pin) * inp + Decimal(pout) * out) / 1_000_000
        tags: dict[str, str] = {}
        if rng.random() < 0.33:
            tags["step"] = rng.choice(STEPS)
        if rng.random() < 0.1:
            tags["client"] = f"c{rng.randrange(6)}"
        prompt = rng.choice(PROMPTS) if rng.random() < 0.2 else None
        ms = int(when.timestamp() * 1000)
        yield Call(
            id=new_id(ms),
            ts=format_ts(when),
            host="bench-host",
            provider=provider,
            model=model,
            status=status,
            project=rng.choice(PROJECTS),
            tags=tags,
            prompt_name=prompt,
            prompt_version=rng.randint(1, 3) if prompt else None,
            usage=Usage(
                input_tokens=inp,
                cached_input_tokens=cached_in,
                output_tokens=out,
                source="reported",
            ),
            cost=cost,
            currency=currency,
            price_source="benchmark",
            duration_ms=int(rng.lognormvariate(7.3, 0.7)) if status != "cached" else 0,
            ttft_ms=int(rng.lognormvariate(6, 0.5)),
        )


def build(path: Path, n: int, months: int, end: datetime) -> float:
    """Build the ledger at `path`; returns the seconds it took."""
    began = time.perf_counter()
    ledger = Ledger.open(path)
    assert ledger is not None
    ledger.import_calls(synthetic_calls(n, end, months))
    ledger.optimize()
    ledger.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    seconds = build(args.path, args.calls, args.months, datetime.now(UTC))
    print(f"built {args.calls:,} calls in {seconds:.1f} s → {args.path}")


if __name__ == "__main__":
    main()
