"""`tokencli ledger export|import|prune`: backups that round-trip exactly, filters that
select the right calls, Prometheus counters that equal the sums, and pruning that
keeps every total.

Ledgers are built through the ledger's own write paths (`insert_call`,
`import_calls`); the commands run in-process through `run_cli`, and every
expectation is computed independently from the `Call` objects or written out
by hand.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.test_rollups import assert_rollups_match_calls
from tokencli.calls.usage import Usage
from tokencli.errors import UsageError
from tokencli.ledger import Call, Ledger, format_ts
from tokencli.ledger.file_formats import CSV_COLUMNS, TEXT_COLUMNS
from tokencli.ledger.migrations import LATENCY_TABLES, ROLLUP_TABLES
from tokencli.window import retention_cutoff

TABLES = (*ROLLUP_TABLES, *LATENCY_TABLES)
ELSEWHERE = "elsewhere"  # not this host: a pending row stays pending when a ledger opens
IMPORTED = {"schema": "tokencli.import/1"}  # the --json summary's first key


# ------------------------------------------------------------------ helpers


def make_ledger(path: Path, calls: list[Call], *, via: str = "insert") -> None:
    """A ledger holding `calls`, written one by one (the run path) or in bulk."""
    ledger = Ledger.open(path)
    assert ledger is not None
    if via == "insert":
        for call in calls:
            ledger.insert_call(call)
    else:
        ledger.import_calls(calls)
    ledger.close()


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every exported row (calls, texts, tags of finished calls) and every rollup row."""
    finished = "SELECT id FROM calls WHERE status != 'pending'"
    out = {
        "calls": query(db, "SELECT * FROM calls WHERE status != 'pending' ORDER BY id"),
        "call_texts": query(
            db, f"SELECT * FROM call_texts WHERE call_id IN ({finished}) ORDER BY call_id"
        ),
        "call_tags": query(
            db, f"SELECT * FROM call_tags WHERE call_id IN ({finished}) ORDER BY call_id, key"
        ),
    }
    out.update(rollup_snapshot(db))
    return out


def rollup_snapshot(db: Path) -> dict[str, list[tuple]]:
    return {t: sorted(query(db, f"SELECT * FROM {t}")) for t in TABLES}


def ids(db: Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT id FROM calls ORDER BY id")]


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON lines text: texts in it may hold U+2028 or U+0085, which
    `str.splitlines` would also split on."""
    assert text == "" or text.endswith("\n")
    return text.split("\n")[:-1]


def exported_ids(stdout: str) -> list[str]:
    return [json.loads(line)["id"] for line in jsonl_lines(stdout)]


def one_sentence(result: Result) -> str:
    """The single stderr line of a failed command, checked for the usual promises."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def jsonl(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def record(i: int, **fields: object) -> dict:
    """A minimal valid export line for a call that no ledger here has."""
    return {
        "v": 1,
        "id": f"01HREC{i:020d}",
        "ts": "2026-01-15T10:00:00.000000Z",
        "host": "h",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        **fields,
    }


def call(id_: str, ts: str, **kw: object) -> Call:
    kw.setdefault("host", "h1")
    kw.setdefault("provider", "openai")
    kw.setdefault("model", "gpt-4o-mini")
    kw.setdefault("status", "ok")
    return Call(id=id_, ts=ts, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ a varied ledger


def varied_calls() -> list[Call]:
    """Every kind of row an export must carry unchanged, plus a seeded random crowd."""
    sha = "9f" * 32
    calls = [
        call(
            "01JV0000000000000000000001",
            "2026-01-05T09:00:00.000001Z",
            pid=4242,
            response_model="gpt-4o-mini-2024-07-18",
            alias="fast",
            project="blog",
            tags={"step": "draft", "lang": "é"},
            prompt_name="title",
            prompt_version=3,
            usage=Usage(
                input_tokens=1200,
                cached_input_tokens=200,
                cache_write_tokens=100,
                output_tokens=300,
                reasoning_tokens=120,
            ),
            cost=Decimal("0.000000000001"),
            currency="USD",
            price_source="genai-prices 0.0.30",
            duration_ms=1234,
            ttft_ms=210,
            request_id="req_abc",
            finish_reason="stop",
            stream=True,
            params={"temperature": 0.7, "max_tokens": 64, "stop": ["\n\n"]},
            extra={"retries": 1, "nested": {"b": 2, "a": [1.5, None, True]}},
            system_text="You are terse.",
            prompt_text='Write a title about "quotes", \\backslashes\\ and\nnewlines',
            response_text="Title: ✓ — 中文 🚀",
            cache_key=sha,
            batch_id="batch-7",
            batch_item="item-001",
        ),
        call(
            "01JV0000000000000000000002",
            "2026-01-05T09:00:00.000001Z",  # the same instant as the first
            provider="deepseek",
            model="deepseek-chat",
            status="error",
            usage=Usage(input_tokens=50, source="estimated"),
            error_kind="timeout",
            error_message="read timed out after 60 s",
            stream=False,
            prompt_text="only a prompt",
        ),
        call(
            "01JV0000000000000000000003",
            "2026-01-06T23:30:00.000000Z",
            status="interrupted",
            usage=Usage(input_tokens=10, output_tokens=7),
            cost=Decimal("0.000123456789012"),
            currency="USD",
            duration_ms=999,
            error_kind="interrupted",
            response_text="cut \u2028 here\r\nand \x85 there \x00 nul",
        ),
        call(
            "01JV0000000000000000000004",
            "2026-01-07T00:00:00.000000Z",
            provider="anthropic",
            model="claude-haiku",
            status="blocked",
            tags={"step": "final"},
            usage=Usage(input_tokens=4000, output_tokens=1000, source="estimated"),
            cost=Decimal("0.5"),
            currency="USD",
            error_kind="budget",
            error_message="monthly budget 'all' would be exceeded",
        ),
        call(
            "01JV0000000000000000000005",
            "2026-01-08T12:00:00.000000Z",
            provider="qwen",
            model="qwen-plus",
            status="cached",
            usage=Usage(input_tokens=800, output_tokens=90),
            cost=Decimal("0.25"),
            currency="CNY",
            cache_key=sha,
            duration_ms=3,
        ),
        call(
            "01JV0000000000000000000006",
            "2026-01-09T08:15:00.000000Z",
            provider="deepseek",
            model="deepseek-chat",
            project="店铺",
            tags={"kind": "a=b,c"},
            usage=Usage(input_tokens=12_345, output_tokens=6789, cached_input_tokens=2000),
            cost=Decimal("12.345678901234"),
            currency="CNY",
            price_source="config",
            duration_ms=45_678,
            prompt_name="summary",
            prompt_version=1,
        ),
        call(
            "01JV0000000000000000000007",
            "2026-01-10T10:00:00.000000Z",
            provider="local",
            model="qwen2.5-0.5b",
            usage=Usage(input_tokens=20, output_tokens=30, source="counted"),
            duration_ms=15,
        ),  # unknown cost: no cost, no currency
        call(
            "01JV0000000000000000000008",
            "2026-01-11T10:00:00.000000Z",
            provider="ollama",
            model="llama3",
            cost=Decimal(0),
            currency="USD",
            duration_ms=100,
            system_text="",  # an empty text is still a text
        ),
        call(
            "01JV0000000000000000000009",
            "2026-01-12T10:00:00.000000Z",
            status="pending",
            host=ELSEWHERE,
            pid=77,
            prompt_text="still running",
            tags={"step": "draft"},
        ),
    ]
    rng = random.Random(20260105)
    start = datetime(2025, 12, 1, tzinfo=UTC)
    models = [("openai", "gpt-4o-mini", "USD"), ("deepseek", "deepseek-chat", "CNY")]
    statuses = ["ok"] * 8 + ["error", "interrupted", "cached", "blocked", "pending"]
    for i in range(150):
        when = start + timedelta(
            seconds=rng.randrange(70 * 86400), microseconds=rng.randrange(10**6)
        )
        provider, model, currency = rng.choice(models)
        status = rng.choice(statuses)
        cost = None if rng.random() < 0.1 else Decimal(rng.randrange(1, 10**8)) / 10**11
        calls.append(
            call(
                f"01JR{i:022d}",
                format_ts(when),
                provider=provider,
                model=model,
                status=status,
                host=ELSEWHERE if status == "pending" else "h2",
                project=rng.choice(["blog", "shop", None]),
                tags={"step": rng.choice("ab")} if rng.random() < 0.5 else {},
                usage=Usage(input_tokens=rng.randrange(2000), output_tokens=rng.randrange(800)),
                cost=cost,
                currency=currency if cost is not None else None,
                duration_ms=rng.randrange(20, 30_000),
                stream=rng.choice([True, False, None]),
                prompt_text=f"prompt {i}" if rng.random() < 0.5 else None,
            )
        )
    return calls


@pytest.fixture(params=["one process", "two processes"])
def reader(request, monkeypatch, tmp_path):
    """Import files in this process, or (as big files are) parsed by a forked second one.

    Tiny chunks, so the child stages many and waits for the parent (back-pressure).
    """
    from tokencli.ledger import exchange, staging

    if request.param == "one process":
        yield request.param
        return
    if not staging.CAN_FORK:
        pytest.skip("this OS cannot fork")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    used = []
    real = staging.staged_chunks

    def counted(*args, **kwargs):
        used.append(1)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(exchange, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(exchange, "IMPORT_CHUNK", 7)
    monkeypatch.setattr(staging, "staged_chunks", counted)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield request.param
    assert used, "no import went through the second process"
    assert list(scratch.iterdir()) == []  # the scratch database is gone


@pytest.fixture
def varied(tmp_path: Path) -> tuple[Path, list[Call]]:
    calls = varied_calls()
    path = tmp_path / "source.db"
    make_ledger(path, calls)
    return path, calls


# ------------------------------------------------------------------ 1. round trip


def test_export_then_import_reproduces_every_row_and_rollup(cli, varied, tmp_path, reader):
    source, calls = varied
    backup = tmp_path / "backup.jsonl"
    result = cli("--db", str(source), "ledger", "export", "-o", str(backup))
    assert result.exit_code == 0, result.stderr
    finished = [c for c in calls if c.status != "pending"]
    pending = [c for c in calls if c.status == "pending"]
    assert pending and result.stdout == ""
    assert f"exported {len(finished)} calls to {backup}" in result.stderr

    lines = jsonl_lines(backup.read_text("utf-8"))
    assert len(lines) == len(finished)
    assert sorted(exported_ids(backup.read_text("utf-8"))) == sorted(c.id for c in finished)
    records = [json.loads(line) for line in lines]
    assert [(r["ts"], r["id"]) for r in records] == sorted((c.ts, c.id) for c in finished)
    first = next(r for r in records if r["id"] == "01JV0000000000000000000001")
    assert first["v"] == 1 and first["pid"] == 4242 and first["total_tokens"] == 1500
    assert first["cost"] == "0.000000000001" and first["stream"] is True
    assert first["tags"] == {"lang": "é", "step": "draft"}
    assert first["params"]["stop"] == ["\n\n"]

    dest = tmp_path / "dest.db"
    result = cli("--db", str(dest), "ledger", "import", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        **IMPORTED,
        "inserted": len(finished),
        "skipped": 0,
        "pruned": 0,
    }
    assert f"imported {len(finished)} calls from {backup}." in result.stderr

    assert snapshot(dest) == snapshot(source)
    assert not set(ids(dest)) & {c.id for c in pending}
    # A few fields read back through the ledger API, to be sure nothing was merely equal-but-empty.
    ledger = Ledger.open(dest)
    assert ledger is not None
    by_id = {c.id: c for c in ledger.list_calls(limit=1000, with_text=True)}
    original = calls[0]
    back = by_id[original.id]
    assert back == original
    assert by_id["01JV0000000000000000000003"].response_text == calls[2].response_text
    assert by_id["01JV0000000000000000000005"].currency == "CNY"
    assert by_id["01JV0000000000000000000006"].cost == Decimal("12.345678901234")
    assert by_id["01JV0000000000000000000007"].cost is None
    assert by_id["01JV0000000000000000000002"].stream is False
    assert by_id["01JV0000000000000000000004"].stream is None
    assert_rollups_match_calls(ledger)
    ledger.close()


def test_export_of_a_missing_ledger_is_empty_and_creates_nothing(cli, home):
    result = cli("ledger", "export")
    assert (result.exit_code, result.stdout) == (0, "")
    result = cli("ledger", "export", "--format", "csv")
    assert result.exit_code == 0 and result.stdout.startswith("id,ts,host,")
    assert not (home / "ledger.db").exists()


def test_jsonl_without_texts(cli, varied):
    source, _ = varied
    result = cli("--db", str(source), "ledger", "export", "--no-text")
    assert result.exit_code == 0, result.stderr
    for line in jsonl_lines(result.stdout):
        assert not {"system_text", "prompt_text", "response_text"} & set(json.loads(line))


# ------------------------------------------------------------------ 2. importing twice, overlaps


def test_importing_again_changes_nothing(cli, varied, tmp_path):
    source, calls = varied
    n = sum(c.status != "pending" for c in calls)
    backup = tmp_path / "b.jsonl"
    assert cli("--db", str(source), "ledger", "export", "-o", str(backup)).exit_code == 0
    dest = tmp_path / "dest.db"
    assert cli("--db", str(dest), "ledger", "import", str(backup)).exit_code == 0
    before = snapshot(dest)

    again = cli("--db", str(dest), "ledger", "import", str(backup), "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout) == {**IMPORTED, "inserted": 0, "skipped": n, "pruned": 0}
    assert f"imported 0 calls from {backup}; {n} already in the ledger." in again.stderr
    assert snapshot(dest) == before

    # Into the source itself: every call is already there.
    into_source = cli("--db", str(source), "ledger", "import", str(backup), "--json")
    assert json.loads(into_source.stdout) == {**IMPORTED, "inserted": 0, "skipped": n, "pruned": 0}
    assert snapshot(source) == before


def test_partial_overlap_counts_both_kinds(cli, varied, tmp_path):
    source, calls = varied
    finished = [c for c in calls if c.status != "pending"]
    january = [c for c in finished if c.ts.startswith("2026-01")]
    dest = tmp_path / "dest.db"
    part = cli("--db", str(source), "ledger", "export", "--month", "2026-01", "--tz", "UTC")
    assert part.exit_code == 0, part.stderr
    first = cli("--db", str(dest), "ledger", "import", "-", "--json", input=part.stdout)
    assert json.loads(first.stdout)["inserted"] == len(january) > 0
    assert "from stdin" in first.stderr

    everything = cli("--db", str(source), "ledger", "export").stdout
    second = cli("--db", str(dest), "ledger", "import", "-", "--json", input=everything)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout) == {
        **IMPORTED,
        "inserted": len(finished) - len(january),
        "skipped": len(january),
        "pruned": 0,
    }
    assert snapshot(dest) == snapshot(source)


def test_an_id_repeated_in_one_file_is_inserted_once_first_copy_wins(cli, tmp_path):
    """A repeated id is the same call seen twice: kept as first seen, like one already present."""
    dest = tmp_path / "dest.db"
    text = (
        jsonl(record(1, model="first-copy", input_tokens=5, cost="0.001", currency="USD"))
        + jsonl(record(2))
        + jsonl(record(1, model="last-copy", input_tokens=7, cost="0.002", currency="USD"))
    )
    result = cli("--db", str(dest), "ledger", "import", "-", "--json", input=text)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**IMPORTED, "inserted": 2, "skipped": 1, "pruned": 0}
    assert query(
        dest, "SELECT model, input_tokens, cost_pico FROM calls WHERE id = ?", (record(1)["id"],)
    ) == [("first-copy", 5, 1_000_000_000)]
    assert query(
        dest,
        "SELECT model, sum(calls), sum(cost_pico) FROM rollup_month_model GROUP BY 1 ORDER BY 1",
    ) == [
        ("first-copy", 1, 1_000_000_000),
        ("gpt-4o-mini", 1, 0),
    ]


def test_an_id_repeated_far_apart_in_a_big_file_is_also_first_copy_wins(cli, tmp_path):
    """The same promise when the copies are more than one import chunk (20,000 lines) apart."""
    dest = tmp_path / "dest.db"
    lines = [jsonl(record(0, model="first-copy"))]
    lines += [jsonl(record(i)) for i in range(1, 20_000)]
    lines.append(jsonl(record(0, model="last-copy")))
    result = cli("--db", str(dest), "ledger", "import", "-", "--json", input="".join(lines))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**IMPORTED, "inserted": 20_000, "skipped": 1, "pruned": 0}
    assert query(dest, "SELECT model FROM calls WHERE id = ?", (record(0)["id"],)) == [
        ("first-copy",)
    ]


def test_gzipped_export_imports(cli, varied, tmp_path, reader):
    source, calls = varied
    zipped = tmp_path / "backup.jsonl.gz"
    result = cli("--db", str(source), "ledger", "export", "-o", str(zipped))
    assert result.exit_code == 0, result.stderr
    raw = zipped.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    plain = cli("--db", str(source), "ledger", "export").stdout
    assert gzip.decompress(raw).decode("utf-8") == plain
    dest = tmp_path / "dest.db"
    result = cli("--db", str(dest), "ledger", "import", str(zipped), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["inserted"] == sum(c.status != "pending" for c in calls)
    assert snapshot(dest) == snapshot(source)


# ------------------------------------------------------------------ 3. bad input


def test_a_bad_line_stops_the_import_after_the_lines_before_it(cli, tmp_path, reader):
    dest = tmp_path / "dest.db"
    good = [jsonl(record(i)) for i in range(1, 6)]
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(good[:3]) + "this is not json\n" + "".join(good[3:]), "utf-8")
    result = cli("--db", str(dest), "ledger", "import", str(path))
    assert result.exit_code == 2
    message = one_sentence(result)
    assert f"{path} line 4 is not JSON" in message
    assert "imported 3 calls" in message
    assert ids(dest) == sorted(record(i)["id"] for i in (1, 2, 3))

    path.write_text("".join(good[:3]) + jsonl(record(99)) + "".join(good[3:]), "utf-8")
    result = cli("--db", str(dest), "ledger", "import", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**IMPORTED, "inserted": 3, "skipped": 3, "pruned": 0}
    assert len(ids(dest)) == 6
    ledger = Ledger.open(dest)
    assert ledger is not None
    assert_rollups_match_calls(ledger)
    ledger.close()


GOOD = record(1)


@pytest.mark.parametrize(
    "line, words",
    [
        (json.dumps({k: v for k, v in GOOD.items() if k != "v"}), 'no "v" field'),
        (json.dumps({**GOOD, "v": 2}), "format version 2"),
        (json.dumps({**GOOD, "input_tokens": "12"}), '"input_tokens"'),
        (json.dumps({**GOOD, "output_tokens": -1}), '"output_tokens"'),
        (json.dumps({**GOOD, "duration_ms": 1.5}), '"duration_ms"'),
        (json.dumps({**GOOD, "status": "pending"}), '"status"'),
        (json.dumps({**GOOD, "status": "done"}), '"status"'),
        (json.dumps({k: v for k, v in GOOD.items() if k != "ts"}), 'no "ts"'),
        (json.dumps({**GOOD, "ts": "2026-01-15 10:00"}), "time zone"),
        (json.dumps({**GOOD, "ts": "yesterday"}), '"ts"'),
        (json.dumps({**GOOD, "cost": "cheap"}), '"cost"'),
        (json.dumps({**GOOD, "cost": "NaN"}), '"cost"'),
        (json.dumps({**GOOD, "tags": ["a"]}), '"tags"'),
        (json.dumps({**GOOD, "tags": {"a": 1}}), '"tags"'),
        (json.dumps({**GOOD, "stream": "yes"}), '"stream"'),
        (json.dumps({**GOOD, "model": 5}), '"model"'),
        (json.dumps({**GOOD, "id": "  "}), '"id"'),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_bad_fields_are_refused_with_the_line_number(cli, tmp_path, line, words):
    dest = tmp_path / "dest.db"
    path = tmp_path / "bad.jsonl"
    path.write_text(jsonl(record(7)) + line + "\n", "utf-8")
    result = cli("--db", str(dest), "ledger", "import", str(path))
    assert result.exit_code == 2, result.stderr
    message = one_sentence(result)
    assert f"{path} line 2 " in message and words in message
    assert ids(dest) == [record(7)["id"]]


@pytest.mark.parametrize(
    "field, value",
    [
        ("input_tokens", 10**20),  # more than SQLite's 64-bit integers hold
        ("duration_ms", 2**63),
        ("cost", "1e30"),  # 10^42 picos
        ("prompt_text", "\ud800"),  # a lone surrogate: valid JSON, not storable text
    ],
)
def test_out_of_range_values_are_bad_input_not_internal_errors(cli, tmp_path, field, value):
    """A value the ledger cannot store is the file's fault: exit 2 naming the line, never 1."""
    dest = tmp_path / "dest.db"
    path = tmp_path / "bad.jsonl"
    path.write_text(
        jsonl(record(7)) + json.dumps(record(8, **{field: value, "currency": "USD"})) + "\n",
        "utf-8",
    )
    result = cli("--db", str(dest), "ledger", "import", str(path))
    assert "Internal error" not in result.stderr
    assert result.exit_code == 2, result.stderr
    assert f"{path} line 2 " in one_sentence(result)
    assert ids(dest) == [record(7)["id"]]


def test_unreadable_files_are_one_sentence_and_exit_2(cli, home, tmp_path, reader):
    missing = cli("ledger", "import", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2
    assert f"Cannot read {tmp_path / 'nope.jsonl'}" in one_sentence(missing)
    assert not (home / "ledger.db").exists()  # nothing to import: no ledger made

    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(jsonl(record(1)).encode() + b'{"v":1,"project":"caf\xe9"}\n')
    result = cli("ledger", "import", str(latin))
    assert result.exit_code == 2
    assert f"{latin} line 2 is not UTF-8" in one_sentence(result)

    whole = gzip.compress(("".join(jsonl(record(i)) for i in range(50))).encode())
    for name, data in (("cut.jsonl.gz", whole[: len(whole) // 2]), ("junk.gz", b"\x1f\x8bjunk")):
        damaged = tmp_path / name
        damaged.write_bytes(data)
        result = cli("ledger", "import", str(damaged))
        assert result.exit_code == 2, result.stderr
        message = one_sentence(result)
        assert f"Cannot read {damaged}" in message and "damaged" in message


def test_an_empty_file_imports_nothing(cli, tmp_path):
    dest = tmp_path / "dest.db"
    for content in ("", "\n\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(content, "utf-8")
        result = cli("--db", str(dest), "ledger", "import", str(path), "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == {**IMPORTED, "inserted": 0, "skipped": 0, "pruned": 0}
        assert f"imported 0 calls from {path}." in result.stderr
    assert ids(dest) == []


# ------------------------------------------------------------------ 4. filters, periods, CSV


FILTER_NOW = "2026-02-10T12:00:00Z"


def filter_calls() -> list[Call]:
    usd = {"cost": Decimal("0.01"), "currency": "USD"}
    return [
        call(
            "01JF00000000000000000000F1",
            "2026-01-10T08:00:00.000000Z",
            model="gpt-a",
            project="blog",
            tags={"step": "a"},
            **usd,
        ),
        call("01JF00000000000000000000F2", "2026-01-31T22:59:59.999999Z", model="gpt-b", **usd),
        call(
            "01JF00000000000000000000F3",
            "2026-01-31T23:30:00.000000Z",
            provider="deepseek",
            model="chat",
            project="blog",
            tags={"step": "b"},
            cost=Decimal("0.7"),
            currency="CNY",
        ),
        call(
            "01JF00000000000000000000F4",
            "2026-02-01T00:00:00.000000Z",
            provider="anthropic",
            model="claude",
            project="shop",
            tags={"step": "a"},
            **usd,
        ),
        call(
            "01JF00000000000000000000F5",
            "2026-02-05T10:00:00.000000Z",
            model="gpt-a",
            project="shop",
            tags={"step": "a", "lang": "en"},
            **usd,
        ),
        call("01JF00000000000000000000F6", "2026-02-10T11:59:59.000000Z", model="gpt-a", **usd),
        call("01JF00000000000000000000F7", "2026-02-10T12:00:01.000000Z", model="gpt-a", **usd),
        call(
            "01JF00000000000000000000F8",
            "2026-02-28T23:30:00.000000Z",
            model="gpt-b",
            status="error",
        ),
        call(
            "01JF00000000000000000000P1",
            "2026-02-03T00:00:00.000000Z",
            status="pending",
            host=ELSEWHERE,
            pid=9,
        ),
    ]


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "F1 F2 F3 F4 F5 F6 F7 F8"),
        (["--month", "2026-01", "--tz", "UTC"], "F1 F2 F3"),
        # 23:30 UTC on Jan 31 is 00:30 on Feb 1 in Berlin (UTC+1).
        (["--month", "2026-01", "--tz", "Europe/Berlin"], "F1 F2"),
        (["--month", "2026-02", "--tz", "Europe/Berlin"], "F3 F4 F5 F6 F7"),
        (["--month", "2026-02", "--tz", "UTC"], "F4 F5 F6 F7 F8"),
        (["--month", "2026-03", "--tz", "Europe/Berlin"], "F8"),
        (["--since", "2026-02-01", "--until", "2026-02-06", "--tz", "UTC"], "F4 F5"),
        (["--since", "2026-01-31T23:30:00Z", "--until", "2026-02-01T00:00:00Z"], "F3"),
        (["--since", "2026-02-05", "--tz", "UTC"], "F5 F6"),  # up to now
        (["--until", "2026-01-31", "--tz", "UTC"], "F1"),
        (["--last", "7d", "--tz", "UTC"], "F5 F6"),  # Feb 4 00:00 to now
        (["--last", "2mo", "--tz", "UTC"], "F1 F2 F3 F4 F5 F6"),
        (["--provider", "openai"], "F1 F2 F5 F6 F7 F8"),
        (["--model", "gpt-a"], "F1 F5 F6 F7"),
        (["--project", "blog"], "F1 F3"),
        (["--tag", "step=a"], "F1 F4 F5"),
        (["--tag", "step=a", "--tag", "lang=en"], "F5"),
        (["--month", "2026-02", "--tz", "UTC", "--provider", "openai", "--model", "gpt-b"], "F8"),
        (["--project", "nobody"], ""),
    ],
)
def test_export_filters_and_periods_select_the_right_calls(cli, home, monkeypatch, args, expected):
    make_ledger(home / "ledger.db", filter_calls())
    monkeypatch.setenv("TOKENCLI_NOW", FILTER_NOW)
    result = cli("ledger", "export", *args)
    assert result.exit_code == 0, result.stderr
    assert [i[-2:] for i in exported_ids(result.stdout)] == expected.split()
    csv_result = cli("ledger", "export", "--format", "csv", *args)
    assert [
        r["id"][-2:] for r in csv.DictReader(io.StringIO(csv_result.stdout))
    ] == expected.split()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--month", "2026-13"], "--month"),
        (["--month", "2026-01", "--last", "7d"], "only one"),
        (["--last", "soon"], "--last"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "later than"),
        (["--tz", "Mars/Olympus", "--month", "2026-01"], "time zone"),
        (["--tag", "novalue"], "KEY=VALUE"),
        (["--format", "xml"], "xml"),
    ],
)
def test_bad_export_options_exit_2(cli, home, args, words):
    make_ledger(home / "ledger.db", filter_calls())
    out = home / "out.jsonl"
    result = cli("ledger", "export", *args, "-o", str(out))
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def csv_calls() -> list[Call]:
    return [
        call(
            "01JC00000000000000000000C1",
            "2026-03-01T10:00:00.000000Z",
            project='=HYPERLINK("http://evil.example/x","click")',
            tags={"k": "v"},
            usage=Usage(input_tokens=10, output_tokens=5),
            cost=Decimal("0.000000000001"),
            currency="USD",
            stream=True,
            system_text="sys, with comma",
            prompt_text='say "hi"\nplease',
            response_text="@SUM(A1:A9)",
            prompt_name="title",
            prompt_version=2,
        ),
        call(
            "01JC00000000000000000000C2",
            "2026-03-01T11:00:00.000000Z",
            provider="deepseek",
            model="chat",
            project="+1 project",
            status="error",
            error_message="-2 tokens left",
            stream=False,
        ),
        call(
            "01JC00000000000000000000C3",
            "2026-03-01T12:00:00.000000Z",
            provider="deepseek",
            model="chat",
            project="plain",
            cost=Decimal("1234.5678"),
            currency="CNY",
        ),
    ]


def test_csv_export_parses_with_exact_money_and_a_formula_guard(cli, home):
    make_ledger(home / "ledger.db", csv_calls())
    result = cli("ledger", "export", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    reader = csv.reader(io.StringIO(result.stdout))
    header = next(reader)
    assert tuple(header) == CSV_COLUMNS
    assert not set(TEXT_COLUMNS) & set(header)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    assert [r["id"] for r in rows] == [c.id for c in csv_calls()]
    assert [r["cost"] for r in rows] == ["0.000000000001", "", "1234.5678"]
    assert [r["currency"] for r in rows] == ["USD", "", "CNY"]
    assert [r["stream"] for r in rows] == ["true", "false", ""]
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[0]["tags"] == '{"k": "v"}'
    assert rows[0]["input_tokens"] == "10" and rows[0]["total_tokens"] == "15"
    assert rows[0]["prompt_name"] == "title" and rows[0]["prompt_version"] == "2"
    # A spreadsheet must not run what a cell says.
    assert rows[0]["project"] == '\'=HYPERLINK("http://evil.example/x","click")'
    assert rows[1]["project"] == "'+1 project"
    assert rows[1]["error_message"] == "'-2 tokens left"
    assert rows[2]["project"] == "plain"

    with_text = cli("ledger", "export", "--format", "csv", "--text")
    assert with_text.exit_code == 0, with_text.stderr
    parsed = list(csv.DictReader(io.StringIO(with_text.stdout)))
    assert tuple(parsed[0]) == CSV_COLUMNS + TEXT_COLUMNS
    assert parsed[0]["system_text"] == "sys, with comma"
    assert parsed[0]["prompt_text"] == 'say "hi"\nplease'
    assert parsed[0]["response_text"] == "'@SUM(A1:A9)"
    assert parsed[1]["prompt_text"] == "" and parsed[2]["response_text"] == ""


# ------------------------------------------------------------------ 5. Prometheus


_SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[str, dict[tuple[str, ...], Decimal]]:
    """{family: {label values in order: value}}; checks the label syntax on the way."""
    out: dict[str, dict[tuple[str, ...], Decimal]] = defaultdict(dict)
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = _SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        pairs = _LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
        key = tuple(
            re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
            for _, v in pairs
        )
        assert key not in out[name], f"duplicate sample {line}"
        out[name][key] = Decimal(value)
    return dict(out)


def prometheus_calls() -> list[Call]:
    rng = random.Random(5)
    models = [
        ("openai", "gpt-4o-mini", "USD"),
        ("deepseek", "deepseek-chat", "CNY"),
        ('we"ird', "back\\slash\nmodel", "USD"),
    ]
    statuses = ["ok", "ok", "ok", "error", "interrupted", "blocked", "cached", "pending"]
    calls = []
    for i in range(240):
        provider, model, currency = models[i % 3]
        status = rng.choice(statuses)
        cost = None if rng.random() < 0.15 else Decimal(rng.randrange(1, 10**9)) / 10**12
        calls.append(
            call(
                f"01JP{i:022d}",
                format_ts(datetime(2025, 6, 1, tzinfo=UTC) + timedelta(hours=37 * i)),
                provider=provider,
                model=model,
                status=status,
                host=ELSEWHERE if status == "pending" else "h",
                usage=Usage(
                    input_tokens=rng.randrange(5000),
                    cached_input_tokens=rng.randrange(100),
                    cache_write_tokens=rng.randrange(50),
                    output_tokens=rng.randrange(3000),
                    reasoning_tokens=rng.randrange(500),
                ),
                cost=cost,
                currency=currency if cost is not None else None,
                duration_ms=rng.randrange(100, 9000),
            )
        )
    return calls


def expected_prometheus(calls: list[Call]) -> dict[str, dict[tuple[str, ...], Decimal]]:
    finished = [c for c in calls if c.status != "pending"]
    out: dict[str, dict[tuple[str, ...], Decimal]] = {
        f"tokencli_{f}_total": defaultdict(Decimal)
        for f in ("calls", "tokens", "cost", "cache_savings", "unpriced_calls")
    }
    outcome = {"interrupted": "error"}
    for c in finished:
        for status in ("ok", "error", "blocked", "cached"):
            out["tokencli_calls_total"][(c.provider, c.model, status)] += 0
        out["tokencli_calls_total"][(c.provider, c.model, outcome.get(c.status, c.status))] += 1
        if c.status != "cached":
            u = c.usage
            for kind, n in (
                ("input", u.input_tokens),
                ("cached_input", u.cached_input_tokens),
                ("cache_write", u.cache_write_tokens),
                ("output", u.output_tokens),
                ("reasoning", u.reasoning_tokens),
            ):
                out["tokencli_tokens_total"][(c.provider, c.model, kind)] += n
            if c.cost is not None:
                out["tokencli_cost_total"][(c.provider, c.model, c.currency)] += c.cost
        elif c.cost is not None:
            out["tokencli_cache_savings_total"][(c.provider, c.model, c.currency)] += c.cost
        if c.status in ("ok", "interrupted") and c.cost is None:
            out["tokencli_unpriced_calls_total"][(c.provider, c.model)] += 1
    return {name: dict(samples) for name, samples in out.items()}


def test_prometheus_counters_equal_the_sums_of_the_calls(cli, home, monkeypatch):
    calls = prometheus_calls()
    make_ledger(home / "ledger.db", calls, via="import")
    monkeypatch.setenv("TOKENCLI_NOW", "2026-03-01T00:00:00Z")
    result = cli("ledger", "export", "--format", "prometheus")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    got = parse_prometheus(text)
    want = expected_prometheus(calls)
    assert got["tokencli_calls_total"] == want["tokencli_calls_total"]
    assert got["tokencli_tokens_total"] == want["tokencli_tokens_total"]
    for family in ("tokencli_cost_total", "tokencli_cache_savings_total"):
        assert {k: v for k, v in got[family].items() if v} == {
            k: v for k, v in want[family].items() if v
        }, family
    assert got["tokencli_unpriced_calls_total"] == want["tokencli_unpriced_calls_total"]
    assert got["tokencli_export_timestamp_seconds"] == {
        (): Decimal(int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()))
    }
    # Every family is typed; label values are escaped in the text itself.
    for family in ("calls", "tokens", "cost", "cache_savings", "unpriced_calls"):
        assert f"# TYPE tokencli_{family}_total counter" in text
    assert "# TYPE tokencli_export_timestamp_seconds gauge" in text
    ok_weird = want["tokencli_calls_total"][('we"ird', "back\\slash\nmodel", "ok")]
    assert (
        f'tokencli_calls_total{{provider="we\\"ird",model="back\\\\slash\\nmodel",status="ok"}} {ok_weird}'
        in text.splitlines()
    )
    # Money is written exactly, never as a float.
    usd = want["tokencli_cost_total"][("openai", "gpt-4o-mini", "USD")]
    assert (
        f'tokencli_cost_total{{provider="openai",model="gpt-4o-mini",currency="USD"}} '
        f"{format(usd.normalize(), 'f')}" in text.splitlines()
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--month", "2026-01"],
        ["--since", "2026-01-01"],
        ["--until", "2026-01-01"],
        ["--last", "7d"],
        ["--provider", "openai"],
        ["--model", "gpt-4o-mini"],
        ["--project", "blog"],
        ["--tag", "step=a"],
        ["--text"],
    ],
)
def test_prometheus_refuses_periods_and_filters(cli, home, args):
    make_ledger(home / "ledger.db", filter_calls())
    out = home / "metrics.prom"
    result = cli("ledger", "export", "--format", "prometheus", *args, "-o", str(out))
    assert result.exit_code == 2, result.stderr
    message = one_sentence(result)
    assert args[0] in message and "prometheus" in message
    assert not out.exists()


def test_output_files_modes_and_no_temporary_left(cli, home, tmp_path, monkeypatch):
    make_ledger(home / "ledger.db", filter_calls())
    monkeypatch.setenv("TOKENCLI_NOW", FILTER_NOW)
    folder = tmp_path / "out"
    folder.mkdir()
    prom, backup = folder / "tokencli.prom", folder / "backup.jsonl"
    prom.write_text("old contents that must go\n", "utf-8")
    previous = os.umask(0o077)  # a strict umask must not hide the metrics from node_exporter
    try:
        result = cli("ledger", "export", "--format", "prometheus", "-o", str(prom))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    assert prom.stat().st_mode & 0o777 == 0o644
    assert prom.read_text("utf-8") == cli("ledger", "export", "-f", "prometheus").stdout
    assert "old contents" not in prom.read_text("utf-8")

    previous = os.umask(0)  # a loose umask must not expose a backup
    try:
        result = cli("ledger", "export", "-o", str(backup))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    assert backup.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["backup.jsonl", "tokencli.prom"]

    missing = folder / "no-such-dir" / "x.jsonl"
    result = cli("ledger", "export", "-o", str(missing))
    assert result.exit_code == 2
    assert f"Cannot write {missing}" in one_sentence(result)
    assert sorted(p.name for p in folder.iterdir()) == ["backup.jsonl", "tokencli.prom"]


# ------------------------------------------------------------------ 6. prune

PRUNE_NOW = "2026-06-15T12:00:00Z"
CUTOFF = "2026-04-15T00:00:00.000000Z"  # --older-than 2mo, aligned down to a UTC midnight


def prune_calls() -> list[Call]:
    rng = random.Random(42)
    calls = []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(300):
        when = start + timedelta(seconds=rng.randrange(160 * 86400))
        cost = Decimal(rng.randrange(1, 10**7)) / 10**9
        calls.append(
            call(
                f"01JQ{i:022d}",
                format_ts(when),
                provider=rng.choice(["openai", "anthropic"]),
                model="m1",
                status=rng.choice(["ok", "ok", "ok", "error", "cached", "interrupted"]),
                project=rng.choice(["blog", "shop", None]),
                tags={"step": rng.choice("ab")},
                usage=Usage(input_tokens=rng.randrange(1000), output_tokens=rng.randrange(500)),
                cost=cost,
                currency="USD",
                duration_ms=rng.randrange(50, 8000),
                prompt_text=f"p{i}",
                response_text=f"r{i}",
            )
        )
    # Calls at the edges of local months in zones east of UTC (Berlin +1, Kolkata +5:30).
    edges = [
        "2026-01-31T18:45:00.000000Z",  # February in Kolkata
        "2026-01-31T23:30:00.000000Z",  # February in Berlin
        "2026-02-28T18:45:00.000000Z",  # March in Kolkata
        "2026-02-28T23:30:00.000000Z",  # March in Berlin
    ]
    for j, ts in enumerate(edges):
        calls.append(
            call(
                f"01JE{j:022d}",
                ts,
                project="blog",
                tags={"step": "edge"},
                usage=Usage(input_tokens=100, output_tokens=50),
                cost=Decimal("0.123"),
                currency="USD",
                duration_ms=60_000,
                prompt_text="edge",
            )
        )
    calls += [
        call(
            "01JX0000000000000000000001",
            "2026-04-14T23:59:59.999999Z",
            cost=Decimal("0.01"),
            currency="USD",
            tags={"step": "a"},
            prompt_text="last pruned",
        ),
        call(
            "01JX0000000000000000000002",
            "2026-04-15T00:00:00.000000Z",
            cost=Decimal("0.01"),
            currency="USD",
            tags={"step": "a"},
            prompt_text="first kept",
        ),
        # Older than two months but kept: the cutoff is aligned down to a midnight.
        call(
            "01JX0000000000000000000003",
            "2026-04-15T06:00:00.000000Z",
            cost=Decimal("0.01"),
            currency="USD",
        ),
        call(
            "01JX0000000000000000000004",
            "2026-02-10T10:00:00.000000Z",
            status="pending",
            host=ELSEWHERE,
            pid=3,
            tags={"step": "a"},
            prompt_text="in flight",
        ),
    ]
    return calls


@pytest.fixture
def pruneable(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    calls = prune_calls()
    make_ledger(home / "ledger.db", calls)
    monkeypatch.setenv("TOKENCLI_NOW", PRUNE_NOW)
    return calls


def doomed(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.ts < CUTOFF and c.status != "pending"]


def test_prune_dry_run_deletes_nothing(cli, home, pruneable):
    before = snapshot(home / "ledger.db")
    n = len(doomed(pruneable))
    result = cli("ledger", "prune", "--older-than", "2mo", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"{n} calls recorded before 2026-04-15 (UTC) would be deleted (dry run)" in result.stderr
    result = cli("ledger", "prune", "--older-than", "2mo", "--dry-run", "--json")
    assert json.loads(result.stdout) == {
        "schema": "tokencli.prune/1",
        "cutoff": CUTOFF,
        "dry_run": True,
        "would_delete": n,
        "oldest": min(c.ts for c in doomed(pruneable)),
        "newest": "2026-04-14T23:59:59.999999Z",
        "pending_kept": 1,
    }
    assert snapshot(home / "ledger.db") == before
    assert query(home / "ledger.db", "SELECT count(*) FROM pruned_calls") == [(0,)]


def test_prune_asks_and_without_a_terminal_refuses(cli, home, pruneable):
    db = home / "ledger.db"
    before = snapshot(db)
    n = len(doomed(pruneable))
    result = cli("ledger", "prune", "--older-than", "2mo", input="")
    assert result.exit_code == 2
    message = one_sentence(result)
    assert f"would delete {n} calls" in message and "--yes" in message
    assert snapshot(db) == before

    declined = cli("ledger", "prune", "--older-than", "2mo", input="n\n", stdin_tty=True)
    assert declined.exit_code == 2
    assert f"Delete {n} calls recorded before 2026-04-15 (UTC)?" in declined.stderr
    assert "Nothing deleted" in declined.stderr
    assert snapshot(db) == before

    accepted = cli("ledger", "prune", "--older-than", "2mo", input="y\n", stdin_tty=True)
    assert accepted.exit_code == 0, accepted.stderr
    assert len(ids(db)) == len(pruneable) - n


def test_prune_deletes_old_finished_calls_and_keeps_every_total(cli, home, pruneable):
    db = home / "ledger.db"
    gone = doomed(pruneable)
    kept = [c for c in pruneable if c not in gone]
    rollups_before = rollup_snapshot(db)
    metrics_before = cli("ledger", "export", "--format", "prometheus").stdout
    report_before = cli("report", "--month", "2026-02", "--tz", "UTC", "--json").stdout
    assert json.loads(report_before)["totals"]["calls"] > 0

    result = cli("ledger", "prune", "--older-than", "2mo", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "schema": "tokencli.prune/1",
        "cutoff": CUTOFF,
        "dry_run": False,
        "deleted": len(gone),
        "oldest": min(c.ts for c in gone),
        "newest": "2026-04-14T23:59:59.999999Z",
        "pending_kept": 1,
    }
    assert ids(db) == sorted(c.id for c in kept)
    assert query(db, "SELECT status FROM calls WHERE id = '01JX0000000000000000000004'") == [
        ("pending",)
    ]
    assert {r[0] for r in query(db, "SELECT call_id FROM call_texts")} == {
        c.id for c in kept if c.prompt_text is not None
    }
    assert {r[0] for r in query(db, "SELECT call_id FROM call_tags")} == {
        c.id for c in kept if c.tags
    }
    assert sorted(r[0] for r in query(db, "SELECT id FROM pruned_calls")) == sorted(
        c.id for c in gone
    )

    assert rollup_snapshot(db) == rollups_before
    assert cli("ledger", "export", "--format", "prometheus").stdout == metrics_before
    report_after = json.loads(cli("report", "--month", "2026-02", "--tz", "UTC", "--json").stdout)
    report = json.loads(report_before)
    for doc in (report, report_after):
        del doc["generated_at"], doc["top_calls"]  # the calls themselves are gone
        doc.pop("pruned_until", None)  # a note that the period reaches into pruned time
    assert report_after == report

    again = cli("ledger", "prune", "--older-than", "2mo", "--yes")
    assert again.exit_code == 0
    assert "no calls recorded before 2026-04-15 (UTC); nothing to prune." in again.stderr

    plain = cli("ledger", "prune", "--older-than", "60d", "--yes", "--vacuum")
    assert plain.exit_code == 0, plain.stderr
    assert "deleted" in plain.stderr and "their totals stay in reports" in plain.stderr
    assert rollup_snapshot(db) == rollups_before


@pytest.mark.parametrize(
    "tz, by",
    [
        ("UTC", []),
        ("UTC", ["--by", "project"]),
        ("Europe/Berlin", []),
        ("Europe/Berlin", ["--by", "project"]),
        ("Asia/Kolkata", []),
    ],
)
def test_month_report_of_a_pruned_month_is_unchanged_in_any_zone(cli, pruneable, tz, by):
    """`ledger prune --help`: "reports and Prometheus counters for pruned months do not change"."""

    def report() -> dict:
        result = cli("report", "--month", "2026-02", "--tz", tz, "--json", *by)
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        del doc["generated_at"], doc["top_calls"]  # the calls themselves are gone
        doc.pop("pruned_until", None)  # a note that the period reaches into pruned time
        return doc

    before = report()
    assert cli("ledger", "prune", "--older-than", "2mo", "--yes").exit_code == 0
    after = report()
    assert {k: after[k] for k in after if after[k] != before[k]} == {}
    assert after == before


def test_importing_a_backup_after_pruning_skips_the_pruned_calls(
    cli, home, pruneable, tmp_path, reader
):
    db = home / "ledger.db"
    backup = tmp_path / "before-prune.jsonl.gz"
    assert cli("ledger", "export", "-o", str(backup)).exit_code == 0
    gone = doomed(pruneable)
    finished = [c for c in pruneable if c.status != "pending"]
    assert cli("ledger", "prune", "--older-than", "2mo", "--yes").exit_code == 0
    rollups = rollup_snapshot(db)
    report = json.loads(cli("report", "--month", "2026-02", "--tz", "UTC", "--json").stdout)

    result = cli("ledger", "import", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        **IMPORTED,
        "inserted": 0,
        "skipped": len(finished) - len(gone),
        "pruned": len(gone),
    }
    assert f"{len(gone)} pruned from it before, left out" in result.stderr
    assert rollup_snapshot(db) == rollups
    assert not set(ids(db)) & {c.id for c in gone}

    # A call older than the cutoff that this ledger never had is new: imported and counted.
    stranger = record(
        1,
        ts="2026-02-02T10:00:00.000000Z",
        input_tokens=11,
        output_tokens=22,
        cost="0.000007",
        currency="USD",
    )
    result = cli("ledger", "import", "-", "--json", input=jsonl(stranger))
    assert json.loads(result.stdout) == {**IMPORTED, "inserted": 1, "skipped": 0, "pruned": 0}
    assert stranger["id"] in ids(db)
    after = json.loads(cli("report", "--month", "2026-02", "--tz", "UTC", "--json").stdout)
    assert after["totals"]["calls"] == report["totals"]["calls"] + 1
    assert Decimal(after["totals"]["cost"]) == Decimal(report["totals"]["cost"]) + Decimal(
        "0.000007"
    )
    assert after["totals"]["input_tokens"] == report["totals"]["input_tokens"] + 11


def test_prune_of_a_missing_ledger_creates_nothing(cli, home, monkeypatch):
    monkeypatch.setenv("TOKENCLI_NOW", PRUNE_NOW)
    result = cli("ledger", "prune", "--older-than", "30d", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["deleted"] == 0
    assert not (home / "ledger.db").exists()


@pytest.mark.parametrize(
    "value", ["0d", "5x", "1.5mo", "-3d", "", "mo", "10", "3 months", "6m", "12h", "30min"]
)
def test_bad_older_than_exits_2(cli, pruneable, home, value):
    before = len(ids(home / "ledger.db"))
    result = cli("ledger", "prune", "--older-than", value, "--yes")
    assert result.exit_code == 2, result.stderr
    assert "--older-than" in one_sentence(result)
    assert len(ids(home / "ledger.db")) == before


@pytest.mark.parametrize(
    "text, now, cutoff",
    [
        ("1mo", "2026-03-31T15:00:00+00:00", "2026-02-28"),
        (" 1MO ", "2024-03-31T15:00:00+00:00", "2024-02-29"),
        ("12mo", "2026-03-31T15:00:00+00:00", "2025-03-31"),
        ("13mo", "2026-01-15T00:00:00+00:00", "2024-12-15"),
        ("1y", "2024-02-29T12:00:00+00:00", "2023-02-28"),
        ("2y", "2026-06-15T12:00:00+00:00", "2024-06-15"),
        ("26w", "2026-06-15T12:00:00+00:00", "2025-12-15"),
        ("180d", "2026-06-15T23:59:59+00:00", "2025-12-17"),
        ("1d", "2026-03-01T00:00:00+00:00", "2026-02-28"),
        # 01:00 on April 1 in UTC+2 is still March 31 in UTC.
        ("1d", "2026-04-01T01:00:00+02:00", "2026-03-30"),
    ],
)
def test_retention_cutoff_is_a_utc_midnight(text, now, cutoff):
    got = retention_cutoff(text, datetime.fromisoformat(now))
    assert got == datetime.fromisoformat(cutoff).replace(tzinfo=UTC)
    assert got.utcoffset() == timedelta(0)


def test_retention_cutoff_refuses_what_is_not_a_length():
    for text in ("0mo", "1h", "y", "1 week", "1m", "99999999999d", "1000000y"):
        with pytest.raises(UsageError, match="--older-than"):
            retention_cutoff(text, datetime(2026, 1, 1, tzinfo=UTC))


# ------------------------------------------------------------------ 7. exact money


def test_a_thousand_micro_dollar_calls_sum_exactly_after_a_round_trip(cli, tmp_path, monkeypatch):
    source, dest = tmp_path / "source.db", tmp_path / "dest.db"
    start = datetime(2026, 5, 1, tzinfo=UTC)
    calls = [
        call(
            f"01JM{i:022d}",
            format_ts(start + timedelta(minutes=37 * i)),
            usage=Usage(input_tokens=1, output_tokens=1),
            cost=Decimal("0.000001"),
            currency="USD",
        )
        for i in range(1000)
    ]
    make_ledger(source, calls, via="import")
    exported = cli("--db", str(source), "ledger", "export")
    assert exported.exit_code == 0, exported.stderr
    assert {json.loads(line)["cost"] for line in jsonl_lines(exported.stdout)} == {"0.000001"}
    imported = cli("--db", str(dest), "ledger", "import", "-", "--json", input=exported.stdout)
    assert json.loads(imported.stdout)["inserted"] == 1000

    thousandth = 10**9  # $0.001 in picos
    assert query(dest, "SELECT sum(cost_pico) FROM calls") == [(thousandth,)]
    for table in ROLLUP_TABLES:
        assert query(dest, f"SELECT sum(cost_pico) FROM {table}") == [(thousandth,)], table
    monkeypatch.setenv("TOKENCLI_NOW", "2026-06-01T00:00:00Z")
    metrics = cli("--db", str(dest), "ledger", "export", "--format", "prometheus").stdout
    assert 'tokencli_cost_total{provider="openai",model="gpt-4o-mini",currency="USD"} 0.001\n' in (
        metrics
    )
    report = cli("--db", str(dest), "report", "--since", "2026-05-01", "--tz", "UTC", "--json")
    assert Decimal(json.loads(report.stdout)["totals"]["cost"]) == Decimal("0.001")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_big_import_keeps_whole_chunks_and_resumes(
    home, tmp_path, tokencli_exe, sig
):
    """Ctrl-C or SIGTERM during a two-process import: exit 130, committed chunks stay
    (rollups in step), the reader process and its scratch file are gone, and importing
    again adds exactly the rest."""
    from tests.conftest import subprocess_env

    big = tmp_path / "big.jsonl"
    n = 120_000  # over 4 MiB: parsed in a second process
    with big.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(jsonl(record(i, input_tokens=i % 997, cost="0.000001", currency="USD")))
    assert big.stat().st_size > 4 << 20
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = subprocess_env(home, TMPDIR=str(scratch))
    db = home / "ledger.db"
    proc = subprocess.Popen(
        [*tokencli_exe, "ledger", "import", str(big)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first chunk is committed
        try:
            if db.exists() and query(db, "SELECT count(*) FROM calls")[0][0]:
                break
        except sqlite3.OperationalError:  # not migrated yet, or busy
            pass
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "before it stopped" in err
    kept = query(db, "SELECT count(*) FROM calls")[0][0]
    assert 0 < kept < n and kept % 20_000 == 0  # whole transactions only
    ledger = Ledger.open(db)
    assert ledger is not None
    assert_rollups_match_calls(ledger)
    ledger.close()
    assert list(scratch.iterdir()) == []

    again = subprocess.run(
        [*tokencli_exe, "ledger", "import", str(big), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        **IMPORTED,
        "inserted": n - kept,
        "skipped": kept,
        "pruned": 0,
    }
    assert query(db, "SELECT count(*), sum(cost_pico) FROM calls")[0] == (n, n * 1_000_000)
    assert list(scratch.iterdir()) == []


def test_one_call_is_one_call_in_every_summary(cli, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(jsonl(record(1)), "utf-8")
    dest = tmp_path / "dest.db"
    imported = cli("--db", str(dest), "ledger", "import", str(path))
    assert imported.exit_code == 0 and "imported 1 call from" in imported.stderr
    out = tmp_path / "again.jsonl"
    exported = cli("--db", str(dest), "ledger", "export", "-o", str(out))
    assert exported.exit_code == 0 and f"exported 1 call to {out}" in exported.stderr


def test_calls_already_here_are_counted_without_being_parsed(cli, varied, tmp_path, monkeypatch):
    """A second import of the same backup reads ids only; the counts stay exact."""
    from tokencli.ledger import file_formats as exports

    source, calls = varied
    n = sum(c.status != "pending" for c in calls)
    backup = tmp_path / "b.jsonl"
    assert cli("--db", str(source), "ledger", "export", "-o", str(backup)).exit_code == 0
    extra = jsonl(record(1))  # one call the source does not have
    backup.write_text(backup.read_text("utf-8") + extra, "utf-8")
    parsed: list[str] = []
    real = exports.decode_jsonl

    def counting(line: str) -> list:
        parsed.append(line)
        return real(line)

    monkeypatch.setattr(exports, "decode_jsonl", counting)
    result = cli("--db", str(source), "ledger", "import", str(backup), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {**IMPORTED, "inserted": 1, "skipped": n, "pruned": 0}
    assert parsed == [extra]
