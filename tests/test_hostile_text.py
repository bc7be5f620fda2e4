"""Issue 12, class 5: values that reach the terminal are shown escaped; JSON stays exact.

Hostile values arrive from a flag (--project, --tag), from an import (a JSON line
with ESC in its model and request id) and from a provider's response (a model
name and an error text carrying escape sequences).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import json_reply, openai_chunks, openai_usage, sse, sse_reply
from tokencli.safetext import html_text, visible

ESC_PROJECT = "p\x1b[31m\x1b]0;owned\x07[bold red]x[/]\u202e"
ESC_TAG = "v\x1b]8;;http://evil/\x1b\\link\nforged: line"


def raw_controls(text: str) -> list[str]:
    """Every character a terminal would act on, except the newlines and tabs of layout."""
    return [ch for ch in text if ch not in "\n\t" and (visible(ch) != ch)]


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text
        assert raw_controls(text) == [], text


# ------------------------------------------------------------------ the function


def test_visible_escapes_controls_and_bidi():
    assert visible("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert visible("x\ny\tz\r") == "x\\ny\\tz\\r"
    assert visible("\x7f\x9b\x00") == "\\x7f\\x9b\\x00"
    assert visible("\u202eevil\u2066") == "\\u202eevil\\u2066"
    assert visible("bad \udcff byte") == "bad \\udcff byte"
    assert visible("C:\\path ünïcödé 日本 🎉") == "C:\\path ünïcödé 日本 🎉"
    assert visible("one\ntwo\x1b", multiline=True) == "one\ntwo\\x1b"


@given(st.text())
def test_visible_leaves_nothing_a_terminal_acts_on(text):
    shown = visible(text)
    assert all(visible(ch) == ch for ch in shown)
    assert visible(shown) == shown  # idempotent: escaping twice changes nothing
    shown.encode("utf-8")  # no lone surrogate is left to fail the write
    if not any(visible(ch) != ch for ch in text):
        assert shown == text


def test_html_text_escapes_markup_and_controls():
    assert html_text('<b a="1">&\x1b') == "&lt;b a=&quot;1&quot;&gt;&amp;\\x1b"


# ------------------------------------------------------------------ from a flag


def test_project_and_tag_from_flags_print_escaped_and_json_stays_exact(cli, home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich folds cells at the terminal's width
    r = cli("run", "-m", "mock:echo", "--project", ESC_PROJECT, "--tag", f"k={ESC_TAG}", "hi")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "hi\n"
    for tty in (False, True):
        logs = cli("logs", stdout_tty=tty)
        assert logs.exit_code == 0
        assert_clean(logs.stdout, logs.stderr)
        assert "p\\x1b[31m" in logs.stdout
        # rich markup in a value prints as the characters it is
        assert "[bold red]x[/]" in logs.stdout
    data = json.loads(cli("logs", "--json").stdout)
    call = data["calls"][0] if isinstance(data, dict) else data[0]
    assert call["project"] == ESC_PROJECT
    show = cli("logs", "show", call["id"])
    assert show.exit_code == 0, show.stderr
    assert_clean(show.stdout)
    assert "forged: line" in show.stdout and "\nforged: line" not in show.stdout
    assert call["tags"] == {"k": ESC_TAG}

    for args in (
        ("report", "--by", "project"),
        ("report", "--by", "tag:k", "--format", "markdown"),
        ("report", "--by", "project", "--format", "html"),
    ):
        out = cli(*args)
        assert out.exit_code == 0, out.stderr
        assert_clean(out.stdout)
    tty = cli("report", "--by", "project", stdout_tty=True)
    assert_clean(tty.stdout)
    assert "[bold red]x[/]" in tty.stdout
    report = json.loads(cli("report", "--by", "project", "--json").stdout)
    keys = [g["key"]["project"] for g in report["groups"]]
    assert ESC_PROJECT in keys


def test_error_quoting_user_input_is_escaped(cli, home):
    r = cli("logs", "show", "no\x1b]0;such\x07id")
    assert r.exit_code == 2
    assert_clean(r.stderr)
    assert "\\x1b]0;such\\x07id" in r.stderr


def test_budget_names_from_the_config_are_escaped(cli, home):
    write_config(
        home,
        '[budgets."b\\u001b[2J"]\namount = 5\nperiod = "month"\nproject = "x\\u001b]0;t\\u0007"\n',
    )
    for args in (("budget", "list"), ("budget", "status"), ("config", "show")):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
        assert_clean(r.stdout, r.stderr)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('[defaults]\nproject = "client\\u0000a"\n', "defaults.project holds a NUL"),
        (
            '[gateway.clients.app]\nkey_env = "K"\ntags = { team = "a\\u0000b" }\n',
            "gateway.clients.app.tags.team holds a NUL",
        ),
        ('[providers."mo\\u0000ck"]\ntype = "mock"\n', 'providers."mo\\u0000ck" is a name'),
        ('[aliases]\n"fast\\u0000" = "mock:echo"\n', 'aliases."fast\\u0000" is a name'),
    ],
)
def test_a_nul_anywhere_in_the_config_is_refused_before_it_reaches_the_ledger(
    cli, home, config, named
):
    """SQLite's text functions stop at a NUL, so a label holding one would be split in reports."""
    write_config(home, config)
    r = cli("run", "-m", "mock:echo", "hi")
    assert r.exit_code == 6, r.stderr
    assert named in r.stderr and "NUL character" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


# ------------------------------------------------------------------ from an import


def test_imported_escape_sequences_are_escaped_everywhere(cli, home, tmp_path):
    line = {
        "v": 1,
        "id": "01IMPORTED0000000000000001",
        "ts": "2026-11-05T10:00:00.000000Z",
        "host": "h\x1b[2J",
        "provider": "openai",
        "model": "gpt\x1b]0;title\x07-4o",
        "request_id": "req\x1b[1;31m\r\nX",
        "status": "ok",
        "input_tokens": 3,
        "output_tokens": 4,
        "response_text": "answer\x1b[5m",
    }
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(line) + "\n", "utf-8")
    r = cli("ledger", "import", str(path))
    assert r.exit_code == 0, r.stderr
    for args in (
        ("logs",),
        ("logs", "show", "01IMPORTED"),
        ("report", "--since", "2026-11-01", "--until", "2026-12-01", "--by", "model"),
        ("report", "--since", "2026-11-01", "--until", "2026-12-01", "-f", "markdown"),
    ):
        out = cli(*args)
        assert out.exit_code == 0, (args, out.stderr)
        assert_clean(out.stdout, out.stderr)
    show = cli("logs", "show", "01IMPORTED").stdout
    assert "gpt\\x1b]0;title\\x07-4o" in show and "req\\x1b[1;31m\\r\\nX" in show
    exported = cli("ledger", "export", "--format", "jsonl").stdout
    back = json.loads(exported.splitlines()[0])
    assert back["model"] == line["model"] and back["request_id"] == line["request_id"]


# ------------------------------------------------------------------ from a provider


def test_provider_values_are_escaped_in_status_lines(cli, home, server):
    write_config(home, provider_config("fake", "openai", server.url + "/v1", prices_from="openai"))
    hostile = "gpt\x1b]0;pwned\x07\x1b[2J"
    server.queue(
        sse_reply(sse(openai_chunks(["the ", "answer\x1b[0m"], openai_usage(2, 2), model=hostile)))
    )
    r = cli("run", "-m", "fake:gpt-4o-mini", "hi", stderr_tty=True)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "the answer\x1b[0m\n"  # the answer itself is the user's, left as it came
    assert_clean(r.stderr)
    call_id = r.stderr.rsplit(" ", 1)[-1].strip()
    show = cli("logs", "show", call_id)
    assert_clean(show.stdout)
    # A provider's model name is stored without its control characters (calls.usage.provider_text).
    assert "gpt]0;pwned[2J" in show.stdout
    data = json.loads(cli("logs", "show", call_id, "--json").stdout)
    assert data["response_model"] == "gpt]0;pwned[2J"

    server.queue(
        json_reply({"error": {"message": "bad \x1b]0;t\x07 model\nforged line"}}, status=400)
    )
    failed = cli("run", "-m", "fake:gpt-4o-mini", "hi")
    assert failed.exit_code == 4
    assert_clean(failed.stderr)
    assert failed.stderr.count("\n") == 1


def test_prompt_listing_and_show_escape_stored_text(cli, home):
    r = cli(
        "prompt", "save", "greet", "Hello\x1b]0;t\x07 {{name}}\nsecond line", "--note", "n\x1b[2J"
    )
    assert r.exit_code == 0, r.stderr
    assert_clean(r.stdout, r.stderr)
    for args in (("prompt", "list"), ("prompt", "show", "greet")):
        out = cli(*args)
        assert out.exit_code == 0, (args, out.stderr)
        assert_clean(out.stdout, out.stderr)
    assert "\nsecond line" in cli("prompt", "show", "greet").stdout


def test_compare_tables_escape_prompts_and_answers(cli, home):
    hostile = "Say\x1b]0;t\x07 hi\x1b[2J\nforged"
    for fmt in ("text", "markdown", "html"):
        r = cli("compare", hostile, "Hi there.", "-m", "mock:echo", "--live", "--format", fmt)
        assert r.exit_code == 0, r.stderr
        assert_clean(r.stdout, r.stderr)
    listed = cli("compare", "list")
    assert listed.exit_code == 0
    assert_clean(listed.stdout)


def test_every_table_cell_and_header_is_escaped(monkeypatch):
    import io

    from tokencli.cli.context import Streams
    from tokencli.cli.output import Column, render_table

    monkeypatch.setenv("COLUMNS", "200")
    for tty in (False, True):
        out = io.StringIO()
        streams = Streams(io.StringIO(), out, io.StringIO(), False, tty, False)
        render_table(
            streams,
            [Column("NAME\x1b[1m"), Column("VALUE", "right")],
            [["[bold red]x[/]\x1b]8;;http://e/\x1b\\", "1\n2"]],
        )
        text = out.getvalue()
        if tty:  # rich styles its own header; nothing of the values is read as markup
            text = text.replace("\x1b[1m", "").replace("\x1b[0m", "")
        assert_clean(text)
        assert "[bold red]x[/]\\x1b]8;;http://e/\\x1b\\" in text and "1\\n2" in text
