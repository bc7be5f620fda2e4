"""Offline `compare` of 5 prompts × 6 models, whole process, next to `tokencli --help`.

    python benchmarks/compare_offline.py [--runs 7]

The six models: OpenAI (its real encoding), Anthropic, Gemini and DeepSeek (estimated
offline), a local model's tokenizer (built offline by tests/tiny_model.py, no download)
and the mock. Each tokenizer is loaded once per process. The target is under 1 s on
these machines. Machines here are shared and noisy: both figures come from the same
run, so read them together.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PROMPTS = [
    "Summarize the article below in three bullet points for a busy reader: {{topic}}",
    "Three bullets, please: {{topic}}",
    "TL;DR of {{topic}} in plain words.",
    "You are an editor. Cut {{topic}} down to its three key points, no more than 15 words each.",
    "Key points of {{topic}}?",
]
MODELS = [
    "openai:gpt-4o-mini",
    "anthropic:claude-sonnet-4-5",
    "gemini:gemini-2.5-flash",
    "deepseek:deepseek-chat",
    "local:{local}",
    "mock:echo",
]


def median_ms(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    subprocess.run(cmd, env=env, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        from tests.tiny_model import build

        local = build(Path(tmp) / "tiny")
        env = {**os.environ, "TOKENCLI_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(ROOT)}
        tk = [PY, "-m", "tokencli"]
        compare = [*tk, "compare", *PROMPTS, "--var", "topic=the tides"]
        for model in MODELS:
            compare += ["-m", model.format(local=local)]
        print(subprocess.run(compare, env=env, capture_output=True, text=True).stdout)
        rows = [
            ("`tokencli --help`", median_ms([*tk, "--help"], env, args.runs)),
            (
                "`tokencli compare` 5 prompts × 6 models, offline",
                median_ms(compare, env, args.runs),
            ),
        ]
    print(f"median of {args.runs} runs, whole process")
    print("| command | median | slowest |")
    print("|---|---:|---:|")
    for label, (median, slowest) in rows:
        print(f"| {label} | {median:.0f} ms | {slowest:.0f} ms |")


if __name__ == "__main__":
    main()
