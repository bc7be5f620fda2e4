"""The prompt library's core: templates, variables, versions, labels, refs, files."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokencli.calls.resolve import RunOptions
from tokencli.errors import UsageError
from tokencli.ledger import Call, Ledger
from tokencli.ledger import prompts as store
from tokencli.prompts import (
    PromptVersion,
    Template,
    apply_prompt,
    parse_ref,
    parse_vars,
    resolve_prompt,
    vars_from_json,
)
from tokencli.prompts.files import dumps, export_data, file_format, import_data, loads
from tokencli.prompts.library import (
    list_prompts,
    list_versions,
    parse_params,
    remove_prompt,
    save_prompt,
    set_label,
)

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# ------------------------------------------------------------------ templates

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)
literals = st.text(max_size=20).filter(lambda t: "{{" not in t)


@given(st.text().filter(lambda t: "{{" not in t), st.dictionaries(names, st.text()))
def test_a_template_without_double_braces_renders_to_itself(text, variables):
    template = Template(text)
    assert template.names == ()
    assert template.render(variables) == text


@given(
    st.lists(st.tuples(literals, names, st.booleans()), max_size=5),
    literals,
    st.data(),
)
def test_placeholders_are_replaced_by_their_values_and_values_are_not_templates(parts, tail, data):
    text = "".join(
        f"{lit}{{{{ {n} }}}}" if spaced else f"{lit}{{{{{n}}}}}" for lit, n, spaced in parts
    )
    text += tail
    wanted = list(dict.fromkeys(n for _, n, _ in parts))
    values = {n: data.draw(st.text(), label=n) for n in wanted}  # may hold {{...}} themselves
    template = Template(text)
    assert list(template.names) == wanted
    expected = "".join(lit + values[n] for lit, n, _ in parts) + tail
    assert template.render(values) == expected


@given(st.text(alphabet=st.sampled_from("{} \nab_1.-x"), max_size=40) | st.text())
def test_any_text_parses_or_raises_a_usage_error_only(text):
    try:
        template = Template(text)
    except UsageError as exc:
        assert "placeholder at line" in exc.message
        return
    assert template.render(dict.fromkeys(template.names, "v")).count("{{") <= text.count("{{")


@given(st.text() | st.sampled_from(["a@²", "a@٣", "a@0", "a@01", "a@latest", "a@"]))
def test_any_ref_parses_or_raises_a_usage_error_only(ref):
    try:
        name, selector = parse_ref(ref)
    except UsageError:
        return
    from tokencli.prompts.library import LABEL, PROMPT_NAME

    assert PROMPT_NAME.fullmatch(name)
    assert (
        selector is None
        or (isinstance(selector, int) and selector > 0)
        or (isinstance(selector, str) and LABEL.fullmatch(selector) and selector != "latest")
    )


def test_single_braces_and_json_stay_literal():
    text = 'Answer as JSON: {"title": "...", "tags": [{"k": 1}]} about {{topic}}.'
    assert Template(text).render({"topic": "tides"}) == (
        'Answer as JSON: {"title": "...", "tags": [{"k": 1}]} about tides.'
    )
    assert Template("{{{x}}}").render({"x": "v"}) == "{v}"


def test_an_unclosed_placeholder_is_refused_with_its_line():
    with pytest.raises(UsageError) as exc:
        Template("first line\nsecond {{ topic\nthird")
    assert "unclosed placeholder at line 2" in exc.value.message
    with pytest.raises(UsageError) as exc:
        Template("a\nb\n{{ two words }}")
    assert "bad placeholder at line 3" in exc.value.message
    with pytest.raises(UsageError):
        Template("{{}}")


def test_a_missing_variable_is_named_and_unused_ones_reported():
    version = PromptVersion("post", 2, "You write for {{audience}}.", "A post on {{topic}}.")
    assert version.variables == ("audience", "topic")
    with pytest.raises(UsageError) as exc:
        version.render({"topic": "tides", "tone": "dry"})
    assert exc.value.message == "Missing variable for post@2: audience."
    assert "--var audience=VALUE" in (exc.value.hint or "")
    system, user, unused = version.render({"topic": "tides", "audience": "kids", "tone": "x"})
    assert (system, user, unused) == ("You write for kids.", "A post on tides.", ["tone"])
    assert PromptVersion("p", 1, None, "Hi").render({}) == (None, "Hi", [])


# ------------------------------------------------------------------ variables


def test_vars_come_from_pairs_over_a_file_and_stdin(tmp_path):
    path = tmp_path / "vars.json"
    path.write_text(json.dumps({"topic": "moons", "words": 200, "draft": True}))
    read = []

    def stdin() -> str:
        read.append(1)
        return "piped text"

    got = parse_vars(["topic=tides", "text=-", "eq=a=b"], path, stdin)
    assert got == {
        "topic": "tides",
        "words": "200",
        "draft": "true",
        "text": "piped text",
        "eq": "a=b",
    }
    assert read == [1]
    assert parse_vars(["x=1"], None, stdin) == {"x": "1"} and read == [1]  # not read: no '-'


def test_a_vars_file_of_lines_names_its_bad_line(tmp_path):
    path = tmp_path / "vars.env"
    path.write_text("# comment\ntopic = tides\n\nwords=200\nnot a pair\n")
    with pytest.raises(UsageError) as exc:
        parse_vars([], path)
    assert exc.value.message == f"{path} line 5 is not KEY=VALUE."
    path.write_text("topic = tides\nwords=200\n")
    assert parse_vars([], path) == {"topic": "tides", "words": "200"}
    path.write_text('{\n  "topic": "tides",\n  "words": \n}')
    with pytest.raises(UsageError, match="line 4 is not valid JSON"):
        parse_vars([], path)


@pytest.mark.parametrize(
    "pairs,message",
    [
        (["topic"], "--var 'topic' is not KEY=VALUE."),
        (["=x"], "--var '=x' is not KEY=VALUE."),
        (["a b=x"], "--var 'a b=x': 'a b' is not a variable name."),
        (["a=-", "b=-"], "--var a=- and --var b=- both read stdin."),
        (["a=-"], "--var a=- reads stdin, but nothing was piped (or it was empty)."),
    ],
)
def test_bad_vars_are_usage_errors(pairs, message):
    with pytest.raises(UsageError) as exc:
        parse_vars(pairs, None, lambda: None if pairs == ["a=-"] else "text")
    assert exc.value.message == message


def test_json_vars_must_be_text_or_numbers():
    assert vars_from_json({"n": 1.5, "s": "x"}, "line 1") == {"n": "1.5", "s": "x"}
    with pytest.raises(UsageError, match="'n' is not text or a number"):
        vars_from_json({"n": [1]}, "line 1")
    with pytest.raises(UsageError, match="not a JSON object"):
        vars_from_json(["x"], "line 1")


# ------------------------------------------------------------------ the library


@pytest.fixture
def ledger():
    led = Ledger.open_memory()
    yield led
    led.close()


def save(ledger, name, text, **kwargs):
    kwargs.setdefault("now", NOW)
    return save_prompt(ledger, name, text, **kwargs)


def test_versions_are_numbered_immutable_and_deduplicated(ledger):
    first = save(ledger, "post", "Write about {{topic}}.", model="mock:echo", note="v1")
    assert (first.added, first.version.ref) == (True, "post@1")
    same = save(ledger, "post", "Write about {{topic}}.", model="mock:echo", note="other note")
    assert (same.added, same.version.ref, same.version.note) == (False, "post@1", "v1")
    second = save(ledger, "post", "Write briefly about {{topic}}.", model="mock:echo")
    assert (second.added, second.version.ref) == (True, "post@2")
    # A different model or parameter is a different version.
    third = save(ledger, "post", "Write briefly about {{topic}}.", params={"temperature": 0.2})
    assert third.version.ref == "post@3"
    assert resolve_prompt(ledger, "post@1").template == "Write about {{topic}}."
    # Going back to an older text is a new version: only the latest dedupes.
    assert save(ledger, "post", "Write about {{topic}}.", model="mock:echo").version.ref == "post@4"
    assert [v.version for v in list_versions(ledger, "post")] == [1, 2, 3, 4]


def test_refs_name_the_latest_a_version_or_a_label(ledger):
    save(ledger, "post", "one {{a}}")
    save(ledger, "post", "two {{a}}", label="production")
    save(ledger, "post", "three {{a}}")
    assert resolve_prompt(ledger, "post").version == 3
    assert resolve_prompt(ledger, "post@latest").version == 3
    assert resolve_prompt(ledger, "post@1").template == "one {{a}}"
    production = resolve_prompt(ledger, "post@production")
    assert (production.version, production.labels) == (2, ("production",))
    assert parse_ref("post@7") == ("post", 7) and parse_ref("post@prod") == ("post", "prod")


@pytest.mark.parametrize(
    "ref,message",
    [
        ("nope", "No prompt named 'nope'."),
        ("post@9", "Prompt 'post' has no version 9."),
        ("post@staging", "Prompt 'post' has no label 'staging'."),
        ("post@", "'post@' is not NAME, NAME@VERSION or NAME@LABEL."),
        ("po st", "'po st' is not a prompt name."),
    ],
)
def test_unknown_refs_are_usage_errors(ledger, ref, message):
    save(ledger, "post", "one", label="production")
    with pytest.raises(UsageError) as exc:
        resolve_prompt(ledger, ref)
    assert exc.value.message == message
    with pytest.raises(UsageError, match="No prompt named"):
        resolve_prompt(None, "post")


def test_labels_move_and_latest_is_implicit(ledger):
    save(ledger, "post", "one", label="production")
    save(ledger, "post", "two")
    version, before = set_label(ledger, "post@2", "production", now=NOW)
    assert (version.ref, before) == ("post@2", 1)
    assert store.labels(ledger, "post") == {"post": {"production": 2}}
    assert resolve_prompt(ledger, "post@1").labels == ()
    with pytest.raises(UsageError, match="'latest' cannot be set"):
        set_label(ledger, "post@1", "latest", now=NOW)
    with pytest.raises(UsageError, match="is not a label"):
        set_label(ledger, "post@1", "9lives", now=NOW)


def record_call(ledger, name, version):
    from tokencli.ids import new_id

    ledger.insert_call(
        Call(
            id=new_id(),
            ts="2026-11-20T10:00:00.000000Z",
            provider="mock",
            model="echo",
            status="ok",
            prompt_name=name,
            prompt_version=version,
        )
    )


def test_rm_retires_versions_that_calls_used_and_deletes_the_rest(ledger):
    save(ledger, "post", "one", label="production")
    save(ledger, "post", "two")
    save(ledger, "post", "three")
    record_call(ledger, "post", 1)
    removed = remove_prompt(ledger, "post@production")
    assert (removed.deleted, removed.retired, dict(removed.calls)) == ([], [1], {1: 1})
    assert store.labels(ledger, "post") == {}
    retired = resolve_prompt(ledger, "post@1", allow_retired=True)
    assert retired.retired and retired.template == "one"
    with pytest.raises(UsageError, match="was removed"):
        resolve_prompt(ledger, "post@1")
    removed = remove_prompt(ledger, "post@3")
    assert (removed.deleted, removed.retired) == ([3], [])
    assert resolve_prompt(ledger, "post").version == 2
    removed = remove_prompt(ledger, "post")
    assert (removed.deleted, removed.retired) == ([2], [])
    assert list_prompts(ledger) == []
    assert [v.version for v in list_versions(ledger, "post")] == [1]  # the retired one stays
    # A new version never takes a number a retired version holds.
    assert save(ledger, "post", "again").version.version == 2


def test_params_are_max_tokens_and_temperature_in_range():
    assert parse_params(["max_tokens=200", "temperature=0.5"]) == {
        "max_tokens": 200,
        "temperature": 0.5,
    }
    for bad, message in (
        (["top_p=1"], "Unknown parameter 'top_p'."),
        (["max_tokens=lots"], "Parameter max_tokens = 'lots' is not a whole number."),
        (["temperature=3"], "Parameter temperature = 3 is out of range."),
        (["temperature"], "--param 'temperature' is not KEY=VALUE."),
    ):
        with pytest.raises(UsageError) as exc:
            parse_params(bad)
        assert exc.value.message == message


def test_a_version_fills_run_options_and_flags_win():
    version = PromptVersion(
        "post",
        3,
        "Be {{tone}}.",
        "On {{topic}}",
        "mock:lorem",
        {"max_tokens": 9, "temperature": 0.3},
    )
    options, unused = apply_prompt(
        RunOptions(prompt="", temperature=1.0), version, {"tone": "dry", "topic": "tides", "x": "1"}
    )
    assert (options.prompt, options.system, options.model) == ("On tides", "Be dry.", "mock:lorem")
    assert (options.max_tokens, options.temperature) == (9, 1.0)
    assert (options.prompt_name, options.prompt_version, unused) == ("post", 3, ["x"])
    options, _ = apply_prompt(
        RunOptions(prompt="", model="mock:echo"), version, {"tone": "a", "topic": "b"}
    )
    assert options.model == "mock:echo"


def test_saving_refuses_bad_templates_names_and_empty_text(ledger):
    with pytest.raises(UsageError, match="unclosed placeholder at line 1"):
        save(ledger, "post", "ok", system="Be {{tone")
    with pytest.raises(UsageError, match="is empty"):
        save(ledger, "post", "  \n")
    with pytest.raises(UsageError, match="not a prompt name"):
        save(ledger, "a@b", "text")
    assert list_prompts(ledger) == []


# ------------------------------------------------------------------ files


def fill(ledger):
    save(
        ledger,
        "post",
        "Write about {{topic}}.\nKeep it short.",
        system="You are terse.",
        model="mock:echo",
        params={"temperature": 0.2},
        note="first",
    )
    save(
        ledger,
        "post",
        "Write about {{topic}} in {{words}} words.",
        label="production",
        now=NOW + timedelta(minutes=1),
    )
    save(
        ledger,
        "title",
        'A title for {{topic}} as JSON {"title": "..."}',
        now=NOW + timedelta(minutes=2),
    )


def snapshot(ledger):
    return [
        (v.name, v.version, v.content_hash, v.labels, v.note, v.created)
        for p in list_prompts(ledger)
        for v in list_versions(ledger, p.name)
    ]


@pytest.mark.parametrize("fmt", ["toml", "yaml"])
def test_export_then_import_round_trips_and_importing_again_adds_nothing(ledger, fmt):
    if fmt == "yaml":
        pytest.importorskip("yaml")
    fill(ledger)
    text = dumps(export_data(ledger, ["post", "title"]), fmt)
    assert "Keep it short." in text
    where = f"prompts.{fmt}"
    other = Ledger.open_memory()
    tally = import_data(other, loads(text, where), where, now=NOW)
    assert (tally.prompts, tally.added, tally.present, tally.labels) == (2, 3, 0, 1)
    assert snapshot(other) == snapshot(ledger)
    again = import_data(other, loads(text, where), where, now=NOW)
    assert (again.added, again.present, again.labels) == (0, 3, 0)
    assert snapshot(other) == snapshot(ledger)
    # Into the ledger it came from: nothing new either.
    assert import_data(ledger, loads(text, where), where, now=NOW).added == 0


def test_importing_a_hand_written_file_keeps_free_numbers_and_dedupes_by_content(ledger):
    text = """format = "tokencli.prompts/1"
[[prompts]]
name = "post"
labels = { production = 5 }
[[prompts.versions]]
version = 5
created = 2026-11-19T10:00:00+01:00
template = "Hello {{name}}"
params = { max_tokens = 50 }
"""
    import_data(ledger, loads(text, "p.toml"), "p.toml", now=NOW)
    version = resolve_prompt(ledger, "post@production")
    assert (version.version, dict(version.params)) == (5, {"max_tokens": 50})
    assert version.created == "2026-11-19T09:00:00.000000Z"  # a TOML time, kept as UTC
    assert import_data(ledger, loads(text, "p.toml"), "p.toml", now=NOW).added == 0


@pytest.mark.parametrize(
    "text,message",
    [
        ('format = "other"', "p.toml is not a tokencli prompt file."),
        ("format = ", "p.toml is not valid TOML"),
        (
            'format = "tokencli.prompts/1"\n[[prompts]]\nname = "x"\n[[prompts.versions]]\nsystem = "s"\n',
            "p.toml: prompt 'x' version 1: template is missing.",
        ),
        (
            'format = "tokencli.prompts/1"\n[[prompts]]\nname = "x"\n[[prompts.versions]]\ntemplate = "{{a"\n',
            "unclosed placeholder at line 1",
        ),
        (
            'format = "tokencli.prompts/1"\n[[prompts]]\nname = "x"\n[[prompts.versions]]\ntemplate = "a"\ncreated = "yesterday"\n',
            "p.toml: prompt 'x' version 1: created 'yesterday' is not a time.",
        ),
        (
            'format = "tokencli.prompts/1"\n[[prompts]]\nname = "x"\n[[prompts.versions]]\ntemplate = "a"\nparams = { top_k = 1 }\n',
            "p.toml: prompt 'x' version 1: Unknown parameter 'top_k'.",
        ),
    ],
)
def test_bad_prompt_files_are_usage_errors(ledger, text, message):
    with pytest.raises(UsageError) as exc:
        import_data(ledger, loads(text, "p.toml"), "p.toml", now=NOW)
    assert message in exc.value.message
    assert list_prompts(ledger) == []


def test_yaml_without_pyyaml_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(UsageError) as exc:
        file_format(Path("prompts.yaml"), None)
    assert "PyYAML" in exc.value.message and "TOML" in (exc.value.hint or "")
    assert file_format(Path("prompts.yaml"), "toml") == "toml"
