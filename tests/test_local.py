"""The `local` provider on a tiny model built offline (tests/tiny_model.py)."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ledger_rows, write_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.local

SYSTEM = "Be brief."
PROMPT = "Hello 你好, count my tokens."


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import build

    torch.set_num_threads(1)
    return build(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def hf(tiny_model: Path):
    """The tiny model loaded the plain transformers way, for reference answers."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    return tokenizer, model.eval()


def chat_ids(tokenizer, system: str | None, prompt: str):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )


def plain_greedy(hf, system: str | None, prompt: str, max_new: int) -> tuple[list[int], str]:
    tokenizer, model = hf
    enc = chat_ids(tokenizer, system, prompt)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new, do_sample=False)
    ids = out[0, enc["input_ids"].shape[1] :].tolist()
    return ids, tokenizer.decode(ids, skip_special_tokens=True)


def run_json(cli, *args: str) -> dict:
    r = cli("run", *args, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


# ------------------------------------------------------------------- counts


def test_prompt_tokens_agree_between_count_run_and_tokenizer(cli, home, tiny_model, hf):
    expected = chat_ids(hf[0], SYSTEM, PROMPT)["input_ids"].shape[1]
    counted = cli("count", "-m", f"local:{tiny_model}", "-s", SYSTEM, PROMPT, "--json")
    assert counted.exit_code == 0, counted.stderr
    count = json.loads(counted.stdout)
    run = run_json(cli, "-m", f"local:{tiny_model}", "-s", SYSTEM, "--max-tokens", "3", PROMPT)
    assert count["input_tokens"] == run["usage"]["input_tokens"] == expected
    assert count["usage_source"] == run["usage"]["usage_source"] == "counted"
    assert "chat template" in count["method"]


def test_count_without_system_and_raw(cli, tiny_model, hf):
    tokenizer = hf[0]
    chat = json.loads(cli("count", "-m", f"local:{tiny_model}", PROMPT, "--json").stdout)
    assert chat["input_tokens"] == chat_ids(tokenizer, None, PROMPT)["input_ids"].shape[1]
    raw = json.loads(cli("count", "-m", f"local:{tiny_model}", "--raw", PROMPT, "--json").stdout)
    assert raw["input_tokens"] == len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert raw["input_tokens"] < chat["input_tokens"]


# --------------------------------------------------------------- generation


def test_streamed_equals_unstreamed_and_plain_transformers(cli, home, tiny_model, hf):
    ids, text = plain_greedy(hf, SYSTEM, PROMPT, 40)
    assert len(set(ids)) > 5  # the tiny model does wander: the test means something
    args = ("-m", f"local:{tiny_model}", "-s", SYSTEM, "--temperature", "0", "--max-tokens", "40")
    streamed = run_json(cli, *args, PROMPT)
    whole = run_json(cli, *args, "--no-stream", PROMPT)
    assert streamed["text"] == whole["text"] == text
    assert streamed["usage"]["output_tokens"] == whole["usage"]["output_tokens"] == len(ids)
    # Plain generate() stops after the stop token, which is counted but not shown.
    stopped = ids[-1] == hf[0].eos_token_id
    assert streamed["finish_reason"] == whole["finish_reason"] == ("stop" if stopped else "length")
    assert len(ids) == 40 or stopped

    # Plain stdout carries the same text, streamed, plus the closing newline.
    r = cli("run", *args, PROMPT)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == text + "\n" if not text.endswith("\n") else r.stdout == text


def test_no_temperature_follows_the_generation_config(cli, tiny_model, hf):
    # The tiny model's generation_config does not sample, so the default is greedy too.
    _, text = plain_greedy(hf, None, PROMPT, 12)
    assert run_json(cli, "-m", f"local:{tiny_model}", "--max-tokens", "12", PROMPT)["text"] == text


def test_max_tokens_stops_exactly(cli, tiny_model):
    out = run_json(cli, "-m", f"local:{tiny_model}", "--max-tokens", "7", PROMPT)
    assert out["usage"]["output_tokens"] == 7
    assert out["finish_reason"] == "length"


def test_stops_at_a_stop_token_and_counts_it(cli, tmp_path, tiny_model, hf):
    # A copy of the model whose generation_config names one more stop token
    # (as Llama 3 names several): the 4th token greedy decoding produces.
    ids, _ = plain_greedy(hf, None, PROMPT, 10)
    stop_at = next(i for i, t in enumerate(ids) if t not in ids[:i])
    stop_at = max(stop_at, 3)
    folder = tmp_path / "stops"
    shutil.copytree(tiny_model, folder)
    gen_path = folder / "generation_config.json"
    gen = json.loads(gen_path.read_text())
    gen["eos_token_id"] = [gen["eos_token_id"], ids[stop_at]]
    gen_path.write_text(json.dumps(gen))
    assert ids[stop_at] not in ids[:stop_at]

    out = run_json(cli, "-m", f"local:{folder}", "--temperature", "0", "--max-tokens", "10", PROMPT)
    assert out["usage"]["output_tokens"] == stop_at + 1  # the stop token counts
    assert out["finish_reason"] == "stop"
    assert out["text"] == hf[0].decode(ids[: stop_at + 1], skip_special_tokens=True)


# ------------------------------------------------------------------- ledger


def test_ledger_row_is_counted_with_device_and_dtype_free(cli, home, tiny_model):
    out = run_json(cli, "-m", f"local:{tiny_model}", "--max-tokens", "5", PROMPT)
    (row,) = ledger_rows(home)
    assert row["provider"] == "local" and row["model"] == str(tiny_model)
    assert row["status"] == "ok" and row["usage_source"] == "counted"
    assert row["output_tokens"] == 5 and row["input_tokens"] == out["usage"]["input_tokens"]
    extra = json.loads(row["extra"])
    assert extra["device"] == "cpu" and extra["dtype"] == "float32"
    assert extra["load_ms"] >= 0
    assert out["cost"] == "0" and out["price_source"] == "self-hosted (free)"


def test_hourly_cost_prices_the_call_by_its_duration(cli, home, tiny_model):
    write_config(home, '[providers.local]\nhourly_cost = 3.6\ncurrency = "EUR"\n')
    out = run_json(cli, "-m", f"local:{tiny_model}", "--max-tokens", "5", PROMPT)
    # 3.6 per hour is 0.000001 per millisecond.
    assert Decimal(out["cost"]) == Decimal(out["duration_ms"]) / Decimal(1_000_000)
    assert out["currency"] == "EUR"


def test_fp32_dtype_and_cpu_device_from_config(cli, home, tiny_model):
    write_config(home, '[providers.local]\ndevice = "cpu"\ndtype = "fp32"\n')
    out = run_json(cli, "-m", f"local:{tiny_model}", "--max-tokens", "2", PROMPT)
    assert out["extra"]["device"] == "cpu" and out["extra"]["dtype"] == "float32"


# ------------------------------------------------------------------- engine


def test_one_load_serves_every_call_of_a_process(home, tiny_model):
    from tokencli.calls.engine import Engine, RunOptions
    from tokencli.ledger import Ledger
    from tokencli.settings.loader import load_settings

    settings = load_settings()
    engine = Engine(settings, ledger=lambda: Ledger.open(settings.paths.db))
    try:
        first = engine.run(RunOptions(PROMPT, model=f"local:{tiny_model}", max_tokens=3))
        provider = engine._providers["local"]
        model = next(iter(provider._models.values())).model
        second = engine.run(RunOptions("Again.", model=f"local:{tiny_model}", max_tokens=3))
        assert next(iter(provider._models.values())).model is model
        assert len(provider._models) == 1
    finally:
        engine.close()
    assert "load_ms" in first.call.extra and "load_ms" not in second.call.extra


def test_interrupt_stops_generation_and_records_exact_counts(home, tiny_model):
    from tokencli.calls.engine import Engine, RunOptions
    from tokencli.errors import CallFailed, Interrupted
    from tokencli.ledger import Ledger
    from tokencli.settings.loader import load_settings

    settings = load_settings()
    engine = Engine(settings, ledger=lambda: Ledger.open(settings.paths.db))
    pieces: list[str] = []

    def on_text(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 3:
            raise KeyboardInterrupt

    with pytest.raises(CallFailed) as failed:
        engine.run(
            RunOptions(PROMPT, model=f"local:{tiny_model}", max_tokens=400, temperature=0), on_text
        )
    engine.close()
    assert isinstance(failed.value.error, Interrupted)
    assert not [t for t in threading.enumerate() if t.name == "tokencli-generate"]
    (row,) = ledger_rows(home)
    assert row["status"] == "interrupted" and row["usage_source"] == "counted"
    assert 3 <= row["output_tokens"] < 400


# ------------------------------------------------------------- bad set-ups


def test_missing_local_extra_is_a_config_error(cli, home, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    r = cli("run", "-m", f"local:{tiny_model}", PROMPT)
    assert r.exit_code == 6
    assert "pip install 'tokencli[local]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (home / "ledger.db").exists() or not ledger_rows(home)


def test_missing_model_folder(cli, home, tmp_path):
    r = cli("run", "-m", f"local:{tmp_path / 'nowhere'}", PROMPT)
    assert r.exit_code == 6
    assert "not found" in r.stderr


def test_gguf_without_the_gguf_package(cli, tmp_path, monkeypatch):
    file = tmp_path / "model.Q4_0.gguf"
    file.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "gguf", None)
    r = cli("run", "-m", f"local:{file}", PROMPT)
    assert r.exit_code == 6
    assert "needs the gguf package" in r.stderr and "pip install 'tokencli[local,gguf]'" in r.stderr


def test_quantize_without_bitsandbytes(cli, home, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    write_config(home, '[providers.local]\nquantize = "4bit"\n')
    r = cli("run", "-m", f"local:{tiny_model}", PROMPT)
    assert r.exit_code == 6
    assert "pip install bitsandbytes" in r.stderr


@pytest.mark.parametrize(
    ("table", "words"),
    [('dtype = "fp8"', "dtype"), ('device = "tpu"', "device"), ('quantize = "2bit"', "quantize")],
)
def test_bad_settings_are_config_errors(cli, home, tiny_model, table, words):
    write_config(home, f"[providers.local]\n{table}\n")
    r = cli("run", "-m", f"local:{tiny_model}", PROMPT)
    assert r.exit_code == 6 and words in r.stderr


def test_unknown_hub_model_offline(home, tmp_path, tokencli_exe):
    # A real process: huggingface_hub reads HF_HUB_OFFLINE when it is imported.
    import subprocess

    from tests.conftest import subprocess_env

    env = subprocess_env(
        home, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), OMP_NUM_THREADS="1"
    )
    proc = subprocess.run(
        [*tokencli_exe, "run", "-m", "local:nobody/no-such-model", PROMPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 6, proc.stderr
    assert "Cannot load local model nobody/no-such-model" in proc.stderr
    assert "HF_HUB_OFFLINE" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_in_a_real_process_exits_and_records(home, tmp_path, tokencli_exe):
    """SIGINT mid-generation: the generate thread stops, the process exits 130 promptly."""
    import signal
    import subprocess
    import time

    from tests.conftest import subprocess_env
    from tests.tiny_model import build

    folder = build(tmp_path / "long", context=100_000, never_stop=True)  # would run for minutes
    proc = subprocess.Popen(
        [*tokencli_exe, "run", "-m", f"local:{folder}", "--temperature", "0", PROMPT],
        env=subprocess_env(home, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(1)  # generation has started
    assert first, proc.stderr.read() if proc.stderr else ""
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 130
    (row,) = ledger_rows(home)
    assert row["status"] == "interrupted" and row["usage_source"] == "counted"
    assert row["output_tokens"] > 0
