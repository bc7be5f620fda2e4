"""Settings resolution and validation (core, no CLI)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokencli.errors import ConfigError
from tokencli.settings.loader import load_settings
from tokencli.settings.paths import resolve_paths


def settings_for(tmp_path: Path, text: str, **env: str):
    (tmp_path / "config.toml").write_text(text)
    return load_settings({"TOKENCLI_HOME": str(tmp_path), **env})


def test_path_precedence(tmp_path):
    home = str(tmp_path / "h")
    p = resolve_paths({"TOKENCLI_HOME": home})
    assert (p.config, p.db, p.config_source) == (
        Path(home) / "config.toml",
        Path(home) / "ledger.db",
        "env TOKENCLI_HOME",
    )
    p = resolve_paths(
        {"TOKENCLI_HOME": home, "TOKENCLI_CONFIG": "/x/c.toml", "TOKENCLI_DB": "/x/l.db"}
    )
    assert (str(p.config), str(p.db)) == ("/x/c.toml", "/x/l.db")
    assert (p.config_source, p.db_source) == ("env TOKENCLI_CONFIG", "env TOKENCLI_DB")
    p = resolve_paths({"TOKENCLI_CONFIG": "/x/c.toml"}, config_flag="/y/c.toml", db_flag="/y/l.db")
    assert (str(p.config), str(p.db), p.config_source, p.db_source) == (
        "/y/c.toml",
        "/y/l.db",
        "flag --config",
        "flag --db",
    )
    p = resolve_paths({})
    assert (
        p.config.name == "config.toml" and p.db.name == "ledger.db" and p.config_source == "default"
    )


def test_nothing_is_created_by_loading(tmp_path):
    load_settings({"TOKENCLI_HOME": str(tmp_path / "new")})
    assert not (tmp_path / "new").exists()


def test_empty_config_gives_presets(tmp_path):
    s = load_settings({"TOKENCLI_HOME": str(tmp_path)})
    assert {
        "openai",
        "anthropic",
        "gemini",
        "deepseek",
        "qwen",
        "moonshot",
        "zhipu",
        "siliconflow",
        "openrouter",
        "ollama",
        "vllm",
        "mock",
    } <= set(s.providers)
    assert s.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert s.providers["gemini"].base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert s.providers["openai"].base_url == "https://api.openai.com/v1"
    assert s.defaults.model == "mock:echo" and s.defaults.store_text is True


def test_overrides_custom_providers_aliases_prices(tmp_path):
    s = settings_for(
        tmp_path,
        """
[providers.openai]
base_url = "https://proxy.example.com/v1/"
headers = { "X-Team" = "ml" }

[providers.lab]
type = "openai"
base_url = "http://gpu.lan:8000/v1"
allow_http = true
self_hosted = true
hourly_cost = 2.10

[aliases]
fast = "deepseek:deepseek-chat"
chain = ["lab:llama", "openai:gpt-4o-mini"]

[prices."qwen:qwen-max"]
input = 2.4
output = 9.6
currency = "cny"

[currency]
report = "EUR"
rates = { USD = 0.92, CNY = 0.13 }
""",
    )
    openai = s.providers["openai"]
    assert openai.base_url == "https://proxy.example.com/v1" and openai.headers == {"X-Team": "ml"}
    assert openai.sources["base_url"] == "config.toml:3" and openai.prices_from == "openai"
    lab = s.providers["lab"]
    assert (lab.type, lab.self_hosted, lab.hourly_cost, lab.api_key_env) == (
        "openai",
        True,
        Decimal("2.1"),
        ("LAB_API_KEY",),
    )
    assert s.aliases == {
        "fast": ("deepseek:deepseek-chat",),
        "chain": ("lab:llama", "openai:gpt-4o-mini"),
    }
    price = s.prices["qwen:qwen-max"]
    assert (price.input, price.output, price.currency) == (Decimal("2.4"), Decimal("9.6"), "CNY")
    assert s.currencies.report == "EUR" and s.currencies.rates == {
        "USD": Decimal("0.92"),
        "CNY": Decimal("0.13"),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nmodel = 3\n", "(line 2): defaults.model must be a string, not a number."),
        (
            "[defaults]\nmax_tokens = -5\n",
            "(line 2): defaults.max_tokens must be a whole number ≥ 0, not -5.",
        ),
        (
            "[default]\nmodel = 'x'\n",
            "(line 1): default is not a known section. Known sections: defaults, aliases, providers, models, prices, currency, budgets, alerts",
        ),
        (
            "[providers.openai]\nbse_url = 'https://x'\n",
            "(line 2): providers.openai.bse_url is not a known setting. Known settings here:",
        ),
        (
            "[providers.mine]\nbase_url = 'https://x.example'\n",
            "(line 1): providers.mine is not a built-in provider and has no type.",
        ),
        (
            "[providers.mine]\ntype = 'grpc'\n",
            "(line 2): providers.mine.type names an unknown type 'grpc'.",
        ),
        (
            "[providers.openai]\nbase_url = 'ftp://x'\n",
            "(line 2): providers.openai.base_url must be an http(s) URL",
        ),
        (
            "[providers.openai]\nread_timeout = true\n",
            "providers.openai.read_timeout must be a number ≥ 0, not True.",
        ),
        (
            "[aliases]\nfast = 'gpt-4o'\n",
            "(line 2): aliases.fast must name PROVIDER:MODEL, not 'gpt-4o'.",
        ),
        ("[aliases]\nfast = 'nope:m'\n", "aliases.fast names an unknown provider in 'nope:m'."),
        ('[prices."qwen-max"]\ninput = 1\n', "prices.qwen-max must be named PROVIDER:MODEL."),
        ('[prices."qwen:qwen-max"]\ncurrency = "CNY"\n', "sets no price."),
        (
            '[prices."qwen:qwen-max"]\ninput = "cheap"\noutput = 1\n',
            '(line 2): prices."qwen:qwen-max".input must be a number ≥ 0',
        ),
        (
            '[prices."qwen:qwen-max"]\ninput = 1\noutput = 1\ncurrency = "yuan"\n',
            "must be a three-letter currency code",
        ),
        ("[currency]\nrates = { CNY = 0 }\n", "currency.rates.CNY must be greater than 0."),
        ("[currency]\nreprt = 'USD'\n", "currency.reprt is not a known setting."),
        ("providers = 3\n", "(line 1): providers must be a table, not a number."),
        ("[providers.mock]\ndelay_ms = 'slow'\n", "providers.mock.delay_ms must be a whole number"),
    ],
)
def test_invalid_values_name_file_line_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        settings_for(tmp_path, text)
    assert message in str(info.value)
    assert str(tmp_path / "config.toml") in str(info.value)


def test_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 3"):
        settings_for(tmp_path, "[defaults]\nmodel = 'x'\nstore_text = \n")


def test_not_utf8(tmp_path):
    (tmp_path / "config.toml").write_bytes(b"model = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings({"TOKENCLI_HOME": str(tmp_path)})


def test_sample_config_is_valid_and_shipped(tmp_path):
    root = Path(__file__).resolve().parents[1]
    sample = (root / "sample-config.toml").read_text()
    assert sample == (root / "tokencli" / "data" / "sample-config.toml").read_text()
    settings_for(tmp_path, sample)
