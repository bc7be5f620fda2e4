"""Property tests (issue 12) for the period grammar and the import line decoder: any
text gives a value or the project's own error, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ledger_rows
from tokencli.errors import UsageError
from tokencli.ledger.file_formats import FormatError, decode_jsonl
from tokencli.ledger.store import IMPORT_COLUMNS
from tokencli.window import (
    EARLIEST,
    LATEST,
    parse_month,
    parse_point,
    parse_span,
    resolve_period,
    retention_cutoff,
    zone,
)

# ------------------------------------------------------------------ the period grammar

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)), zone("UTC")]
)
NOWS = st.sampled_from(
    [
        datetime(2026, 11, 20, 12, tzinfo=UTC),
        datetime(1900, 1, 2, tzinfo=UTC),
        datetime(9998, 12, 30, tzinfo=UTC),
    ]
)
PERIOD_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[0-9]{1,30}\s?(min|h|d|w|mo|y|m|s|e308d)\Z"),
    st.from_regex(r"\A[0-9+\-]{1,6}-[0-9]{1,3}-[0-9]{1,3}(T[0-9:.]{1,15})?(Z|[+\-][0-9:]{1,6})?\Z"),
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31",
            "99999",
            "1e308d",
            "1e308",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1900-01-01",
            "9998-12-31",
            "999999999999d",
            "0d",
            "-1d",
            "nan",
            "inf",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(text=PERIOD_TEXT, now=NOWS, tz=ZONES, option=st.sampled_from(["--since", "--until"]))
def test_parse_point_gives_a_time_in_range_or_a_usage_error(text, now, tz, option):
    try:
        when = parse_point(text, now, tz, option=option)
    except UsageError as exc:
        assert exc.message.startswith(option) or "--" in exc.message
        return
    assert when.tzinfo is not None
    assert EARLIEST - timedelta(days=1) <= when <= LATEST + timedelta(days=1)


@settings(max_examples=400, deadline=None)
@given(
    since=st.none() | PERIOD_TEXT,
    until=st.none() | PERIOD_TEXT,
    last=st.none() | PERIOD_TEXT,
    month=st.none() | PERIOD_TEXT | st.from_regex(r"\A[0-9]{4}-[0-9]{2}\Z"),
    now=NOWS,
    tz=ZONES,
)
def test_resolve_period_gives_a_window_or_a_usage_error(since, until, last, month, now, tz):
    try:
        window = resolve_period(now=now, tz=tz, month=month, since=since, until=until, last=last)
    except UsageError:
        return
    assert window.start < window.end
    # A window can be shown in the user's zone and shifted to the previous period.
    window.start.astimezone(tz), window.end.astimezone(tz)


@settings(max_examples=300, deadline=None)
@given(text=PERIOD_TEXT, now=NOWS)
def test_spans_months_and_retention_never_raise_anything_else(text, now):
    for parse in (
        lambda: parse_span(text, "--last"),
        lambda: parse_month(text),
        lambda: retention_cutoff(text, now),
    ):
        try:
            parse()
        except UsageError:
            pass


@pytest.mark.parametrize("value", ["0001-01-01", "9999-12-31", "99999", "1e308d", "99999999999y"])
@pytest.mark.parametrize(
    "args",
    [
        ("logs", "--since"),
        ("logs", "--until"),
        ("report", "--since"),
        ("report", "--last"),
        ("report", "--until"),
        ("report", "--month"),
        ("ledger", "export", "--since"),
        ("ledger", "export", "--last"),
        ("ledger", "prune", "--older-than"),
    ],
)
def test_every_period_option_refuses_out_of_range_dates_in_one_sentence(cli, home, args, value):
    r = cli(*args, value)
    assert r.exit_code == 2, r.stderr
    assert "Internal error" not in r.stderr and r.stderr.count("\n") == 1
    assert "option" not in r.stderr.lower()  # the value was read, not the flag refused


# ------------------------------------------------------------------ the import line decoder

GOOD = {
    "v": 1,
    "id": "01CALL",
    "ts": "2026-11-05T10:00:00.000000Z",
    "host": "h",
    "provider": "openai",
    "model": "gpt-4o",
    "status": "ok",
}
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "0001-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-02-30T00:00:00.000000Z",
            "2026-11-05T10:00:00+14:00",
            "1e308",
            "-0.0000001",
            "999999999",
            "\ud800",
        ]
    ),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=5,
)
FIELDS = st.sampled_from([*IMPORT_COLUMNS, "cost", "v", "extra", "tags", "params"]) | st.text(
    max_size=8
)
RECORDS = st.builds(
    lambda changes, drop: json.dumps(
        {k: v for k, v in {**GOOD, **changes}.items() if k not in drop},
        ensure_ascii=False,
    ),
    st.dictionaries(FIELDS, JSON_VALUES, max_size=5),
    st.sets(st.sampled_from(sorted(GOOD)), max_size=2),
)
LINES = st.one_of(
    RECORDS,
    RECORDS.map(lambda line: line.replace("\\u", "\\\\u")),
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from(["NaN", '{"v":1,"cost":NaN}', "[" * 5000, "{" * 3000, '"\\ud800"']),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=LINES)
@example(line="[" * 100_000 + "]" * 100_000)
@example(line='{"v":1,"params":' + '{"a":' * 100_000 + "1" + "}" * 100_001)
@example(line=json.dumps({**GOOD, "ts": "0001-01-01T00:00:00.000000Z"}))
@example(line=json.dumps({**GOOD, "params": {"t": 1.5}}).replace("1.5", "NaN"))
def test_import_line_decoder_gives_a_row_or_a_format_error(line):
    try:
        row = decode_jsonl(line)
    except FormatError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert len(row) == len(IMPORT_COLUMNS)
    values = dict(zip(IMPORT_COLUMNS, row, strict=True))
    ts = datetime.strptime(values["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert EARLIEST <= ts < LATEST
    for value in row:
        if isinstance(value, str):
            value.encode("utf-8")  # SQLite stores it
    for name in ("tags", "params", "extra"):
        if values[name] is not None:
            json.loads(values[name], parse_constant=lambda c: pytest.fail(c))


@pytest.mark.parametrize(
    "line,words",
    [
        ({**GOOD, "ts": "0001-01-01T00:00:00.000000Z"}, "outside the years 1900 to 9998"),
        ({**GOOD, "ts": "9999-12-31T23:59:59.999999Z"}, "outside the years 1900 to 9998"),
        ('{"v":1,"extra":' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ],
)
def test_ledger_import_refuses_absurd_lines_in_one_sentence(cli, home, tmp_path, line, words):
    path = tmp_path / "in.jsonl"
    good = json.dumps({**GOOD, "id": "01GOOD"})
    path.write_text(good + "\n" + (line if isinstance(line, str) else json.dumps(line)) + "\n")
    r = cli("ledger", "import", str(path))
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "line 2" in r.stderr
    assert "Internal error" not in r.stderr
    assert [row["id"] for row in ledger_rows(home)] == ["01GOOD"]
    for tz in ("Pacific/Kiritimati", "Etc/GMT+12"):
        assert cli("logs", "--tz", tz, "--since", "1900-01-02").exit_code == 0


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "content,words",
    [
        ("[1, 2]", "is not shaped as"),
        ('{"keys": ["sk-x"]}', "is not shaped as"),
        ('{"keys": {"openai": 5}}', "is not shaped as"),
        ('{"keys": {"openai": "sk-caf\\u00e9"}}', "not ASCII"),
        ('{"keys": {"openai": "sk-a\\nb"}}', "newlines"),
        ("[" * 100_000, "unreadable or damaged"),
    ],
)
def test_a_keys_file_of_the_wrong_shape_is_one_sentence_exit_6(cli, home, content, words):
    home.mkdir(parents=True, exist_ok=True)
    path = home / "keys.json"
    path.write_text(content, "utf-8")
    path.chmod(0o600)
    r = cli("run", "-m", "openai:gpt-4o-mini", "hi")
    assert r.exit_code == 6, r.stderr
    assert words in r.stderr and r.stderr.count("\n") == 1
    assert "Internal error" not in r.stderr


@pytest.mark.parametrize(
    "value,words",
    [
        ("sk-café\n", "not ASCII"),
        ("sk-a\x1bb\n", "control character"),
        ("sk-a b\n", "spaces"),
        (b"sk-\xff\xfe\n", "not ASCII"),
    ],
)
def test_keys_set_refuses_a_key_no_header_can_carry(cli, home, value, words):
    r = cli("keys", "set", "openai", input=value, stdin_tty=False)
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "Internal error" not in r.stderr
    assert not (home / "keys.json").exists()


def test_a_key_in_the_environment_with_a_newline_is_exit_6(cli, home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc\r\nX-Evil: 1")
    r = cli("run", "-m", "openai:gpt-4o-mini", "hi")
    assert r.exit_code == 6, r.stderr
    assert "OPENAI_API_KEY" in r.stderr and "X-Evil" not in r.stderr


def test_arguments_that_are_not_utf8_are_one_sentence_exit_2(cli, home):
    for args in (
        ("run", "-m", "mock:echo", "--project", "a\udcffb", "hi"),
        ("run", "-m", "mock:echo", "\udced\udca0\udc80"),
        ("logs", "--tag", "k=\udcff"),
    ):
        r = cli(*args)
        assert r.exit_code == 2, r.stderr
        assert "not valid UTF-8" in r.stderr, r.stderr
        assert "\\udcff" in r.stderr or "\\udced" in r.stderr
        assert r.stderr.count("\n") == 1
    assert not (home / "ledger.db").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_temperature_and_forecast_budget_refuse_non_finite(cli, home, value):
    r = cli("run", "-m", "mock:echo", "--temperature", value, "hi")
    assert r.exit_code == 2, r.stderr
    assert "finite" in r.stderr or "range" in r.stderr
    assert not (home / "ledger.db").exists()
    f = cli("forecast", "--budget", value)
    assert f.exit_code == 2 and "--budget" in f.stderr
    big = cli("forecast", "--budget", "1e400")
    assert big.exit_code == 2 and "Internal error" not in big.stderr


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_batch_line_with_a_non_finite_temperature_is_refused(cli, home, tmp_path, value):
    path = tmp_path / "b.jsonl"
    path.write_text('{"prompt": "hi", "temperature": ' + value + "}\n")
    r = cli("batch", str(path), "-m", "mock:echo")
    assert r.exit_code == 2, r.stderr
    assert "Line 1: temperature" in r.stderr and "finite" in r.stderr
    assert not (home / "ledger.db").exists() or ledger_rows(home) == []


@pytest.mark.parametrize(
    "created",
    ['"0001-01-01T00:00:00.000000Z"', "0001-01-01T00:00:00+05:00", '"9999-12-31T00:00:00Z"'],
)
def test_a_prompt_file_dated_out_of_range_is_refused(cli, home, tmp_path, created):
    path = tmp_path / "p.toml"
    path.write_text(
        'format = "tokencli.prompts/1"\n[[prompts]]\nname = "p"\n[[prompts.versions]]\n'
        f'version = 1\ncreated = {created}\ntemplate = "hi"\n'
    )
    r = cli("prompt", "import", str(path))
    assert r.exit_code == 2, r.stderr
    assert "outside the years 1900 to 9998" in r.stderr and r.stderr.count("\n") == 1
    assert cli("prompt", "list").exit_code == 0
