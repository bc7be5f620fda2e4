"""`tokencli compare`: offline counts against `count`, live runs on the mock and a loopback
server, intervals, saving, list/show, resume after Ctrl-C, and bad input."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, subprocess_env, write_config
from tests.fakes import openai_chunks, openai_usage, sse, sse_reply
from tokencli.compare import core
from tokencli.compare.columns import (
    build_inputs,
    parse_vars_file,
    render_template,
    resolve_columns,
)
from tokencli.errors import UsageError


def compare_json(cli, *args: str, code: int = 0) -> dict:
    r = cli("compare", *args, "--json")
    assert r.exit_code == code, r.stderr
    return json.loads(r.stdout)


def count_json(cli, model: str, text: str) -> dict:
    r = cli("count", "-m", model, text, "--json")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def cells(doc: dict) -> dict[tuple[str, str], dict]:
    labels = [c["label"] for c in doc["columns"]]
    return {(labels[c["column"]], c["model"]): c for c in doc["cells"]}


def word_tokenizer(folder: Path) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    folder.mkdir()
    vocab = {"[UNK]": 0, "tell": 1, "me": 2, "about": 3, "tides": 4}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}"})
    )
    return folder


# ------------------------------------------------------------------ offline


def test_offline_counts_equal_count_for_every_model(cli, tmp_path):
    local = f"local:{word_tokenizer(tmp_path / 'tok')}"
    texts = ["Tell me about tides, in three short bullet points.", "tides?"]
    models = ["mock:echo", "openai:gpt-4o-mini", "deepseek:deepseek-chat", local]
    args = [*texts]
    for m in models:
        args += ["-m", m]
    doc = compare_json(cli, *args)
    assert doc["mode"] == "offline" and doc["status"] == "complete"
    assert [c["kind"] for c in doc["columns"]] == ["inline", "inline"]
    found = cells(doc)
    for model in models:
        for label, text in zip("AB", texts, strict=True):
            counted = count_json(cli, model, text)
            cell = found[(label, counted["provider"] + ":" + counted["model"])]
            assert cell["input_tokens"] == counted["input_tokens"], (model, label)
            assert cell["counted"] is (counted["usage_source"] == "counted")
            if counted["cost"] is None:
                assert cell["input_cost_per_1000"] is None
            else:
                assert Decimal(cell["input_cost_per_1000"]) == Decimal(counted["cost"]) * 1000
    a, b = found[("A", "mock:echo")], found[("B", "mock:echo")]
    assert a["tokens_diff"] is None and a["tokens_diff_percent"] is None
    assert b["tokens_diff"] == b["input_tokens"] - a["input_tokens"]
    assert b["tokens_diff_percent"] == round(100 * b["tokens_diff"] / a["input_tokens"], 2)
    assert found[("A", "deepseek:deepseek-chat")]["counted"] is False  # estimated, not an error
    assert not any("outputs" in c or "live" in c for c in doc["cells"])


def test_offline_makes_no_call_and_marks_estimates(cli, home):
    r = cli("compare", "Tell me about tides.", "Tides, briefly?", "-m", "deepseek:deepseek-chat")
    assert r.exit_code == 0, r.stderr
    assert "~" in r.stdout and "estimated" in r.stdout
    assert "assumed 256 (no history)" in r.stdout
    assert ledger_rows(home) == []  # no call, no money
    assert len(ledger_rows(home, "SELECT * FROM comparisons")) == 1


def test_output_estimate_comes_from_history_then_max_tokens(cli):
    assert cli("run", "-m", "mock:lorem", "--max-tokens", "9", "x").exit_code == 0
    assert cli("run", "-m", "mock:lorem", "--max-tokens", "19", "y").exit_code == 0
    doc = compare_json(cli, "One two three.", "One two.", "-m", "mock:lorem", "-m", "mock:echo")
    lorem = cells(doc)[("A", "mock:lorem")]
    assert lorem["output_tokens"] == 15.0  # (10 + 20) / 2: 9 and 19 words and a full stop
    assert lorem["output_source"] == "mean of 2 calls of this model"
    doc = compare_json(cli, "One two three.", "One two.", "-m", "mock:echo", "--max-tokens", "40")
    assert cells(doc)[("A", "mock:echo")]["output_source"] == "max_tokens (no history)"
    assert cells(doc)[("A", "mock:echo")]["output_tokens"] == 40.0


def test_files_vars_and_inputs(cli, tmp_path):
    prompt = tmp_path / "short.txt"
    prompt.write_text("Sum up {{topic}}:")
    doc_file = tmp_path / "doc.txt"
    doc_file.write_text("The sea rises and falls twice a day.")
    doc = compare_json(
        cli, "Summarize {{topic}} in detail:", f"@{prompt}", "-m", "mock:echo",
        "--var", "topic=tides", "--input", str(doc_file),
    )  # fmt: skip
    assert [c["kind"] for c in doc["columns"]] == ["inline", "file"]
    assert doc["inputs"] == ["doc.txt"]
    want = count_json(cli, "mock:echo", "Sum up tides:\n\nThe sea rises and falls twice a day.")
    assert cells(doc)[("B", "mock:echo")]["input_tokens"] == want["input_tokens"]
    # A plain path works as well as @path.
    doc = compare_json(cli, "Sum up {{topic}}, please:", str(prompt), "--var", "topic=x")
    assert doc["columns"][1]["kind"] == "file" and doc["models"] == ["mock:echo"]


# ------------------------------------------------------------------ live: mock


def test_live_compare_on_the_mock(cli, home):
    doc = compare_json(
        cli, "Say hello to the world.", "Hi there.", "-m", "mock:echo", "--runs", "3"
    )
    assert doc["mode"] == "live" and doc["status"] == "complete" and doc["runs"] == 3
    a, b = cells(doc)[("A", "mock:echo")], cells(doc)[("B", "mock:echo")]
    assert a["live"]["ok"] == b["live"]["ok"] == 3
    assert a["live"]["input_tokens_mean"] == 6.0 and a["live"]["output_tokens_mean"] == 6.0
    assert b["live"]["input_tokens_mean"] == 3.0 and b["live"]["output_tokens_sd"] == 0.0
    assert a["live"]["tokens_vs_first"] is None
    # 6 tokens each way against 12: -50%, and with no spread the interval is the point.
    assert b["live"]["tokens_vs_first"] == {"percent": -50.0, "low": -50.0, "high": -50.0}
    assert [o["text"] for o in b["outputs"]] == ["Hi there."] * 3
    rows = ledger_rows(
        home,
        "SELECT c.status, c.batch_id, g.value FROM calls c "
        "JOIN call_tags g ON g.call_id = c.id AND g.key = 'compare'",
    )
    assert len(rows) == 6
    assert {(r["status"], r["batch_id"], r["value"]) for r in rows} == {
        ("ok", doc["id"], doc["id"])
    }
    shown = cli("compare", "show", doc["id"][:8])
    assert shown.exit_code == 0 and "-50.0% (95%: -50.0% … -50.0%)" in shown.stdout
    assert "A: Say hello to the world." in shown.stdout


def test_one_run_has_no_interval(cli):
    r = cli("compare", "Say hello to the world.", "Hi there.", "-m", "mock:echo", "--live")
    assert r.exit_code == 0, r.stderr
    assert "-50.0% (n=1, no interval)" in r.stdout


def test_difference_interval_is_a_welch_t_interval_on_the_ratio():
    diff = core.difference([10, 12, 14], [5, 6, 7])
    assert diff is not None and diff.percent == pytest.approx(-50.0)
    se = 0.5 * math.sqrt(4 / (3 * 144) + 1 / (3 * 36))
    half = 100 * 4.303 * se  # Welch df = 2.94 → t(0.975, 2)
    assert diff.low == pytest.approx(-50 - half) and diff.high == pytest.approx(-50 + half)
    assert core.difference([10], [5]) == core.Difference(-50.0, None, None)
    assert core.difference([], [5]) is None and core.difference([0, 0], [1, 2]) is None
    assert core.t975(1) == 12.706 and core.t975(10_000) == 1.960


def test_live_intervals_over_several_inputs(cli, tmp_path):
    lines = tmp_path / "vars.jsonl"
    lines.write_text('{"t": "tides"}\n# a comment\n{"t": "the rising and falling sea"}\n')
    doc = compare_json(
        cli, "Explain {{t}} to me now.", "{{t}}", "-m", "mock:echo",
        "--vars-file", str(lines), "--runs", "2",
    )  # fmt: skip
    b = cells(doc)[("B", "mock:echo")]["live"]
    assert doc["inputs"] == ["vars line 1", "vars line 2"] and b["ok"] == 4
    first = [2 * 6] * 2 + [2 * 10] * 2  # "Explain tides to me now." and the longer one
    other = [2 * 1] * 2 + [2 * 5] * 2
    want = core.difference(first, other)
    assert want is not None and want.low is not None and want.high is not None
    assert b["tokens_vs_first"] == {
        "percent": round(want.percent, 2),
        "low": round(want.low, 2),
        "high": round(want.high, 2),
    }
    assert (
        b["tokens_vs_first"]["low"] < b["tokens_vs_first"]["percent"] < b["tokens_vs_first"]["high"]
    )


# ------------------------------------------------------------------ live: loopback


def test_live_compare_against_a_loopback_server(cli, home, server, monkeypatch):
    write_config(
        home,
        "[defaults]\ncompare_confirm_above = 0\n"
        + provider_config("fake", "openai", server.url + "/v1", prices_from="openai"),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    args = (
        "Write a long poem about the sea.",
        "Write a haiku about the sea.",
        "-m",
        "fake:gpt-4o-mini",
    )
    r = cli("compare", *args, "--runs", "2", "-c", "1", input="")  # no terminal
    assert r.exit_code == 2 and "above compare_confirm_above ($0.00)" in r.stderr
    assert "--yes" in r.stderr and server.requests == []
    r = cli("compare", *args, "--runs", "2", input="n\n", stdin_tty=True)
    assert r.exit_code == 2 and "Run it? [y/N]" in r.stderr and "nothing was run" in r.stderr
    assert server.requests == [] and ledger_rows(home) == []
    # One call at a time, so the replies go out in the plan's order: A, A, B, B.
    for prompt, completion in ((20, 100), (20, 120), (10, 20), (10, 24)):
        server.queue(
            sse_reply(sse(openai_chunks(["sea ", "words"], openai_usage(prompt, completion))))
        )
    doc = compare_json(cli, *args, "--runs", "2", "-c", "1", "--yes")
    a, b = cells(doc)[("A", "fake:gpt-4o-mini")], cells(doc)[("B", "fake:gpt-4o-mini")]
    assert a["live"]["input_tokens_mean"] == 20.0 and a["live"]["output_tokens_mean"] == 110.0
    assert a["live"]["output_tokens_sd"] == pytest.approx(14.14, abs=0.01)
    assert b["live"]["input_tokens_mean"] == 10.0 and b["live"]["output_tokens_mean"] == 22.0
    want = core.difference([120, 140], [30, 34])
    assert want is not None and b["live"]["tokens_vs_first"]["percent"] == round(want.percent, 2)
    # Cost: 0.15 and 0.60 per million tokens in and out.
    assert a["live"]["cost_total"] == "0.000138"  # (40 × 0.15 + 220 × 0.6) / 1e6
    assert doc["projected_cost"] is not None and a["outputs"][0]["text"] == "sea words"
    sent = [req.json["messages"][-1]["content"] for req in server.requests]
    assert sent == [args[0]] * 2 + [args[1]] * 2
    assert len(ledger_rows(home)) == 4


# ------------------------------------------------------------------ Ctrl-C and resume


def test_interrupted_comparison_keeps_what_finished_and_resumes(cli, home, monkeypatch):
    class Stopping(core.LiveRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            inner, self.seen = self.on_done, 0

            def on_done(done):
                inner(done)
                self.seen += 1
                if self.seen == 2:
                    raise KeyboardInterrupt  # Ctrl-C arrives in the main thread

            self.on_done = on_done

    monkeypatch.setattr(core, "LiveRunner", Stopping)
    args = ("Say hello to the world.", "Hi there.", "-m", "mock:echo", "--runs", "3", "-c", "1")
    r = cli("compare", *args)
    assert r.exit_code == 130
    assert "interrupted" in r.stderr and "--resume" in r.stderr
    compare_id = r.stderr.split("--resume ")[1].split("'")[0]
    assert "2/3" in r.stdout or "0/3" in r.stdout  # the partial table
    saved = compare_json(cli, "show", compare_id)
    assert saved["status"] == "interrupted"
    assert sum(c["live"]["ok"] for c in saved["cells"]) == 2
    assert sum(c["live"]["not_run"] for c in saved["cells"]) == 4

    monkeypatch.setattr(core, "LiveRunner", Stopping.__mro__[1])
    doc = compare_json(cli, "--resume", compare_id)
    assert doc["id"] == compare_id and doc["status"] == "complete"
    assert all(c["live"]["ok"] == 3 for c in doc["cells"])
    rows = ledger_rows(home, f"SELECT status FROM calls WHERE batch_id = '{compare_id}'")
    assert [r["status"] for r in rows] == ["ok"] * 6  # nothing paid for twice
    listed = compare_json(cli, "list")
    assert [c["id"] for c in listed] == [compare_id]


def test_ctrl_c_in_a_real_process_then_resume(home, tokencli_exe):
    write_config(home, "[providers.mock]\ndelay_ms = 60\n")
    args = ["compare", "One two three four five six seven eight.", "Nine ten eleven twelve."]
    args += ["-m", "mock:echo", "--runs", "4", "-c", "2"]
    env = subprocess_env(home)
    proc = subprocess.Popen(
        [*tokencli_exe, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not (home / "ledger.db").exists():
            continue
        try:
            if len(ledger_rows(home, "SELECT id FROM calls WHERE status = 'ok'")) >= 2:
                break
        except sqlite3.OperationalError:  # not created yet
            continue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Outputs (first run of each)" in out  # the partial table
    compare_id = err.split("--resume ")[1].split("'")[0]
    statuses = [r["status"] for r in ledger_rows(home, "SELECT status FROM calls")]
    assert "pending" not in statuses and "ok" in statuses and len(statuses) < 8
    done = subprocess.run(
        [*tokencli_exe, "compare", "--resume", compare_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "complete"
    items = ledger_rows(
        home, f"SELECT batch_item FROM calls WHERE batch_id = '{compare_id}' AND status = 'ok'"
    )
    assert sorted(r["batch_item"] for r in items) == sorted(
        f"{c}.0.0.{r}" for c in range(2) for r in range(4)
    )  # each run answered exactly once


# ------------------------------------------------------------------ list and show


def test_list_and_show_formats(cli):
    assert "No comparisons yet" in cli("compare", "list").stdout
    assert compare_json(cli, "list") == []
    doc = compare_json(
        cli, "Say <b>hello</b> to me.", "Hi & bye.", "-m", "mock:echo", "--runs", "2"
    )
    r = cli("compare", "list")
    assert r.exit_code == 0 and doc["id"] in r.stdout and "live" in r.stdout
    md = cli("compare", "show", doc["id"], "--format", "markdown").stdout
    assert md.startswith("# Comparison ") and "| A | inline | Say <b>hello</b> to me. |" in md
    page = cli("compare", "show", doc["id"], "--format", "html").stdout
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2
    assert "<script" not in page and "src=" not in page and "href=" not in page
    assert "Say &lt;b&gt;hello&lt;/b&gt; to me." in page and "Hi &amp; bye." in page
    assert "Outputs side by side" in page
    shown = compare_json(cli, "show", doc["id"])
    assert shown == doc
    r = cli("compare", "show", "ZZZZZZ")
    assert r.exit_code == 2 and "No comparison with id" in r.stderr


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["Just one prompt here."], 2, "needs at least two columns"),
        (["One two.", "Three four.", "-m", "nosuch:model"], 6, "nosuch"),
        (["One two.", "Three four.", "-m", "mock:nosuch"], 6, "Unknown model mock:nosuch"),
        (["One {{x}}.", "Three four."], 2, "Missing variable for the template: x"),
        (["One {{x.", "Three four."], 2, "unclosed"),
        (["summarize@2", "Three four."], 2, "No prompt named 'summarize'"),
        (["One two.", "Three four.", "--var", "novalue"], 2, "is not KEY=VALUE"),
        (["One two.", "Three four.", "--input", "/no/such/file"], 2, "No such file"),
        (["@/no/such/file", "Three four."], 2, "No such file"),
        (["--resume", "ZZZZZZ"], 2, "No comparison with id"),
    ],
)
def test_bad_input(cli, args, code, message):
    r = cli("compare", *args)
    assert r.exit_code == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_bad_vars_file_line_is_named(cli, tmp_path):
    lines = tmp_path / "vars.jsonl"
    lines.write_text('{"t": "a"}\n{"t": \n')
    r = cli("compare", "A {{t}} b.", "C {{t}} d.", "--vars-file", str(lines))
    assert r.exit_code == 2 and "line 2 is not valid JSON" in r.stderr
    lines.write_text('{"t": "a"}\n["t"]\n')
    r = cli("compare", "A {{t}} b.", "C {{t}} d.", "--vars-file", str(lines))
    assert r.exit_code == 2 and "line 2 is not an object" in r.stderr


def test_an_unused_variable_is_a_warning(cli):
    r = cli("compare", "One two.", "Three four.", "--var", "topic=x")
    assert r.exit_code == 0 and "no column uses topic" in r.stderr


# ------------------------------------------------------------------ parsers


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_values = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=20)


@given(
    st.dictionaries(_names, _values, min_size=1, max_size=4),
    st.text(alphabet="ab {}", max_size=12).filter(lambda f: "{{" not in f),
)
def test_render_fills_every_placeholder_and_keeps_single_braces(variables, filler):
    template = filler.join("{{" + name + "}}" for name in variables)
    text, used = render_template(template, variables)
    assert used == set(variables)
    assert text == filler.join(variables.values())


@given(st.lists(st.dictionaries(_names, st.one_of(_values, st.integers()), min_size=1), min_size=1))
def test_vars_file_round_trips(lines):
    text = "\n".join(json.dumps(line) for line in lines)
    parsed = parse_vars_file(text, "f")
    assert parsed == [
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in line.items()} for line in lines
    ]
    assert [i.variables for i in build_inputs({}, parsed)] == parsed


def test_column_kinds(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("From a file.")
    cols = resolve_columns(["Inline text here.", f"@{path}", str(path), "Hi."])
    assert [c.kind for c in cols] == ["inline", "file", "file", "inline"]
    assert [c.label for c in cols] == ["A", "B", "C", "D"]
    assert cols[1].template == "From a file."
    with pytest.raises(UsageError, match="prompt library"):
        resolve_columns(["Inline text here.", "summarize@production"])


def test_openai_counter_counts_as_the_package_does():
    bpe_openai = pytest.importorskip("bpe_openai")
    from tokencli.pricing.counting import openai_counter

    for name in ("o200k_base", "cl100k_base"):
        count = openai_counter(name)
        assert count is not None
        encoding = bpe_openai.get_encoding(name)
        for text in ("", "hello world", "今天天气很好 ☀️", "def f(x):\n    return x**2\n" * 5):
            assert count(text) == len(encoding.encode(text)), (name, text)


def test_a_prompt_versions_saved_parameters_apply_unless_a_flag_says_otherwise(home):
    import os

    from tokencli.clock import SYSTEM_CLOCK
    from tokencli.compare.columns import Column, Input
    from tokencli.settings.loader import load_settings

    settings = load_settings(dict(os.environ))
    column = Column("A", "p@1", "prompt", "One two.", None, "p", 1, None, {"max_tokens": 7})
    other = Column("B", "Three four five.", "inline", "Three four five.")
    spec = core.Spec([column, other], ["mock:echo"], [Input("input", {})])
    targets = core.resolve_models(settings, spec.models)
    found = core.estimate(settings, spec, targets, None, SYSTEM_CLOCK.now())
    assert [(e.output_tokens, e.output_source) for e in found] == [
        (7.0, "max_tokens (no history)"),
        (256.0, "assumed 256 (no history)"),
    ]
    spec.max_tokens = 3
    found = core.estimate(settings, spec, targets, None, SYSTEM_CLOCK.now())
    assert [e.output_tokens for e in found] == [3.0, 3.0]


def test_exact_counts_come_from_the_free_count_endpoints(cli, home, server):
    from tests.fakes import json_reply

    write_config(
        home,
        provider_config("ant", "anthropic", server.url, prices_from="anthropic")
        + provider_config("gem", "gemini", server.url, prices_from="google"),
    )
    # Models in order, columns within each: ant A, ant B, gem A, gem B.
    server.queue(
        json_reply({"input_tokens": 21}),
        json_reply({"input_tokens": 14}),
        json_reply({"totalTokens": 19}),
        json_reply({"totalTokens": 12}),
    )
    args = ["Tell me about the tides.", "Tides?", "-s", "Be brief."]
    args += ["-m", "ant:claude-sonnet-4-5", "-m", "gem:gemini-2.5-flash", "-m", "mock:echo"]
    doc = compare_json(cli, *args, "--exact")
    found = cells(doc)
    assert [found[(c, "ant:claude-sonnet-4-5")]["input_tokens"] for c in "AB"] == [21, 14]
    assert [found[(c, "gem:gemini-2.5-flash")]["input_tokens"] for c in "AB"] == [19, 12]
    assert all(c["counted"] for c in doc["cells"])
    assert found[("A", "ant:claude-sonnet-4-5")]["method"] == "Anthropic's count_tokens endpoint"
    assert found[("B", "gem:gemini-2.5-flash")]["tokens_diff_percent"] == round(-700 / 19, 2)
    # $3 per million input tokens: 21 tokens × 1,000 runs.
    assert Decimal(found[("A", "ant:claude-sonnet-4-5")]["input_cost_per_1000"]) == Decimal("0.063")
    ant, _, gem, _ = server.requests
    assert ant.path == "/v1/messages/count_tokens"
    assert ant.json == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Tell me about the tides."}],
        "system": "Be brief.",
    }
    assert gem.path == "/models/gemini-2.5-flash:countTokens"
    assert gem.json["generateContentRequest"]["systemInstruction"] == {
        "parts": [{"text": "Be brief."}]
    }
    assert ledger_rows(home) == []  # counting is not a call
    # Without --exact nothing is sent and the two are estimates.
    doc = compare_json(cli, *args)
    assert len(server.requests) == 4
    assert not cells(doc)[("A", "ant:claude-sonnet-4-5")]["counted"]


def test_saved_prompt_versions_are_columns(cli):
    """`compare NAME@1 NAME@2` reads the versions from the prompt library, rendered with --var."""
    for text in ("Write a title about {{topic}}, please, in five words.", "Title: {{topic}}"):
        assert cli("prompt", "save", "title", text).exit_code == 0
    doc = compare_json(cli, "title@1", "title@2", "-m", "mock:echo", "--var", "topic=cats")
    kinds = [(c["kind"], c["prompt_name"], c["prompt_version"]) for c in doc["columns"]]
    assert kinds == [("prompt", "title", 1), ("prompt", "title", 2)]
    first, second = doc["cells"]
    want = [
        count_json(cli, "mock:echo", text)["input_tokens"]
        for text in ("Write a title about cats, please, in five words.", "Title: cats")
    ]
    assert [first["input_tokens"], second["input_tokens"]] == want
    assert second["tokens_diff"] == want[1] - want[0]
    missing = cli("compare", "title@1", "title@2", "-m", "mock:echo")
    assert missing.exit_code == 2 and "topic" in missing.stderr


def test_the_projection_is_in_the_report_currency(cli, home):
    """Cells priced in yuan are converted with [currency] rates before they are summed."""
    write_config(
        home,
        '[prices."mock:echo"]\ninput = 2000\noutput = 2000\ncurrency = "CNY"\n'
        '[prices."mock:lorem"]\ninput = 1000\noutput = 1000\n'
        '[currency]\nreport = "USD"\nrates = { CNY = 0.5 }\n',
    )
    doc = compare_json(
        cli,
        "One two three four.",
        "One two.",
        "-m",
        "mock:echo",
        "-m",
        "mock:lorem",
        "--max-tokens",
        "10",
    )
    by_model: dict[str, list[Decimal]] = {}
    for cell in doc["cells"]:
        by_model.setdefault(cell["currency"], []).append(Decimal(cell["cost_per_1000"]) / 1000)
    expected = sum(by_model["CNY"]) * Decimal("0.5") + sum(by_model["USD"])
    assert doc["projected_currency"] == "USD"
    assert Decimal(doc["projected_cost"]) == expected
