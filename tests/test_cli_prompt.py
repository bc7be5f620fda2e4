"""`tokencli prompt ...`, `run --prompt` and `batch --prompt`, end to end in process."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ledger_rows


@pytest.fixture
def post(cli):
    """A prompt with two versions; `production` on the first."""
    r = cli(
        "prompt", "save", "post", "Write about {{topic}}.", "-s", "You are {{tone}}.",
        "-m", "mock:echo", "--param", "max_tokens=40", "--label", "production", "--note", "first",
    )  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, "post@1\n"), r.stderr
    assert "saved post@1 (variables: tone, topic); production → @1." in r.stderr
    r = cli("prompt", "save", "post", "Write briefly about {{ topic }}.", "-s", "You are {{tone}}.")
    assert (r.exit_code, r.stdout) == (0, "post@2\n"), r.stderr
    return "post"


def test_saving_identical_text_adds_nothing_and_says_so(cli, post):
    r = cli("prompt", "save", "post", "Write briefly about {{ topic }}.", "-s", "You are {{tone}}.")
    assert r.exit_code == 0 and r.stdout == "post@2\n"
    assert "post is unchanged: identical to post@2, nothing saved." in r.stderr
    assert len(ledger_rows(cli_home(cli), "SELECT * FROM prompt_versions")) == 2


def cli_home(cli):
    import os
    from pathlib import Path

    return Path(os.environ["TOKENCLI_HOME"])


def test_save_reads_a_file_or_stdin_and_refuses_bad_templates(cli, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("From a file: {{x}}\n")
    assert cli("prompt", "save", "f", "--file", str(path)).stdout == "f@1\n"
    assert cli("prompt", "save", "s", input="From stdin {{y}}").stdout == "s@1\n"
    assert json.loads(cli("prompt", "show", "s", "--json").stdout)["template"] == "From stdin {{y}}"
    r = cli("prompt", "save", "bad", "line one\nline {{ two")
    assert r.exit_code == 2
    assert "unclosed placeholder at line 2" in r.stderr
    r = cli("prompt", "save", "bad", "x", "--file", str(path))
    assert r.exit_code == 2 and "Both TEXT and --file" in r.stderr
    r = cli("prompt", "save", "bad", "x", "-m", "nowhere:model")
    assert r.exit_code == 6
    assert cli("prompt", "list", "bad").exit_code == 2


def test_list_show_and_label(cli, post):
    r = cli("prompt", "list")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1].split()[:5] == ["post", "2", "2", "production@1", "mock:echo"]
    versions = json.loads(cli("prompt", "list", "post", "--json").stdout)
    assert [(v["version"], v["labels"], v["params"]) for v in versions] == [
        (1, ["production"], {"max_tokens": 40}),
        (2, [], {"max_tokens": 40}),  # what a save does not give, it keeps
    ]
    r = cli("prompt", "show", "post@production")
    assert r.stdout.startswith("post@1 (production)\n")
    assert "--- system\nYou are {{tone}}.\n--- template\nWrite about {{topic}}.\n" in r.stdout
    r = cli("prompt", "label", "post@2", "production")
    assert r.exit_code == 0 and "production → post@2 (moved from @1)." in r.stderr
    assert json.loads(cli("prompt", "show", "post@production", "--json").stdout)["version"] == 2
    assert cli("prompt", "label", "post@2", "latest").exit_code == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (("prompt", "show", "nope"), "No prompt named 'nope'."),
        (("prompt", "show", "post@7"), "Prompt 'post' has no version 7."),
        (("prompt", "show", "post@staging"), "Prompt 'post' has no label 'staging'."),
        (("prompt", "diff", "post", "1", "9"), "Prompt 'post' has no version 9."),
        (("prompt", "rm", "nope"), "No prompt named 'nope'."),
        (("run", "--prompt", "post@9"), "Prompt 'post' has no version 9."),
        (("run", "--prompt", "post", "--var", "topic=x"), "Missing variable for post@2: tone."),
        (("run", "--prompt", "post", "hello"), "A PROMPT argument and --prompt were both given."),
        (("run", "-m", "mock:echo", "--var", "a=b", "hi"), "--var and --vars-file fill"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(cli, post, args, message):
    r = cli(*args)
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith(f"tokencli: {message}")
    assert len(r.stderr.strip().splitlines()) == 1


def test_diff_shows_the_change_and_both_token_counts(cli, post):
    assert (
        cli("prompt", "diff", "post", "post@1", "post@2").stdout
        == cli("prompt", "diff", "post", "1", "latest").stdout
    )
    r = cli("prompt", "diff", "post", "production", "2")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "--- post@1 template" in lines and "+++ post@2 template" in lines
    assert "-Write about {{topic}}." in lines and "+Write briefly about {{ topic }}." in lines
    assert "--- post@1 settings" not in lines  # same model and parameters
    # The mock's tokenizer: words and punctuation, one token each, system part included.
    assert lines[-1] == "tokens on mock:echo, variables unfilled: post@1 16 → post@2 17: +1 (+6.2%)"
    r = cli("prompt", "save", "post", "Hi {{topic}}", "-m", "", "--param", "max_tokens=")
    assert r.stdout == "post@3\n"
    lines = cli("prompt", "diff", "post", "2", "3", "-m", "mock:echo").stdout.splitlines()
    assert "-model = mock:echo" in lines and "-max_tokens = 40" in lines
    shown = json.loads(cli("prompt", "show", "post", "--json").stdout)
    assert (shown["system"], shown["model"], shown["params"]) == ("You are {{tone}}.", None, {})


def test_run_prompt_renders_records_and_reports_by_prompt(cli, post, home):
    r = cli("run", "--prompt", "post@production", "--var", "tone=dry", "--var", "topic=tides")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "Write about tides.\n"
    r = cli(
        "run", "--prompt", "post", "-m", "mock:echo", "--var", "tone=dry", "--var", "text=-",
        "--var", "topic=-x", "--var", "extra=1", "--max-tokens", "7",
        input="unused stdin",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "Write briefly about -x.\n"
    assert "tokencli: warning: post@2 does not use the variable 'extra'." in r.stderr
    assert "'text'" in r.stderr
    rows = ledger_rows(home)
    assert [(c["prompt_name"], c["prompt_version"]) for c in rows] == [("post", 1), ("post", 2)]
    assert [json.loads(c["params"])["max_tokens"] for c in rows] == [40, 7]
    texts = ledger_rows(home, "SELECT system_text FROM call_texts ORDER BY call_id")
    assert [t[0] for t in texts] == ["You are dry.", "You are dry."]

    report = json.loads(cli("report", "--by", "prompt", "--json").stdout)
    assert sorted((g["key"]["prompt"], g["totals"]["calls"]) for g in report["groups"]) == [
        ("post@1", 1),
        ("post@2", 1),
    ]
    logs = json.loads(cli("logs", "--prompt", "post@1", "--json").stdout)
    assert [c["prompt"] for c in logs] == [{"name": "post", "version": 1}]


def test_run_prompt_reads_a_variable_from_stdin_and_a_vars_file(cli, post, tmp_path):
    r = cli(
        "run", "--prompt", "post", "--var", "tone=calm", "--var", "topic=-",
        input="the sea\n",
    )  # fmt: skip
    assert (r.exit_code, r.stdout) == (0, "Write briefly about the sea.\n"), r.stderr
    r = cli("run", "--prompt", "post", "--var", "tone=calm", "--var", "topic=-", stdin_tty=True)
    assert r.exit_code == 2 and "nothing was piped" in r.stderr
    path = tmp_path / "vars.json"
    path.write_text('{"tone": "calm", "topic": "file"}')
    r = cli("run", "--prompt", "post", "--vars-file", str(path), "--var", "topic=flag")
    assert r.stdout == "Write briefly about flag.\n"
    path.write_text("tone=calm\nbroken line\n")
    r = cli("run", "--prompt", "post", "--vars-file", str(path))
    assert r.exit_code == 2 and f"{path} line 2 is not KEY=VALUE." in r.stderr


def test_dry_run_with_a_prompt_sends_nothing(cli, post, home):
    r = cli(
        "run", "--prompt", "post@1", "--var", "tone=dry", "--var", "topic=tides", "--dry-run",
        "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["prompt"] == {"name": "post", "version": 1}
    assert data["request"]["system"] == "You are dry."
    assert data["request"]["prompt"] == "Write about tides."
    assert data["request"]["max_tokens"] == 40
    assert (data["provider"], data["model"]) == ("mock", "echo")
    assert ledger_rows(home) == []


def test_rm_keeps_a_used_version_retired(cli, post, home):
    assert cli("run", "--prompt", "post@1", "--var", "tone=a", "--var", "topic=b").exit_code == 0
    r = cli("prompt", "rm", "post")
    assert r.exit_code == 0
    assert "deleted post@2; kept post@1 (1 call) as retired: recorded calls used them." in r.stderr
    assert cli("prompt", "list", "--json").stdout.strip() == "[]"
    shown = json.loads(cli("prompt", "show", "post@1", "--json").stdout)
    assert shown["retired"] is True and shown["template"] == "Write about {{topic}}."
    r = cli("run", "--prompt", "post@1", "--var", "tone=a", "--var", "topic=b")
    assert r.exit_code == 2 and "post@1 was removed" in r.stderr
    rows = ledger_rows(home, "SELECT version, retired FROM prompt_versions")
    assert [tuple(r) for r in rows] == [(1, 1)]


def test_batch_prompt_fills_each_line_and_records_the_version(cli, post, home, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"id": "a", "vars": {"tone": "dry", "topic": "tides"}}\n'
        '{"id": "b", "vars": {"tone": "warm", "topic": "moons", "spare": 1}, "max_tokens": 5}\n'
    )
    r = cli("batch", str(path), "--prompt", "post@production")
    assert r.exit_code == 0, r.stderr
    out = {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}
    assert out["a"]["text"] == "Write about tides." and out["b"]["text"] == "Write about moons."
    assert "does not use the variable 'spare' (line 2)" in r.stderr
    rows = ledger_rows(home)
    assert {(c["batch_item"], c["prompt_name"], c["prompt_version"]) for c in rows} == {
        ("a", "post", 1),
        ("b", "post", 1),
    }
    assert sorted(json.loads(c["params"])["max_tokens"] for c in rows) == [5, 40]
    # Another version of the prompt is another batch: nothing is skipped.
    r = cli("batch", str(path), "--prompt", "post@2")
    assert r.exit_code == 0 and '"skipped": false' in r.stdout


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"id": "a", "vars": {"tone": "dry"}}\n', "Line 1: Missing variable for post@2: topic."),
        ('{"prompt": "hi", "vars": {}}\n', "Line 1 has its own prompt"),
        ("plain line\n", "Line 1 is plain text, but post@2 has 2 variables (tone, topic)."),
    ],
)
def test_batch_prompt_bad_lines_exit_2_before_any_call(cli, post, home, tmp_path, content, message):
    path = tmp_path / "items.jsonl"
    path.write_text(content)
    r = cli("batch", str(path), "--prompt", "post")
    assert r.exit_code == 2 and message in r.stderr, r.stderr
    assert ledger_rows(home) == []


def test_batch_vars_without_a_prompt_are_refused(cli, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"vars": {"a": "b"}}\n')
    r = cli("batch", str(path), "-m", "mock:echo")
    assert r.exit_code == 2 and "Line 1 has vars, but no saved prompt was given." in r.stderr


def test_export_import_round_trip_through_files(cli, post, home, tmp_path):
    one = tmp_path / "all.toml"
    assert cli("prompt", "export", "-o", str(one)).exit_code == 0
    assert 'format = "tokencli.prompts/1"' in one.read_text()
    folder = tmp_path / "prompts"
    r = cli("prompt", "export", "-o", f"{folder}/", "--format", "yaml")
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["post.yaml"]
    other = str(tmp_path / "other.db")
    r = cli("--db", other, "prompt", "import", str(one))
    assert r.exit_code == 0
    assert "imported 1 prompt: 2 new versions, 0 already present, 1 label set." in r.stderr
    r = cli("--db", other, "prompt", "import", str(folder))
    assert "0 new versions, 2 already present, 0 labels set." in r.stderr
    mine = json.loads(cli("prompt", "list", "post", "--json").stdout)
    theirs = json.loads(cli("--db", other, "prompt", "list", "post", "--json").stdout)
    assert theirs == mine
    assert cli("prompt", "export", "post").stdout == one.read_text()
    r = cli("prompt", "import", str(tmp_path / "missing.toml"))
    assert r.exit_code == 2 and "No such file" in r.stderr
