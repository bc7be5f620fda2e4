"""logs, models, config and keys from the command line."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.conftest import write_config


def _run_three(cli):
    assert (
        cli("run", "-m", "mock:echo", "-p", "alpha", "--tag", "client=acme", "one").exit_code == 0
    )
    assert cli("run", "-m", "mock:lorem", "-p", "beta", "--max-tokens", "3", "two").exit_code == 0
    assert cli("run", "-m", "mock:echo", "three").exit_code == 0


# ---------------------------------------------------------------------- logs


def test_logs_before_any_call_creates_nothing(cli, home):
    r = cli("logs")
    assert r.exit_code == 0 and r.stdout == ""
    assert "no calls recorded yet" in r.stderr
    assert not (home / "ledger.db").exists()
    assert json.loads(cli("logs", "--json").stdout) == []


def test_logs_table_newest_first(cli):
    _run_three(cli)
    r = cli("logs")
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "TIME",
        "MODEL",
        "PROJECT",
        "STATUS",
        "IN",
        "OUT",
        "COST",
        "TIME",
        "TAKEN",
    ]
    assert [line.split()[3] for line in lines[1:]] == ["mock:echo", "mock:lorem", "mock:echo"]
    assert len(cli("logs", "-n", "2").stdout.splitlines()) == 3


def test_logs_json_and_filters(cli):
    _run_three(cli)
    records = json.loads(cli("logs", "--json").stdout)
    assert len(records) == 3
    first = records[-1]
    assert {"id", "ts", "provider", "model", "project", "tags", "usage", "cost", "status"} <= set(
        first
    )
    assert "text" not in first  # text only when asked
    assert first["project"] == "alpha" and first["tags"] == {"client": "acme"}
    with_text = json.loads(cli("logs", "--json", "--text", "-n", "1").stdout)[0]
    assert with_text["text"] == "three" and with_text["prompt_text"] == "three"
    assert [r["model"] for r in json.loads(cli("logs", "--json", "--model", "lorem").stdout)] == [
        "lorem"
    ]
    assert [r["project"] for r in json.loads(cli("logs", "--json", "-p", "alpha").stdout)] == [
        "alpha"
    ]
    assert len(json.loads(cli("logs", "--json", "--tag", "client=acme").stdout)) == 1
    assert json.loads(cli("logs", "--json", "--status", "error").stdout) == []
    assert len(json.loads(cli("logs", "--json", "--since", "1h").stdout)) == 3
    assert json.loads(cli("logs", "--json", "--until", "2020-01-01").stdout) == []
    assert "no calls match" in cli("logs", "--provider", "openai").stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["logs", "--status", "weird"],
            "'weird' is not one of 'pending', 'ok', 'error', 'interrupted', 'blocked', 'cached'.",
        ),
        (
            ["logs", "--since", "yesterday-ish"],
            "--since 'yesterday-ish' is not a date, a time or a duration.",
        ),
        (["logs", "-n", "abc"], "'-n'"),
    ],
)
def test_logs_bad_input(cli, args, message):
    r = cli(*args)
    assert r.exit_code == 2 and message in r.stderr


def test_logs_show(cli):
    _run_three(cli)
    records = json.loads(cli("logs", "--json").stdout)
    call_id = records[0]["id"]
    r = cli("logs", "show", call_id[:20])
    assert r.exit_code == 0
    assert f"id          {call_id}" in r.stdout
    assert "--- prompt ---\nthree" in r.stdout and "--- response ---\nthree" in r.stdout
    data = json.loads(cli("logs", "show", call_id, "--json").stdout)
    assert data["id"] == call_id and data["text"] == "three"


@pytest.mark.parametrize(
    ("prefix", "message"),
    [("01", "too short"), ("ZZZZZZZZ", "No call with id"), ("0", "too short")],
)
def test_logs_show_bad_ids(cli, prefix, message):
    _run_three(cli)
    r = cli("logs", "show", prefix)
    assert r.exit_code == 2 and message in r.stderr


def test_logs_show_ambiguous(cli, tmp_path):
    # Two ids that share a prefix by construction: ids made by runs share one only when
    # the runs fall in the same second, which a loaded machine does not promise.
    rows = [
        {
            "v": 1,
            "id": f"01JZZZZZZZZZZZZZZZZZZZZZA{n}",
            "ts": "2026-11-10T00:30:00.000000Z",
            "provider": "mock",
            "model": "echo",
            "status": "ok",
            "host": "h",
            "pid": 1,
        }
        for n in (1, 2)
    ]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    assert cli("ledger", "import", str(path)).exit_code == 0
    r = cli("logs", "show", "01JZZZZZZZZZZZZZZZZZZZZZA")
    assert r.exit_code == 2 and "ambiguous" in r.stderr
    assert cli("logs", "show", "01JZZZZZZZZZZZZZZZZZZZZZA2").exit_code == 0


# -------------------------------------------------------------------- models


def test_models_lists_prices_with_sources(cli):
    rows = json.loads(cli("models", "--json", "--provider", "openai", "gpt-4o-mini").stdout)
    mini = next(r for r in rows if r["model"] == "gpt-4o-mini")
    assert mini["input_per_mtok"] == "0.15" and mini["output_per_mtok"] == "0.6"
    assert mini["context_window"] == 128000 and mini["source"].startswith("genai-prices")
    assert mini["currency"] == "USD"


def test_models_table_and_mock(cli):
    r = cli("models", "echo")
    assert r.exit_code == 0
    assert "mock:echo" in r.stdout and "self-hosted (free)" in r.stdout


def test_models_show_overrides(cli, home):
    write_config(home, '[prices."qwen:qwen-max"]\ninput = 2.4\noutput = 9.6\ncurrency = "CNY"\n')
    rows = json.loads(cli("models", "--json", "--provider", "qwen").stdout)
    assert [r for r in rows if r["model"] == "qwen-max"] == [
        {
            "provider": "qwen",
            "model": "qwen-max",
            "input_per_mtok": "2.4",
            "output_per_mtok": "9.6",
            "cached_input_per_mtok": None,
            "cache_write_per_mtok": None,
            "currency": "CNY",
            "context_window": None,
            "source": "config config.toml:1",
            "notes": ["override"],
            "source_url": None,
            "read": None,
            "aliases": [],
            "thinking_output_per_mtok": None,
            "tiers": [],
            "off_peak": None,
        }
    ]


def test_models_unknown_provider(cli):
    r = cli("models", "--provider", "nosuch")
    assert r.exit_code == 2 and "Unknown provider 'nosuch'" in r.stderr


def test_models_deepseek_notes_time_of_day(cli):
    rows = json.loads(cli("models", "--json", "--provider", "deepseek", "deepseek-chat").stdout)
    assert any("time-of-day" in r["notes"] for r in rows)


# -------------------------------------------------------------------- config


def test_config_path_sources(cli, home, tmp_path, monkeypatch):
    data = json.loads(cli("config", "path", "--json").stdout)
    assert data["config"] == {"path": str(home / "config.toml"), "source": "env TOKENCLI_HOME"}
    assert data["ledger"] == {"path": str(home / "ledger.db"), "source": "env TOKENCLI_HOME"}
    monkeypatch.setenv("TOKENCLI_DB", str(tmp_path / "other.db"))
    data = json.loads(cli("config", "path", "--json").stdout)
    assert data["ledger"] == {"path": str(tmp_path / "other.db"), "source": "env TOKENCLI_DB"}
    data = json.loads(cli("--db", str(tmp_path / "flag.db"), "config", "path", "--json").stdout)
    assert data["ledger"]["source"] == "flag --db"


def test_config_path_of_one_thing_is_just_the_path(cli, home, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENCLI_DB", str(tmp_path / "my ledger.db"))
    assert cli("config", "path", "ledger").stdout == f"{tmp_path / 'my ledger.db'}\n"
    assert list(json.loads(cli("config", "path", "keys", "--json").stdout)) == ["keys"]
    result = cli("config", "path", "nothing")
    assert result.exit_code == 2 and "'nothing' is not one of" in result.stderr


def test_db_flag_is_where_calls_go(cli, tmp_path):
    target = tmp_path / "elsewhere" / "l.db"
    assert cli("--db", str(target), "run", "-m", "mock:echo", "x").exit_code == 0
    assert target.exists()
    assert len(json.loads(cli("--db", str(target), "logs", "--json").stdout)) == 1


def test_config_init_writes_the_sample_once(cli, home):
    r = cli("config", "init")
    assert r.exit_code == 0
    text = (home / "config.toml").read_text()
    assert text.startswith("# tokencli configuration.")
    r = cli("config", "init")
    assert r.exit_code == 2 and "already exists" in r.stderr
    assert cli("config", "init", "--force").exit_code == 0
    assert cli("config", "validate").exit_code == 0


def test_config_validate_reports_the_line(cli, home):
    write_config(home, '[defaults]\nmodel = "mock:echo"\nstore_text = "yes"\n')
    r = cli("config", "validate")
    assert r.exit_code == 6
    assert "(line 3): defaults.store_text must be true or false, not a string." in r.stderr
    write_config(home, '[defaults]\nmodel = "mock:echo\n')
    r = cli("config", "validate")
    assert r.exit_code == 6 and "is not valid TOML" in r.stderr and "line 2" in r.stderr
    # Any command fails the same way, before doing anything.
    r = cli("run", "-m", "mock:echo", "x")
    assert r.exit_code == 6 and "not valid TOML" in r.stderr
    assert "Traceback" not in r.stderr


def test_config_validate_without_file(cli):
    r = cli("config", "validate")
    assert r.exit_code == 0 and "no config file" in r.stderr


def test_config_flag_missing_file(cli, tmp_path):
    r = cli("--config", str(tmp_path / "missing.toml"), "run", "-m", "mock:echo", "x")
    assert r.exit_code == 6 and "does not exist" in r.stderr


def test_config_show_sources(cli, home, monkeypatch):
    write_config(
        home,
        '[defaults]\nproject = "book"\n\n[aliases]\nfast = "deepseek:deepseek-chat"\n\n[providers.openai]\nbase_url = "https://proxy.example.com/v1"\n',
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdefghijklmnopqrstuvwxyz")
    rows = {r["key"]: r for r in json.loads(cli("config", "show", "--json").stdout)}
    assert rows["defaults.project"] == {
        "key": "defaults.project",
        "value": "book",
        "source": "config.toml:2",
    }
    assert rows["defaults.model"]["source"] == "default"
    assert rows["aliases.fast"]["source"] == "config.toml:5"
    assert rows["providers.openai.base_url"] == {
        "key": "providers.openai.base_url",
        "value": "https://proxy.example.com/v1",
        "source": "config.toml:8",
    }
    assert rows["providers.anthropic.base_url"]["source"] == "preset"
    assert rows["providers.openai.key"] == {
        "key": "providers.openai.key",
        "value": "set",
        "source": "env OPENAI_API_KEY",
    }
    assert rows["providers.anthropic.key"]["value"] == "missing"
    text = cli("config", "show").stdout
    assert "sk-abcdefghijklmnopqrstuvwxyz" not in text


# ---------------------------------------------------------------------- keys


def test_keys_set_list_rm(cli, home, monkeypatch):
    key = "sk-stored-0123456789abcdef"
    r = cli("keys", "set", "deepseek", input=key + "\n")
    assert r.exit_code == 0 and key not in r.stderr
    path = home / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = {r["provider"]: r for r in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed["deepseek"]["status"] == "set" and listed["deepseek"]["source"] == "keys file"
    assert listed["deepseek"]["key"] == "sk-…cdef"
    assert listed["openai"]["status"] == "missing"
    table = cli("keys", "list").stdout
    assert key not in table and "sk-…cdef" in table
    # the environment wins over the file
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-env-zzzzzzzzzzzzzzzz9999")
    listed = {r["provider"]: r for r in json.loads(cli("keys", "list", "--json").stdout)}
    assert listed["deepseek"]["source"] == "env DEEPSEEK_API_KEY"
    assert cli("keys", "rm", "deepseek").exit_code == 0
    r = cli("keys", "rm", "deepseek")
    assert r.exit_code == 2 and "No stored key" in r.stderr


def test_stored_key_is_used(cli, home, server):
    from tests.conftest import provider_config
    from tests.fakes import json_reply, openai_completion, openai_usage

    write_config(home, provider_config("fake", "openai", server.url + "/v1", key_required=True))
    r = cli("run", "-m", "fake:m", "q")
    assert r.exit_code == 6 and "Set FAKE_API_KEY or run 'tokencli keys set fake'" in r.stderr
    cli("keys", "set", "fake", input="sk-from-file-1234567890")
    server.queue(json_reply(openai_completion("ok", openai_usage(1, 1))))
    assert cli("run", "-m", "fake:m", "--no-stream", "q").exit_code == 0
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-file-1234567890"


def test_keys_file_readable_by_others_is_refused(cli, home):
    cli("keys", "set", "openai", input="sk-xxxxxxxxxxxxxxxxxxxx")
    os.chmod(home / "keys.json", 0o644)
    r = cli("keys", "list")
    assert r.exit_code == 6 and "chmod 600" in r.stderr


@pytest.mark.parametrize(
    ("provider", "value", "message"),
    [
        ("nosuch", "k", "Unknown provider"),
        ("openai", "", "No key given"),
        ("openai", "a b", "spaces"),
    ],
)
def test_keys_set_bad_input(cli, provider, value, message):
    r = cli("keys", "set", provider, input=value)
    assert r.exit_code in (2, 6) and message in r.stderr
