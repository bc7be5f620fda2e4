"""A hostile loopback server: what a provider (or whatever answers in its place) sends is
never trusted. Absurd waits and counts, a trickle, an endless stream, a gzip bomb, deep
nesting and an ignored stream flag, for each wire protocol.

Each scenario asserts the exit code, the sentence on stderr and the ledger row.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import ledger_rows, provider_config, write_config
from tests.fakes import (
    Pause,
    Reply,
    anthropic_events,
    anthropic_message,
    gemini_response,
    json_reply,
    openai_chunks,
    openai_completion,
    sse,
    sse_reply,
)
from tokencli.calls.usage import MAX_COST, MAX_COUNT, check_cost, check_usage, provider_text
from tokencli.errors import ProviderError
from tokencli.providers import anthropic, gemini, http, ollama, openai

# ------------------------------------------------------------------ the protocols


def _openai_whole(text: str, usage: dict[str, Any]) -> Any:
    return openai_completion(
        text, {"prompt_tokens": usage["in"], "completion_tokens": usage["out"]}
    )


def _openai_stream(pieces: list[str], usage: dict[str, Any]) -> Reply:
    u = {"prompt_tokens": usage["in"], "completion_tokens": usage["out"]}
    return sse_reply(sse(openai_chunks(pieces, u)))


def _openai_piece(text: str) -> bytes:
    chunk = openai_chunks([text], None)[1]
    return f"data: {json.dumps(chunk)}\n\n".encode()


def _anthropic_whole(text: str, usage: dict[str, Any]) -> Any:
    return anthropic_message(text, {"input_tokens": usage["in"], "output_tokens": usage["out"]})


def _anthropic_stream(pieces: list[str], usage: dict[str, Any]) -> Reply:
    events = anthropic_events(pieces, input_tokens=0, output_tokens=0)
    events[0][1]["message"]["usage"] = {"input_tokens": usage["in"], "output_tokens": 1}
    for _name, data in events:
        if data["type"] == "message_delta":
            data["usage"] = {"output_tokens": usage["out"]}
    return sse_reply(sse(events, named=True, done=False))


def _anthropic_piece(text: str) -> bytes:
    data = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return f"event: content_block_delta\ndata: {json.dumps(data)}\n\n".encode()


def _gemini_usage(usage: dict[str, Any]) -> dict[str, Any]:
    return {"promptTokenCount": usage["in"], "candidatesTokenCount": usage["out"]}


def _gemini_whole(text: str, usage: dict[str, Any]) -> Any:
    return gemini_response(text, _gemini_usage(usage))


def _gemini_stream(pieces: list[str], usage: dict[str, Any]) -> Reply:
    chunks = [gemini_response(p, None, finish=None) for p in pieces[:-1]]
    chunks.append(gemini_response(pieces[-1], _gemini_usage(usage)))
    return sse_reply(sse(chunks, done=False))


def _gemini_piece(text: str) -> bytes:
    return f"data: {json.dumps(gemini_response(text, None, finish=None))}\n\n".encode()


def _ollama_line(text: str, done: bool = False, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": "llama3.2",
        "created_at": "2025-10-01T12:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": done,
    }
    if done:
        data.update(done_reason="stop", **extra)
    return data


def _ollama_whole(text: str, usage: dict[str, Any]) -> Any:
    return _ollama_line(text, True, prompt_eval_count=usage["in"], eval_count=usage["out"])


def _ollama_stream(pieces: list[str], usage: dict[str, Any]) -> Reply:
    lines = [_ollama_line(p) for p in pieces]
    lines.append(_ollama_line("", True, prompt_eval_count=usage["in"], eval_count=usage["out"]))
    chunks: list[Any] = [json.dumps(line).encode() + b"\n" for line in lines]
    return Reply(200, {"content-type": "application/x-ndjson"}, chunks=chunks)


def _ollama_piece(text: str) -> bytes:
    return json.dumps(_ollama_line(text)).encode() + b"\n"


@dataclass(frozen=True)
class Wire:
    type: str
    path: str  # what the base_url adds to the server's root
    model: str
    whole: Callable[[str, dict[str, Any]], Any]
    stream: Callable[[list[str], dict[str, Any]], Reply]
    piece: Callable[[str], bytes]
    stream_type: str = "text/event-stream"

    def __str__(self) -> str:
        return self.type


WIRES = [
    Wire("openai", "/v1", "gpt-4o-mini", _openai_whole, _openai_stream, _openai_piece),
    Wire(
        "anthropic", "", "claude-sonnet-4-5", _anthropic_whole, _anthropic_stream, _anthropic_piece
    ),
    Wire("gemini", "/v1beta", "gemini-2.5-flash", _gemini_whole, _gemini_stream, _gemini_piece),
    Wire(
        "ollama",
        "",
        "llama3.2",
        _ollama_whole,
        _ollama_stream,
        _ollama_piece,
        "application/x-ndjson",
    ),
]
wires = pytest.mark.parametrize("wire", WIRES, ids=str)


def use(home, server, wire: Wire, extra: str = "", **fields: object) -> str:
    """Point provider `fake` at the server, speaking `wire`; return the model to run."""
    fields.setdefault("retry_backoff", 0.01)
    write_config(home, provider_config("fake", wire.type, server.url + wire.path, **fields) + extra)
    return f"fake:{wire.model}"


def only_row(home) -> Any:
    rows = ledger_rows(
        home, "SELECT * FROM calls LEFT JOIN call_texts ON call_texts.call_id = calls.id"
    )
    assert len(rows) == 1, [dict(r) for r in rows]
    return rows[0]


def holds(home) -> dict[str, float]:
    """Seconds from now each shared rate-limit hold lasts."""
    now = time.time()
    return {r["key"]: r["tat"] - now for r in ledger_rows(home, "SELECT * FROM rate_limits")}


# --------------------------------------------- class 2: values a provider sends


RATE_LIMITED = {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}


@pytest.mark.parametrize("header", [{"retry-after": "99999999999"}, {"retry-after-ms": "1e300"}])
def test_a_retry_after_of_years_holds_later_calls_for_retry_max_wait_at_most(
    cli, home, server, header
):
    model = use(home, server, WIRES[0])
    server.queue(json_reply(RATE_LIMITED, 429, header))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 5
    assert "more than retry_max_wait (60 s); run again later." in r.stderr
    assert "holding it for 60 s at most (retry_max_wait)." in r.stderr
    (held,) = holds(home).values()
    assert 0 < held <= 60
    assert only_row(home)["error_kind"] == "rate_limit"


@pytest.mark.parametrize(
    "value", ["inf", "nan", "-5", "Sat, 01 Jan 10000 00:00:00 GMT", "soon", "1" * 400]
)
def test_a_retry_after_that_is_not_a_wait_is_ignored(cli, home, server, value):
    """Not a finite wait: the usual backoff, and nothing held."""
    model = use(home, server, WIRES[0])
    server.queue(json_reply(RATE_LIMITED, 429, {"retry-after": value}))
    server.queue(json_reply(_openai_whole("fine", {"in": 3, "out": 1})))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "fine\n"
    assert holds(home) == {}


def test_a_rate_limit_reset_of_years_is_bounded(cli, home, server):
    model = use(home, server, WIRES[0], retry_max_wait=5)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "99999999h"}
    server.queue(json_reply(_openai_whole("fine", {"in": 3, "out": 1}), headers=headers))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert "fake asked to hold back gpt-4o-mini for 359999996400 s; holding it for 5 s" in r.stderr
    (held,) = holds(home).values()
    assert 0 < held <= 5


@wires
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("count", [10**30, 10**19, 1e30], ids=["1e30", "int64+", "float"])
def test_an_impossible_token_count_is_refused_and_estimated(cli, home, server, wire, stream, count):
    model = use(home, server, wire)
    usage = {"in": 7, "out": count}
    pieces = ["four ", "words ", "of ", "text"]
    server.queue(
        wire.stream(pieces, usage) if stream else json_reply(wire.whole("".join(pieces), usage))
    )
    r = cli("run", "-m", model, *([] if stream else ["--no-stream"]), "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "four words of text\n"
    assert (
        "fake reported an impossible token count (output_tokens above a billion); "
        "its usage is estimated instead." in r.stderr
    )
    row = only_row(home)
    assert row["status"] == "ok" and row["usage_source"] == "estimated"
    assert 0 < row["output_tokens"] < 100 and 0 < row["input_tokens"] < 100


@wires
@pytest.mark.parametrize("count", [-5, "abc", 2.5, [], {"n": 1}, True, "12"])
def test_a_token_count_that_is_no_count_is_refused_and_estimated(cli, home, server, wire, count):
    model = use(home, server, wire)
    server.queue(json_reply(wire.whole("hello", {"in": 7, "out": count})))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "hello\n"
    # Never made 0 in silence: one note, and the usage marked as estimated.
    assert r.stderr.count("fake reported an impossible token count (output_tokens below 0") == 1
    row = only_row(home)
    assert row["status"] == "ok" and row["usage_source"] == "estimated"
    assert 0 < row["input_tokens"] < 100 and 0 < row["output_tokens"] < 100


@wires
def test_a_null_token_count_is_absent_not_impossible(cli, home, server, wire):
    model = use(home, server, wire)
    server.queue(json_reply(wire.whole("hello", {"in": 7, "out": None})))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert "impossible" not in r.stderr
    row = only_row(home)
    assert row["status"] == "ok" and row["usage_source"] == "reported"
    assert (row["input_tokens"], row["output_tokens"]) == (7, 0)


@pytest.mark.parametrize(
    ("cost", "said"),
    [("1e30", "absurd"), ("-3.5", "negative"), ("1e999999", "absurd")],
)
def test_a_reported_cost_that_cannot_be_is_priced_from_the_list(cli, home, server, cost, said):
    model = use(home, server, WIRES[0], prices_from="openai")
    body = json.dumps(_openai_whole("fine", {"in": 1000, "out": 10}))
    body = body.replace('"completion_tokens": 10', f'"completion_tokens": 10, "cost": {cost}')
    server.queue(Reply(200, {}, body.encode()))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert (
        f"fake reported a cost that is {said}; it is priced from the price list instead."
        in r.stderr
    )
    row = only_row(home)
    assert row["price_source"] != "fake (reported)"
    assert row["cost_pico"] is not None and row["cost_pico"] > 0


@wires
def test_request_ids_and_model_names_are_stored_bounded_and_without_control_characters(
    cli, home, server, wire
):
    model = use(home, server, wire)
    data = wire.whole("hi", {"in": 2, "out": 1})
    evil = "m\x1b]8;;http://x\x07odel\n" + "x" * 5000
    for key in ("model", "modelVersion", "id", "responseId"):
        if key in data:
            data[key] = evil
    headers = {"x-request-id": "req\x1b[2J" + "r" * 3000, "request-id": "req\x1b[2J" + "r" * 3000}
    server.queue(json_reply(data, headers=headers))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    row = only_row(home)
    for value in (row["response_model"], row["request_id"]):
        if value is not None:
            assert len(value) <= 200
            assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value)
    assert row["response_model"].startswith("m]8;;http://xodel")


# Any JSON value a provider could put where a count belongs (numbers decode as Decimal).
JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.text(max_size=8),
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
USAGE_KEYS = [
    "prompt_tokens",
    "completion_tokens",
    "prompt_cache_hit_tokens",
    "prompt_cache_miss_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
    "promptTokenCount",
    "toolUsePromptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "prompt_eval_count",
    "eval_count",
    "prompt_tokens_details",
    "completion_tokens_details",
    "output_tokens_details",
    "cost",
    "is_byok",
    "cost_details",
]
HOSTILE_USAGE = st.dictionaries(st.sampled_from(USAGE_KEYS), JSON_VALUE, max_size=8)
# The keys each parser reads whatever else is there.
ALWAYS_READ = {
    "openai": ("prompt_tokens", "completion_tokens"),
    "anthropic": USAGE_KEYS[
        USAGE_KEYS.index("input_tokens") : USAGE_KEYS.index("promptTokenCount")
    ],
    "gemini": USAGE_KEYS[
        USAGE_KEYS.index("promptTokenCount") : USAGE_KEYS.index("prompt_eval_count")
    ],
    "ollama": ("prompt_eval_count", "eval_count"),
}
PARSERS = {
    "openai": openai.parse_usage,
    "anthropic": lambda u: anthropic.parse_usage(u, anthropic.parse_usage(u)),
    "gemini": gemini.parse_usage,
    "ollama": ollama.parse_usage,
}


@pytest.mark.parametrize("name", PARSERS)
@settings(deadline=None, max_examples=150)
@given(usage=HOSTILE_USAGE)
def test_usage_parsers_with_checking_never_store_a_count_that_cannot_be(name, usage):
    parsed = PARSERS[name](usage)
    if name == "openai":
        openai.reported_cost(usage)  # never raises either
    checked, note = check_usage(parsed)
    if checked is None:
        assert note and "impossible token count" in note
    else:
        assert all(0 <= n <= MAX_COUNT for n in astuple(checked) if isinstance(n, int))
    # A value no count can be (negative, fractional, a string, true) where a count is
    # always read is never made 0 in silence: the whole usage is refused.
    sent = [usage[k] for k in ALWAYS_READ[name] if usage.get(k) is not None]
    if any(_no_count(v) for v in sent):
        assert checked is None


def _no_count(value: Any) -> bool:
    """Negative, fractional, not finite, or not a number at all."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return True
    if isinstance(value, int):
        return value < 0
    if isinstance(value, float):
        return not value.is_integer() or value < 0
    return not value.is_finite() or value != value.to_integral_value() or value < 0


@settings(deadline=None)
@given(st.one_of(st.none(), st.decimals(allow_nan=True, allow_infinity=True)))
def test_a_checked_cost_is_none_or_a_sane_amount(cost):
    checked, note = check_cost(cost)
    assert checked is None or 0 <= checked <= MAX_COST
    assert (note is None) == (checked is not None or cost is None)


@settings(deadline=None)
@given(JSON_VALUE)
def test_provider_text_is_short_clean_text_or_none(value):
    text = provider_text(value)
    assert text is None or (
        0 < len(text) <= 200 and not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)
    )


# ------------------------------------------------- class 3: every call is bounded


def _trickle(first: bytes, seconds: float = 0.15, count: int = 40) -> list[Any]:
    """`first`, then one byte at a time, `seconds` apart: never a read timeout."""
    out: list[Any] = [first]
    for _ in range(count):
        out += [Pause(seconds), b" "]
    return out


@wires
def test_a_trickling_stream_ends_at_call_timeout_with_what_came(cli, home, server, wire):
    model = use(home, server, wire, extra="[defaults]\ncall_timeout = 0.6\n")
    server.queue(
        Reply(200, {"content-type": wire.stream_type}, chunks=_trickle(wire.piece("Hello there")))
    )
    started = time.monotonic()
    r = cli("run", "-m", model, "q")
    assert time.monotonic() - started < 3
    assert r.exit_code == 5
    assert r.stdout == "Hello there\n"
    assert "fake did not finish within call_timeout (0.6 s)." in r.stderr
    row = only_row(home)
    assert (row["status"], row["error_kind"]) == ("error", "timeout")
    assert row["response_text"] == "Hello there"
    assert row["output_tokens"] > 0 and row["usage_source"] == "estimated"


def test_a_trickling_whole_answer_ends_at_the_provider_call_timeout(cli, home, server):
    model = use(home, server, WIRES[0], call_timeout=0.5)
    body = json.dumps(_openai_whole("fine", {"in": 1, "out": 1})).encode()
    server.queue(Reply(200, {}, chunks=_trickle(body[:10])))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 5
    assert "fake did not finish within call_timeout (0.5 s)." in r.stderr
    assert len(server.requests) == 1  # not retried: it would take as long again
    assert only_row(home)["error_kind"] == "timeout"


@pytest.mark.parametrize(
    ("table", "value", "said"),
    [
        ("defaults", "0", "must be more than 0 and at most 86400 seconds"),
        ("defaults", "100000", "must be more than 0 and at most 86400 seconds"),
        ("defaults", "-1", "must be a number ≥ 0, not -1"),
        ("providers.openai", "0", "must be more than 0 and at most 86400 seconds"),
    ],
)
def test_call_timeout_must_be_a_sane_number_of_seconds(cli, home, table, value, said):
    write_config(home, f"[{table}]\ncall_timeout = {value}\n")
    r = cli("run", "-m", "mock:echo", "q")
    assert r.exit_code == 6
    assert f"{table}.call_timeout {said}" in r.stderr


def _endless(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


@wires
def test_an_endless_stream_is_stopped_far_past_max_tokens(cli, home, server, wire):
    model = use(home, server, wire)
    server.queue(
        Reply(200, {"content-type": wire.stream_type}, chunks=_endless(wire.piece("lorem ipsum ")))
    )
    r = cli("run", "-m", model, "--max-tokens", "10", "q")
    assert r.exit_code == 5
    assert r.stdout.startswith("lorem ipsum lorem ipsum")
    assert "fake kept sending far past the 10 tokens asked for (about 1" in r.stderr
    assert "tokencli stopped reading." in r.stderr
    row = only_row(home)
    assert (row["status"], row["error_kind"]) == ("error", "runaway")
    assert row["usage_source"] == "estimated"
    assert 1000 < row["output_tokens"] < 1100
    assert len(row["response_text"]) < 5000


_BOMB: list[bytes] = []


def bomb() -> bytes:
    """16 MiB of zeros, gzipped: 16 KiB on the wire."""
    if not _BOMB:
        _BOMB.append(gzip.compress(b"0" * 16 * 2**20, compresslevel=9))
    return _BOMB[0]


@wires
def test_a_gzip_bomb_is_refused_past_the_size_bound(cli, home, server, wire):
    model = use(home, server, wire)
    server.queue(Reply(200, {"content-encoding": "gzip"}, bomb()))
    r = cli("run", "-m", model, "--no-stream", "--max-tokens", "10", "q")
    assert r.exit_code == 5
    assert "fake sent an answer larger than 8 MiB." in r.stderr
    assert only_row(home)["error_kind"] == "bad_response"


@wires
def test_a_gzip_bomb_in_a_stream_is_a_line_too_long(cli, home, server, wire):
    model = use(home, server, wire)
    headers = {"content-type": wire.stream_type, "content-encoding": "gzip"}
    server.queue(Reply(200, headers, chunks=[bomb()]))
    r = cli("run", "-m", model, "q")
    assert r.exit_code == 5
    assert "fake sent a stream line longer than 8 MiB." in r.stderr
    assert only_row(home)["error_kind"] == "bad_response"


def test_a_gzipped_answer_that_is_not_gzip_is_a_bad_response(cli, home, server):
    model = use(home, server, WIRES[0])
    server.queue(Reply(200, {"content-encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage" * 10))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 5
    assert "fake sent a compressed answer that does not decompress." in r.stderr


def test_a_gzipped_answer_within_bounds_is_read(cli, home, server):
    model = use(home, server, WIRES[0])
    body = gzip.compress(json.dumps(_openai_whole("zipped", {"in": 3, "out": 1})).encode())
    server.queue(Reply(200, {"content-encoding": "gzip"}, body))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "zipped\n"


DEEP = b"[" * 100_000 + b"]" * 100_000


@wires
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_json_nested_100000_deep_is_a_bad_response(cli, home, server, wire, stream):
    model = use(home, server, wire)
    if stream:
        line = DEEP + b"\n" if wire.type == "ollama" else b"data: " + DEEP + b"\n\n"
        server.queue(Reply(200, {"content-type": wire.stream_type}, chunks=[line]))
    else:
        server.queue(Reply(200, {}, DEEP))
    r = cli("run", "-m", model, *([] if stream else ["--no-stream"]), "q")
    assert r.exit_code == 5, r.stderr
    assert "Internal error" not in r.stderr and "sent " in r.stderr
    assert only_row(home)["error_kind"] == "bad_response"


@wires
def test_an_answer_of_the_wrong_shape_is_a_bad_response_not_a_bug(cli, home, server, wire):
    model = use(home, server, wire)
    shapes = {
        "openai": {"choices": [{"message": [1, 2], "finish_reason": {"a": 1}}]},
        "anthropic": {
            "content": [{"type": "text", "text": "x"}],
            "usage": [],
            "stop_reason": {"a": 1},
        },
        "gemini": {"candidates": [{"content": [1]}]},
        "ollama": {"message": "text", "done": True, "done_reason": ["x"]},
    }
    server.queue(json_reply(shapes[wire.type]))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 5, r.stderr
    assert "fake sent an answer tokencli cannot read" in r.stderr
    assert only_row(home)["error_kind"] == "bad_response"


def test_an_error_body_is_read_only_in_part(cli, home, server):
    model = use(home, server, WIRES[0], max_retries=0)
    body = b'{"error": {"message": "' + b"x" * (4 * 2**20) + b'"}}'
    server.queue(Reply(400, {}, body))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 4
    assert "fake answered 400" in r.stderr


def test_mock_lorem_with_an_absurd_max_tokens_stays_bounded(cli, home, monkeypatch):
    from tokencli.providers import mock

    monkeypatch.setattr(mock, "MAX_LOREM_WORDS", 300)
    r = cli("run", "-m", "mock:lorem", "--max-tokens", "100000000", "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.split()) == 300


# The SSE decoder and the line splitter take any bytes a server sends.
LINES = st.lists(
    st.one_of(
        st.sampled_from(["", ":", "data: [DONE]", "event: x", 'data: {"a":', "data: 1}", "}", "{"]),
        st.text(max_size=30),
    ),
    max_size=40,
)


@settings(deadline=None, max_examples=300)
@given(LINES)
def test_the_sse_decoder_raises_only_provider_errors(lines):
    try:
        events = list(http.iter_sse(iter(lines), max_event=64, provider="fake"))
    except ProviderError as exc:
        assert "larger than" in exc.message
        return
    assert all(isinstance(e.data, str) and len(e.data) <= 64 for e in events)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=40), max_size=10))
@example(b"\r", [])  # a lone CR ending the stream still ends an empty line
@example(b"\r\xe4", [])  # and before an unfinished character
def test_lines_come_out_whole_however_the_bytes_are_cut(data, cuts):
    chunks, rest = [], data
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    text = data.decode("utf-8", "replace")
    expected = [line for line in re.split(r"\r\n|\r|\n", text)]
    got = list(http.iter_lines(iter(chunks), "fake", None, max_line=10_000))
    # Lines inside the text are kept even when empty; a trailing empty piece is not a line.
    assert got == [line for i, line in enumerate(expected) if line or i < len(expected) - 1]


@settings(deadline=None, max_examples=100)
@given(st.binary(max_size=300))
def test_a_long_line_is_an_error_not_a_memory_error(data):
    try:
        lines = list(http.iter_lines(iter([data]), "fake", None, max_line=20))
    except ProviderError as exc:
        assert "stream line longer than" in exc.message
    else:
        assert all(len(line) <= 40 for line in lines)


# ------------------------------- class 4: a server that ignores `stream: true`


@wires
def test_a_whole_answer_to_a_stream_request_is_printed_and_recorded(cli, home, server, wire):
    model = use(home, server, wire)
    body = json.dumps(wire.whole("the whole answer", {"in": 5, "out": 4}), indent=2)
    server.queue(Reply(200, {"content-type": "application/json; charset=utf-8"}, body.encode()))
    r = cli("run", "-m", model, "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "the whole answer\n"
    sent = server.requests[0]
    assert sent.json["stream"] is True if wire.type != "gemini" else "alt=sse" in sent.path
    row = only_row(home)
    assert row["status"] == "ok" and row["response_text"] == "the whole answer"
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (5, 4, "reported")


def test_gemini_chunks_in_one_json_array_are_the_stream(cli, home, server):
    """streamGenerateContent without alt=sse answers a JSON array of chunks."""
    model = use(home, server, WIRES[2])
    chunks = [
        gemini_response("one ", None, finish=None),
        gemini_response("two", {"promptTokenCount": 3, "candidatesTokenCount": 2}),
    ]
    server.queue(json_reply(chunks))
    r = cli("run", "-m", model, "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "one two\n"
    row = only_row(home)
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (3, 2, "reported")


@wires
def test_a_stream_labelled_application_json_is_still_read_as_a_stream(cli, home, server, wire):
    model = use(home, server, wire)
    reply = wire.stream(["a ", "stream"], {"in": 3, "out": 2})
    reply.headers["content-type"] = "application/json"
    server.queue(reply)
    r = cli("run", "-m", model, "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "a stream\n"
    assert only_row(home)["output_tokens"] == 2


@wires
def test_an_error_in_place_of_a_stream_is_the_providers_error(cli, home, server, wire):
    model = use(home, server, wire, max_retries=0)
    errors = {
        "openai": {"error": {"message": "The model is overloaded", "type": "server_error"}},
        "anthropic": {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
        },
        "gemini": {
            "error": {"code": 503, "message": "The model is overloaded", "status": "UNAVAILABLE"}
        },
        "ollama": {"error": "an error was encountered while running the model"},
    }
    server.queue(json_reply(errors[wire.type]))
    r = cli("run", "-m", model, "q")
    assert r.exit_code == 5, r.stderr
    assert "fake reported an error" in r.stderr
    assert only_row(home)["status"] == "error"


# ------------------------------------------- class 3: the same bounds for files


def test_a_batch_line_nested_100000_deep_is_a_usage_error(cli, home, tmp_path):
    prompts = tmp_path / "deep.jsonl"
    prompts.write_bytes(b'{"prompt": ' + DEEP + b"}\n")
    r = cli("batch", str(prompts), "-m", "mock:echo")
    assert r.exit_code == 2
    assert "Line 1 is JSON nested too deeply." in r.stderr


def test_an_endless_batch_input_is_refused_at_its_bound(cli, home, monkeypatch):
    from tokencli.cli import batch_cmd

    monkeypatch.setattr(batch_cmd, "MAX_BATCH_BYTES", 2**20)
    r = cli("batch", "/dev/zero", "-m", "mock:echo")
    assert r.exit_code == 2
    assert "/dev/zero is larger than 1 MiB. Split the prompts into smaller files." in r.stderr


def test_an_import_line_nested_100000_deep_is_refused(cli, home, tmp_path):
    dump = tmp_path / "deep.jsonl"
    dump.write_bytes(DEEP + b"\n")
    r = cli("ledger", "import", str(dump))
    assert r.exit_code == 2
    assert "line 1 is JSON nested too deeply to be a call." in r.stderr


def test_an_import_decompression_bomb_is_refused_line_by_line(cli, home, tmp_path, monkeypatch):
    from tokencli.ledger import exchange

    monkeypatch.setattr(exchange, "MAX_IMPORT_LINE", 2**20)
    dump = tmp_path / "bomb.jsonl.gz"
    dump.write_bytes(bomb())
    r = cli("ledger", "import", str(dump))
    assert r.exit_code == 2
    assert "bomb.jsonl.gz line 1 is longer than 1 MiB." in r.stderr
    assert ledger_rows(home) == []


def test_a_config_that_never_ends_is_refused(cli, home):
    r = cli("--config", "/dev/zero", "logs")
    assert r.exit_code == 6
    assert "Config /dev/zero is larger than 4 MiB." in r.stderr


def test_a_config_nested_100000_deep_is_refused(cli, home):
    write_config(home, "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    r = cli("logs")
    assert r.exit_code == 6
    assert "nests arrays or tables too deeply." in r.stderr


def test_a_hold_of_years_stored_by_an_older_version_is_waited_for_retry_max_wait_at_most(
    cli, home, server
):
    model = use(home, server, WIRES[0], retry_max_wait=0.2)
    server.queue(json_reply(_openai_whole("first", {"in": 1, "out": 1})))
    assert cli("run", "-m", model, "--no-stream", "q").exit_code == 0
    key = "fake\x1fgpt-4o-mini\x1frequests"
    conn = sqlite3.connect(home / "ledger.db")
    with conn:
        conn.execute("INSERT INTO rate_limits (key, tat) VALUES (?, ?)", (key, time.time() + 1e9))
    conn.close()
    server.queue(json_reply(_openai_whole("second", {"in": 1, "out": 1})))
    started = time.monotonic()
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "second\n"
    assert "waiting 0.2 s for fake:gpt-4o-mini's rate limit." in r.stderr
    assert time.monotonic() - started < 3


class TrickledHeaders:
    """A server that answers with its status line and headers one byte at a time."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.sock.accept()
            with conn:
                conn.recv(65536)
                for byte in (
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-slow: " + b"x" * 60
                ):
                    conn.sendall(bytes([byte]))
                    time.sleep(0.1)

    def close(self) -> None:
        self.sock.close()


def test_trickled_headers_end_at_call_timeout_too(cli, home):
    slow = TrickledHeaders()
    try:
        write_config(home, provider_config("fake", "openai", slow.url + "/v1", call_timeout=0.5))
        started = time.monotonic()
        r = cli("run", "-m", "fake:gpt-4o-mini", "q")
        assert time.monotonic() - started < 3
    finally:
        slow.close()
    assert r.exit_code == 5
    assert "fake did not finish within call_timeout (0.5 s)." in r.stderr
    assert only_row(home)["error_kind"] == "timeout"


def test_an_encoding_that_was_not_asked_for_is_refused(cli, home, server):
    model = use(home, server, WIRES[0])
    server.queue(Reply(200, {"content-encoding": "br"}, b"\x8b\x02\x80hello\x03"))
    r = cli("run", "-m", model, "--no-stream", "q")
    assert r.exit_code == 5
    assert "fake sent an answer in an encoding it was not asked for (br)." in r.stderr
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_a_gzip_bomb_is_decoded_in_small_pieces():
    """Past the limit nothing more is decoded: memory stays near the limit, not 16 MiB."""
    response = httpx.Response(
        200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(bomb())
    )
    tracemalloc.start()
    try:
        got = 0
        with pytest.raises(ProviderError, match="larger than 1 MiB"):
            for piece in http.iter_body(response, None, None, 2**20, "fake"):
                got += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got <= 2**20
    assert peak < 2 * 2**20


# Any JSON document at all, in place of an answer or a stream event.
ANY_JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "choices", "message", "delta", "content", "finish_reason", "usage", "type",
                "model", "id", "error", "candidates", "parts", "text", "finishReason",
                "usageMetadata", "done", "done_reason", "stop_reason", "promptFeedback",
                "blockReason", "index", "thought", "object", "eval_count", "total_duration",
            ]
        ),
        inner,
        max_size=5,
    ),
    max_leaves=12,
)  # fmt: skip


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, Any]]:
    from tokencli.providers.anthropic import AnthropicProvider
    from tokencli.providers.gemini import GeminiProvider
    from tokencli.providers.ollama import OllamaProvider
    from tokencli.providers.openai import OpenAIProvider
    from tokencli.providers.registry import ProviderConfig

    built = {
        type_: cls(ProviderConfig("fake", type_, "http://127.0.0.1:9"), "k" * 20)
        for type_, cls in (
            ("openai", OpenAIProvider),
            ("anthropic", AnthropicProvider),
            ("gemini", GeminiProvider),
            ("ollama", OllamaProvider),
        )
    }
    yield built
    for provider in built.values():
        provider.close()


@pytest.mark.parametrize("type_", ["openai", "anthropic", "gemini", "ollama"])
@settings(deadline=None, max_examples=200)
@given(data=ANY_JSON)
def test_protocol_parsers_raise_only_provider_errors_whatever_json_comes(providers, type_, data):
    from tokencli.providers.http_base import StreamState

    provider = providers[type_]
    for events in (
        lambda: provider.parse_whole(data, None),
        lambda: provider.parse_event(None, data, StreamState(), None),
    ):
        try:
            list(provider._guarded(events(), None))
        except ProviderError:
            pass


@pytest.mark.parametrize("type_", ["anthropic", "gemini"])
def test_a_count_request_with_trickled_headers_ends_at_call_timeout(type_):
    # The count endpoints (`compare --exact`) are under the call's overall deadline too.
    from dataclasses import replace

    from tokencli.providers.base import ChatRequest, Message
    from tokencli.providers.registry import PRESETS, provider_type

    preset = next(p for p in PRESETS.values() if p.type == type_)
    slow = TrickledHeaders()
    config = replace(preset, name="fake", base_url=slow.url, call_timeout=0.5, read_timeout=5)
    provider = provider_type(type_).load()(config, "k")
    request = ChatRequest("m", (Message("user", "How many tokens?"),))
    started = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            provider.count_tokens(request)
    finally:
        provider.close()
        slow.close()
    assert time.monotonic() - started < 3  # not 100 header bytes x 0.1 s
    assert caught.value.kind == "timeout" and caught.value.exit_code == 5
    assert caught.value.message == "fake did not finish within call_timeout (0.5 s)."
    assert caught.value.hint == (
        "Raise call_timeout for this provider (or in [defaults]) if it is only slow."
    )


@pytest.mark.parametrize("type_", ["anthropic", "gemini"])
@pytest.mark.parametrize("count", [-5, "abc", 2.5, True, 10**30, None])
def test_a_count_endpoint_answer_that_is_no_count_is_a_bad_response(server, type_, count):
    from dataclasses import replace

    from tokencli.providers.base import ChatRequest, Message
    from tokencli.providers.registry import PRESETS, provider_type

    preset = next(p for p in PRESETS.values() if p.type == type_)
    key = "input_tokens" if type_ == "anthropic" else "totalTokens"
    server.queue(json_reply({key: count}), json_reply({key: 12.0}))
    provider = provider_type(type_).load()(replace(preset, name="fake", base_url=server.url), "k")
    request = ChatRequest("m", (Message("user", "How many tokens?"),))
    try:
        with pytest.raises(ProviderError) as caught:
            provider.count_tokens(request)
        assert caught.value.kind == "bad_response"
        assert caught.value.message == f"fake sent a count without {key}."
        assert provider.count_tokens(request).tokens == 12  # a whole float is a count
    finally:
        provider.close()
