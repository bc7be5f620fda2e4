"""The --json contract: every command's document against its schema in docs/json.md.

docs/json.md declares each document's fields and their types in one table per
schema; this test reads those tables and checks what every command really prints
against them: no field missing, none undeclared, each of its declared type. So the
documentation cannot drift from the output, and a change to a document shows here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import provider_config, write_config
from tests.fakes import FakeServer, json_reply
from tokencli.results import RESULTS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "json.md"
SCHEMA_NAME = re.compile(r"^tokencli\.[a-z][a-z-]*/[1-9][0-9]*$")

EARLY, MID, NOW = "2026-10-01T09:00:00Z", "2026-11-10T09:00:00Z", "2026-11-15T12:00:00Z"
CONFIG = """
[budgets.monthly]
amount = 5
period = "month"

[budgets.words]
tokens = 10
period = "week"

[alerts]
max_call_tokens = 40
"""


# ------------------------------------------------------------------ the declared schemas


def declared() -> dict[str, dict[str, str]]:
    """docs/json.md as {schema: {jq path: type}}, from each `## tokencli.NAME/N` table."""
    schemas: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOCS.read_text("utf-8").splitlines():
        if line.startswith("## "):
            heading = re.match(r"^## `(tokencli\.[^`]+)`$", line)
            current = schemas.setdefault(heading.group(1), {}) if heading else None
            continue
        row = re.match(r"^\| `(\.[^`]*)` \| ([^|]+?) \|", line)
        if current is not None and row:
            current[row.group(1)] = row.group(2)
    # A row typed with another schema's name holds that record (less its `schema` key).
    for fields in schemas.values():
        for path, kind in list(fields.items()):
            if kind in schemas:
                del fields[path]
                for inner, inner_kind in schemas[kind].items():
                    if inner != ".schema":
                        fields[path + ("" if inner == "." else inner)] = inner_kind
    return schemas


DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "decimal string": lambda v: isinstance(v, str) and bool(DECIMAL.match(v)),
    "date": lambda v: isinstance(v, str) and len(v) == 10 and _parses(date.fromisoformat, v),
    "timestamp": lambda v: isinstance(v, str) and "T" in v and _parses(_zoned, v),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _zoned(text: str) -> None:
    if datetime.fromisoformat(text).tzinfo is None:
        raise ValueError(text)


def parse_type(text: str) -> tuple[bool, set[str]]:
    """`optional integer or null` → (optional, {"integer", "null"})."""
    optional = text.startswith("optional ")
    kinds = set(text.removeprefix("optional ").split(" or "))
    unknown = kinds - set(TYPE_CHECKS) - {"null"}
    assert not unknown, f"docs/json.md: unknown type {unknown} in {text!r}"
    return optional, kinds


def check(document: Any, schema: dict[str, str]) -> list[str]:
    """What in `document` disagrees with `schema` ({jq path: type}), as sentences."""
    problems: list[str] = []

    def visit(value: Any, path: str) -> None:
        if path not in schema:
            problems.append(f"{path}: not declared in docs/json.md")
            return
        kinds = parse_type(schema[path])[1]
        if not (
            (value is None and "null" in kinds)
            or any(TYPE_CHECKS[k](value) for k in kinds - {"null"})
        ):
            problems.append(f"{path}: {value!r} is not {schema[path]}")
            return
        prefix = "." if path == "." else f"{path}."
        each = ".[]" if path == "." else f"{path}[]"
        if isinstance(value, dict):
            fields = {
                p[len(prefix) :]
                for p in schema
                if p.startswith(prefix)
                and p != prefix
                and not re.search(r"[.\[]", p[len(prefix) :])
            }
            if each in schema:  # an object whose keys are data: each value
                for item in value.values():
                    visit(item, each)
            elif fields:
                for key, item in value.items():
                    visit(item, prefix + key)
                for key in sorted(fields - set(value)):
                    if not parse_type(schema[prefix + key])[0]:
                        problems.append(f"{prefix + key}: missing")
            # else: a free-form object (`.extra`)
        elif isinstance(value, list):
            for item in value:
                visit(item, each)

    visit(document, ".")
    return problems


def test_the_checker_catches_a_missing_an_extra_and_a_mistyped_field():
    schema = {
        ".": "object",
        ".schema": "string",
        ".n": "integer",
        ".cost": "decimal string or null",
        ".note": "optional string",
        ".tags": "object",
        ".tags[]": "string",
        ".extra": "optional object",
        ".items": "list",
        ".items[]": "object",
        ".items[].ts": "timestamp",
    }
    good = {"schema": "x", "n": 1, "cost": "0.5", "tags": {"a": "b"}, "items": [{"ts": NOW}]}
    assert check(good, schema) == []
    assert check({**good, "cost": None, "note": "hi", "extra": {"any": [1]}}, schema) == []
    assert check({k: v for k, v in good.items() if k != "n"}, schema) == [".n: missing"]
    assert check({**good, "more": 1}, schema) == [".more: not declared in docs/json.md"]
    assert check({**good, "n": True}, schema) == [".n: True is not integer"]
    assert check({**good, "cost": 0.5}, schema) == [".cost: 0.5 is not decimal string or null"]
    assert check({**good, "tags": {"a": 1}}, schema) == [".tags[]: 1 is not string"]
    assert check({**good, "items": [{"ts": "2026-11-15T12:00:00"}]}, schema) == [
        ".items[].ts: '2026-11-15T12:00:00' is not timestamp"
    ]
    assert check([good], {".": "list", ".[]": "object"}) == []


def test_a_row_typed_with_a_schema_name_holds_that_record():
    calls = declared()["tokencli.calls/1"]
    assert calls[".[]"] == "object" and calls[".[].usage.input_tokens"] == "integer"
    assert ".[].schema" not in calls


# ------------------------------------------------------------------ what the commands print


@pytest.fixture
def documents(cli, home, monkeypatch) -> Iterator[list[tuple[str, list[str], Any]]]:
    """(schema, command, parsed stdout) for every --json document tokencli prints."""
    server = FakeServer()
    write_config(
        home,
        CONFIG + provider_config("fake", "openai", server.url + "/v1", prices_from="openai"),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    deepseek = home / "deepseek.toml"
    deepseek.write_text(provider_config("deepseek", "openai", server.url), "utf-8")
    out: list[tuple[str, list[str], Any]] = []

    def doc(schema: str, *args: str, code: int = 0, **kwargs: Any) -> Any:
        result = cli(*args, **kwargs)
        assert result.exit_code == code, (args, result.stderr)
        data = json.loads(result.stdout)  # one document, nothing else on stdout
        out.append((schema, list(args), data))
        return data

    priced = ("--price-as", "openai:gpt-4o-mini")
    monkeypatch.setenv("TOKENCLI_NOW", EARLY)
    for words in ("an old call", "another old call"):
        doc("tokencli.call/1", "run", "-m", "mock:echo", *priced, "--json", words)
    monkeypatch.setenv("TOKENCLI_NOW", MID)
    doc("tokencli.call/1", "run", "-m", "mock:echo", *priced, "-p", "blog", "--json", "hi there")
    doc("tokencli.call/1", "run", "-m", "mock:lorem", "--tag", "team=a", "--json", "lorem")
    server.queue(json_reply({"error": {"message": "nope"}}, 401))
    failed = doc("tokencli.call/1", "run", "-m", "fake:gpt-4o-mini", "--json", "q", code=4)
    assert failed["status"] == "error"

    monkeypatch.setenv("TOKENCLI_NOW", NOW)
    doc(
        "tokencli.dry-run/1",
        "run",
        "-m",
        "mock:echo",
        "-s",
        "Be brief.",
        "--dry-run",
        "--json",
        "x",
    )
    doc("tokencli.count/1", "count", "-m", "openai:gpt-4o-mini", "--json", "hello world")
    assert (
        cli("prompt", "save", "title", "Title: {{topic}}", "--param", "max_tokens=20").exit_code
        == 0
    )
    assert (
        cli("prompt", "save", "title", "A title: {{topic}}", "--label", "production").exit_code == 0
    )
    doc("tokencli.prompt/1", "prompt", "show", "title@1", "--json")
    doc("tokencli.prompt-versions/1", "prompt", "list", "title", "--json")
    doc("tokencli.prompts/1", "prompt", "list", "--json")
    doc(
        "tokencli.call/1",
        "run",
        "-m",
        "mock:echo",
        "--prompt",
        "title",
        "--var",
        "topic=x",
        "--json",
    )
    doc(
        "tokencli.dry-run/1",
        "run",
        "-m",
        "mock:echo",
        "--prompt",
        "title@production",
        "--var",
        "topic=x",
        "--dry-run",
        "--json",
    )
    calls = doc("tokencli.calls/1", "logs", "--json")
    doc("tokencli.calls/1", "logs", "--json", "--text", "-n", "2")
    doc("tokencli.call/1", "logs", "show", calls[0]["id"], "--json")
    doc("tokencli.models/1", "models", "gpt-4o-mini", "--json")
    doc("tokencli.models/1", "models", "--provider", "qwen", "--json")  # the yuan list
    off_peak = doc("tokencli.models/1", "models", "--provider", "siliconflow", "--json")
    assert any(m["off_peak"] for m in off_peak)  # the time-of-day prices, checked too
    doc("tokencli.forecast/1", "forecast", "--by", "model", "--budget", "1", "--json")
    doc("tokencli.report/1", "report", "--month", "2026-11", "--by", "model", "--json")
    doc("tokencli.report/1", "report", "--month", "2026-11", "--format", "json")
    doc("tokencli.budgets/1", "budget", "list", "--json")
    doc("tokencli.budget-status/1", "budget", "status", "--json")
    doc("tokencli.budget-check/1", "budget", "check", "--json", code=3)
    doc("tokencli.settings/1", "config", "show", "--json")
    doc("tokencli.paths/1", "config", "path", "--json")
    doc("tokencli.keys/1", "keys", "list", "--json")
    doc("tokencli.alert-test/1", "alerts", "test", "--json")
    assert doc("tokencli.alerts/1", "alerts", "list", "--json")[0]["status"] == "sent"

    comparison = doc(
        "tokencli.comparison/1",
        "compare",
        "One two three.",
        "One two.",
        "-m",
        "mock:echo",
        "--json",
    )
    doc(
        "tokencli.comparison/1",
        "compare",
        "Say {{x}} please.",
        "Say {{x}}.",
        "-m",
        "mock:echo",
        "--runs",
        "2",
        "--var",
        "x=hi",
        "--json",
    )
    doc("tokencli.comparison/1", "compare", "show", comparison["id"], "--json")
    doc("tokencli.comparisons/1", "compare", "list", "--json")

    assert cli("refill", "add", "fake", "5").exit_code == 0
    assert cli("refill", "add", "fake", "1M", "--tokens", "--grant", "--expires", "2027-01-31")
    doc("tokencli.refills/1", "refill", "list", "--json")
    doc("tokencli.refill-status/1", "refill", "status", "--offline", "--json")
    doc("tokencli.refill-check/1", "refill", "check", "--threshold", "1USD", "--offline", "--json")
    balance = {"currency": "CNY", "total_balance": "9.50", "granted_balance": "0.50"}
    server.queue(json_reply({"balance_infos": [{**balance, "topped_up_balance": "9.00"}]}))
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test-0123456789abcdef")
    doc("tokencli.refill-status/1", "--config", str(deepseek), "refill", "status", "--json")
    doc("tokencli.reconcile/1", "reconcile", "--json")

    backup = cli("ledger", "export").stdout
    other = str(home / "other.db")
    doc("tokencli.import/1", "--db", other, "ledger", "import", "-", "--json", input=backup)
    doc("tokencli.prune/1", "ledger", "prune", "--older-than", "30d", "--dry-run", "--json")
    doc("tokencli.prune/1", "ledger", "prune", "--older-than", "30d", "--yes", "--json")
    doc("tokencli.prune/1", "ledger", "prune", "--older-than", "30d", "--yes", "--json")
    server.close()
    yield out


def test_every_json_document_matches_its_schema_in_the_docs(documents):
    schemas = declared()
    problems = []
    for schema, args, document in documents:
        assert schema in schemas, f"docs/json.md has no section for {schema}"
        problems += [f"tokencli {' '.join(args)}: {p}" for p in check(document, schemas[schema])]
    assert not problems, "\n".join(problems)


def test_every_record_names_its_schema_first_and_collections_stay_lists(documents):
    by_name = {cls.schema: cls for cls in RESULTS}
    for schema, args, document in documents:
        if by_name[schema].collection:
            assert not isinstance(document, dict) or "schema" not in document, args
        else:
            assert next(iter(document)) == "schema" and document["schema"] == schema, args


def test_every_result_is_printed_versioned_and_documented(documents):
    printed = {schema for schema, _, _ in documents}
    schemas = declared()
    for cls in RESULTS:
        assert SCHEMA_NAME.match(cls.schema), cls.schema
        assert cls.schema in printed, f"no command in this test prints {cls.schema}"
        assert cls.schema in schemas, f"docs/json.md has no section for {cls.schema}"
    assert set(schemas) == {cls.schema for cls in RESULTS}
