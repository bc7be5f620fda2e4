"""`tokencli count` and `run --dry-run`: offline counts, labelled honestly, no calls."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.conftest import ledger_rows, provider_config, subprocess_env, write_config


def count_json(cli, *args: str, input: str | None = None) -> dict:
    r = cli("count", *args, "--json", input=input)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_mock_count_equals_what_a_mock_run_records(cli, home):
    counted = count_json(cli, "-m", "mock:echo", "-s", "Be terse.", "Hello there, 你好!")
    r = cli("run", "-m", "mock:echo", "-s", "Be terse.", "Hello there, 你好!", "--json")
    assert r.exit_code == 0, r.stderr
    assert counted["input_tokens"] == json.loads(r.stdout)["usage"]["input_tokens"] == 9
    assert counted["usage_source"] == "counted"


def test_openai_models_use_their_real_encoding(cli):
    pytest.importorskip("bpe_openai")
    raw = count_json(cli, "-m", "openai:gpt-4o-mini", "--raw", "hello world")
    assert raw["input_tokens"] == 2  # o200k_base: "hello", " world"
    assert raw["method"] == "o200k_base encoding"
    chat = count_json(cli, "-m", "openai:gpt-4o-mini", "hello world")
    # OpenAI's chat format: 3 per message + the role ("user" is 1) + 3 to prime the reply.
    assert chat["input_tokens"] == 2 + 3 + 1 + 3
    assert chat["usage_source"] == "counted"
    with_system = count_json(cli, "-m", "openai:gpt-4o-mini", "-s", "Be brief.", "hello world")
    assert with_system["input_tokens"] == chat["input_tokens"] + 3 + 1 + 3  # "system", "Be brief."


def test_old_openai_models_use_cl100k(cli):
    pytest.importorskip("bpe_openai")
    text = "数一数每一个词元，记下每一分钱。"
    old = count_json(cli, "-m", "openai:gpt-4", "--raw", text)
    new = count_json(cli, "-m", "openai:gpt-4o", "--raw", text)
    assert old["method"] == "cl100k_base encoding" and new["method"] == "o200k_base encoding"
    assert old["input_tokens"] != new["input_tokens"]


def test_input_cost_is_the_price_table_times_the_count(cli):
    pytest.importorskip("bpe_openai")
    out = count_json(cli, "-m", "openai:gpt-4o-mini", "--raw", "hello world " * 500)
    # gpt-4o-mini input: $0.15 per million tokens.
    assert Decimal(out["cost"]) == Decimal(out["input_tokens"]) * Decimal("0.15") / 1_000_000
    assert out["currency"] == "USD" and out["price_source"].startswith("genai-prices")


def test_without_bpe_openai_openai_counts_are_labelled_estimates(cli, monkeypatch):
    from tokencli.pricing import counting

    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    monkeypatch.setitem(sys.modules, "bpe_openai._bindings", None)
    counting.openai_counter.cache_clear()  # counters are loaded once per process
    r = cli("count", "-m", "openai:gpt-4o-mini", "hello world", "--json")
    counting.openai_counter.cache_clear()
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["usage_source"] == "estimated" and out["method"].startswith("estimate")
    assert "pip install 'tokencli[openai-tokenizer]'" in r.stderr


def test_other_models_are_labelled_estimates(cli):
    r = cli("count", "-m", "deepseek:deepseek-chat", "-s", "Be brief.", "今天天气很好")
    assert r.exit_code == 0, r.stderr
    assert "estimated" in r.stdout and "deepseek:deepseek-chat" in r.stdout
    out = count_json(cli, "-m", "deepseek:deepseek-chat", "-s", "Be brief.", "今天天气很好")
    assert out["input_tokens"] == 2 + 6  # ~4 chars a token; one a CJK character
    assert out["usage_source"] == "estimated" and out["cost"] is not None


def test_text_from_stdin_and_instruction(cli):
    alone = count_json(cli, "-m", "mock:echo", input="some notes here")
    both = count_json(cli, "-m", "mock:echo", "summarize", input="some notes here")
    assert alone["input_tokens"] == 3 and both["input_tokens"] == 4


def test_hourly_priced_models_have_no_token_price(cli, home):
    write_config(home, "[providers.mock]\nhourly_cost = 2.5\n")
    out = count_json(cli, "-m", "mock:echo", "hello")
    assert out["cost"] is None and "priced by call time" in out["price_source"]


def test_bad_input(cli, home):
    assert cli("count", "-m", "mock:echo", "   ").exit_code == 2
    r = cli("count", "-m", "nosuch:model", "hello")
    assert r.exit_code == 6 and "Unknown provider 'nosuch'" in r.stderr
    r = cli("count", "-m", "local:/no/such/folder", "hello")
    assert r.exit_code == 6 and "not found" in r.stderr


# ------------------------------------------------------------------ dry run


def test_dry_run_shows_the_request_and_records_nothing(cli, home, server):
    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    r = cli(
        "run", "-m", "fake:gpt-4o-mini", "--dry-run", "-s", "Be brief.", "--max-tokens", "20",
        "Summarize this.", input="The material.",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "nothing was sent to fake:gpt-4o-mini" in r.stdout
    assert "Be brief." in r.stdout and "The material.\n\nSummarize this." in r.stdout
    assert "max_tokens: 20" in r.stdout and "input cost" in r.stdout
    assert server.requests == []
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


def test_dry_run_json_matches_count(cli, home):
    r = cli("run", "-m", "mock:echo", "--dry-run", "--json", "-s", "sys", "Hello world")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    counted = count_json(cli, "-m", "mock:echo", "-s", "sys", "Hello world")
    assert plan["dry_run"] is True
    assert plan["input_tokens"] == counted["input_tokens"] == 3
    assert plan["request"] == {
        "system": "sys",
        "prompt": "Hello world",
        "max_tokens": None,
        "temperature": None,
        "stream": True,
    }
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


def test_dry_run_price_as(cli):
    r = cli(
        "run", "-m", "mock:echo", "--dry-run", "--json", "--price-as", "openai:gpt-4o-mini", "hi"
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["price_source"].startswith("as openai:gpt-4o-mini")


# ------------------------------------------------------------ import costs


def test_light_commands_never_import_heavy_libraries(home, tmp_path):
    """--help, logs, models, and count for a local model stay free of torch and transformers."""
    folder = tmp_path / "tok"
    folder.mkdir()
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}"})
    )
    script = """
import sys
from tokencli.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ["torch", "transformers", "bpe_openai"]
light = sys.argv[1] in ("--help", "logs", "models")
if light:
    heavy += ["tokenizers", "jinja2"]
print("LOADED", [m for m in heavy if m in sys.modules], code)
"""
    env = subprocess_env(home)
    for args in (["--help"], ["logs"], ["models"], ["count", "-m", f"local:{folder}", "hi hi"]):
        proc = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "LOADED [] 0" in proc.stdout, (args, proc.stdout[-500:], proc.stderr[-500:])
    count = subprocess.run(
        [sys.executable, "-m", "tokencli", "count", "-m", f"local:{folder}", "hi hi", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(count.stdout)["input_tokens"] == 2
