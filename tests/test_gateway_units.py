"""The gateway's parsers and bookkeeping without a server: the SSE tap under any chunking,
per-client pacing, routing, and the requests it reads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import anthropic_events, openai_chunks, openai_usage, sse

pytest.importorskip("starlette")

from tokencli.gateway.clients import Pacer
from tokencli.gateway.relay import SSETap, Tally
from tokencli.providers.anthropic import AnthropicProvider
from tokencli.providers.openai import OpenAIProvider
from tokencli.providers.registry import PRESETS
from tokencli.settings.model import GatewayClient

# Built once: each holds an HTTP client it never uses here.
OPENAI = OpenAIProvider(PRESETS["openai"], "k")
ANTHROPIC = AnthropicProvider(PRESETS["anthropic"], "k")


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


OPENAI_EVENTS = [
    e
    for e in sse(openai_chunks(["Hé", "llo ", "世界"], openai_usage(7, 3)))
    if isinstance(e, bytes)
]
ANTHROPIC_EVENTS = [
    e
    for e in sse(
        anthropic_events(["a", "b"], input_tokens=5, output_tokens=2), named=True, done=False
    )
    if isinstance(e, bytes)
]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40), st.booleans())
def test_openai_stream_relayed_unchanged_under_any_chunking(cuts, crlf):
    events = [e.replace(b"\n", b"\r\n") if crlf else e for e in OPENAI_EVENTS]
    data = b"".join(events)
    tally = Tally()
    tap = SSETap(OPENAI, tally, "openai")
    out = b"".join(b"".join(tap.feed(piece)) for piece in split(data, cuts)) + tap.end()
    assert out == data
    assert tap.complete
    assert "".join(tally.parts) == "Héllo 世界"
    assert (tally.usage.input_tokens, tally.usage.output_tokens) == (7, 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_the_usage_chunk_asked_for_the_client_is_held_back_and_only_it(cuts):
    data = b"".join(OPENAI_EVENTS)
    tally = Tally()
    tap = SSETap(OPENAI, tally, "openai", hide_usage_chunk=True)
    out = b"".join(b"".join(tap.feed(piece)) for piece in split(data, cuts)) + tap.end()
    usage_event = next(e for e in OPENAI_EVENTS if b'"choices": []' in e)
    assert out == data.replace(usage_event, b"")
    assert tally.usage.output_tokens == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_anthropic_stream_under_any_chunking(cuts):
    data = b"".join(ANTHROPIC_EVENTS)
    tally = Tally()
    tap = SSETap(ANTHROPIC, tally, "anthropic")
    out = b"".join(b"".join(tap.feed(piece)) for piece in split(data, cuts)) + tap.end()
    assert out == data
    assert tap.complete and "".join(tally.parts) == "ab"
    assert (tally.usage.input_tokens, tally.usage.output_tokens) == (5, 2)


def test_a_cut_stream_is_not_complete_and_an_error_event_is_recorded():
    tally = Tally()
    tap = SSETap(OPENAI, tally, "openai")
    tap.feed(b"".join(OPENAI_EVENTS[:2]))
    assert not tap.complete
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    assert tap.feed(f"data: {json.dumps(error)}\n\n".encode())  # relayed as it came
    assert tally.failure is not None and "overloaded" in str(tally.failure)


def test_pacer_allows_a_minute_of_requests_then_says_how_long_to_wait():
    now = [0.0]
    pacer = Pacer(lambda: now[0])
    client = GatewayClient(name="bot", key_env="X", rpm=3)
    assert [pacer.admit(client, 10) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.admit(client, 10) == pytest.approx(20.0)
    now[0] = 20.0
    assert pacer.admit(client, 10) == 0.0


def test_pacer_tokens_per_minute_and_settling_with_what_was_used():
    now = [0.0]
    pacer = Pacer(lambda: now[0])
    client = GatewayClient(name="bot", key_env="X", tpm=1000)
    assert pacer.admit(client, 800) == 0.0
    assert pacer.admit(client, 800) > 0  # would pass 1,000 tokens in the minute
    pacer.settle(client, 800, 100)  # it used 100: the rest goes back
    assert pacer.admit(client, 800) == 0.0


def test_a_batch_commits_once_and_a_failed_write_is_undone_alone(tmp_path):
    from tokencli.ledger import Call, Ledger

    ledger = Ledger.open(tmp_path / "ledger.db")
    assert ledger is not None
    with ledger.batch():
        ledger.insert_call(Call(id="a", ts="2026-01-01T00:00:00.000Z", provider="p", model="m"))

        def refuse(_: Ledger) -> list:
            raise ValueError("refused inside the write")

        with pytest.raises(ValueError):
            ledger.insert_call(
                Call(id="b", ts="2026-01-01T00:00:00.000Z", provider="p", model="m"), admit=refuse
            )
        ledger.insert_call(Call(id="c", ts="2026-01-01T00:00:00.000Z", provider="p", model="m"))
    assert sorted(c.id for c in ledger.list_calls()) == ["a", "c"]
    ledger.close()


def test_upstream_pools_keep_a_client_on_one_pool_and_spread_many_clients():
    # httpcore's pool scans all its connections per request: many clients share
    # several small pools, and one client's requests reuse one pool (one connection).
    import asyncio

    from tokencli.gateway.relay import Upstreams
    from tokencli.providers.registry import ProviderConfig

    upstreams = Upstreams()
    config = ProviderConfig(name="openai", type="openai", base_url="http://127.0.0.1:9/v1")
    one = {id(upstreams.client(config, ("127.0.0.1", 50000))) for _ in range(10)}
    many = {id(upstreams.client(config, ("127.0.0.1", 50000 + port))) for port in range(64)}
    assert len(one) == 1
    assert len(many) == Upstreams.SHARDS > 1
    assert upstreams.client(config) is upstreams.client(config)
    asyncio.run(upstreams.aclose())
