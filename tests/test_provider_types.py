"""Provider types: what each can do (capability protocols), the HTTP skeleton they
share, and the settings each type declares."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from tests.conftest import write_config
from tests.test_boundaries import imported_modules
from tokencli.errors import ConfigError, ExitCode, ProviderError, ProviderUnavailable
from tokencli.providers.base import (
    ChatRequest,
    CountsTokens,
    Finished,
    ListsModels,
    Message,
    Provider,
    ReportsBalance,
    ResponseStarted,
    TextDelta,
    TokenTally,
    ValidatesRequests,
)
from tokencli.providers.http_base import HTTPProvider
from tokencli.providers.registry import (
    COMMON_FIELDS,
    PRESETS,
    PROTOCOLS,
    TYPE_FIELDS,
    TYPES,
    FieldSpec,
    ProviderConfig,
    ProviderType,
    fields_of,
    provider_type,
)

CAPABILITIES = (ValidatesRequests, CountsTokens, ReportsBalance, ListsModels)

# What each built-in type can do beyond generate/close.
EXPECTED = {
    "openai": set(),
    "anthropic": {CountsTokens},  # the free count_tokens endpoint
    "gemini": {CountsTokens},  # the free countTokens endpoint
    "ollama": set(),
    "mock": {ValidatesRequests, CountsTokens, ListsModels},
    "transformers": {ValidatesRequests, CountsTokens},
}


def build(type_: str):
    config = next(p for p in PRESETS.values() if p.type == type_)
    return provider_type(type_).load()(config, None)


@pytest.mark.parametrize("type_", sorted(EXPECTED))
def test_each_type_declares_exactly_its_capabilities(type_):
    provider = build(type_)
    try:
        assert isinstance(provider, Provider)
        assert {c for c in CAPABILITIES if isinstance(provider, c)} == EXPECTED[type_]
    finally:
        provider.close()


def test_every_built_in_type_is_covered():
    assert set(TYPES) == set(EXPECTED)


@pytest.mark.parametrize("type_", sorted(EXPECTED))
def test_offline_counters_belong_to_the_types_with_their_own_tokenizer(type_):
    counter = provider_type(type_).load_counter()
    assert (counter is not None) == (type_ in ("mock", "transformers"))


def test_the_mock_counts_lists_and_validates():
    provider = build("mock")
    request = ChatRequest("echo", (Message("user", "Hello there, 你好!"),), system="Be terse.")
    counter = provider_type("mock").load_counter()
    assert counter is not None
    expected = TokenTally(9, "the mock provider's tokenizer")
    assert provider.count_tokens(request) == counter(request, False) == expected
    assert provider.count_tokens(request, raw=True).tokens == 6  # the prompt alone
    assert provider.list_models() == ["echo", "lorem"]
    with pytest.raises(ConfigError, match="Unknown model mock:nope"):
        provider.validate(replace(request, model="nope"))


def test_unknown_types_are_refused_with_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        provider_type("grpc")
    assert info.value.hint == (
        "Valid types: anthropic, gemini, mock, ollama, openai, transformers."
    )


def test_each_type_declares_its_own_fields():
    assert set(TYPE_FIELDS["ollama"]) == {"num_ctx", "keep_alive"}
    assert set(TYPE_FIELDS["mock"]) == {"delay_ms"}
    assert set(TYPE_FIELDS["transformers"]) == {"device", "dtype", "quantize", "trust_remote_code"}
    assert TYPE_FIELDS["openai"] == {}
    assert fields_of("ollama") == {**COMMON_FIELDS, **TYPES["ollama"].fields}
    assert list(PROTOCOLS) == ["openai", "anthropic", "gemini", "mock", "ollama", "transformers"]
    assert COMMON_FIELDS["type"].help == (
        "wire protocol: openai, anthropic, gemini, mock, ollama, transformers"
    )


KNOWN_COMMON = (
    "allow_http, api_key_env, base_url, cache, cache_ttl, call_timeout, connect_timeout, currency, "
    "default_max_tokens, {extra}headers, hourly_cost, key_required, max_input_tokens, "
    "max_retries, max_tokens_field, prices_from, read_timeout, retry_backoff, retry_max_wait, "
    "rpm, self_hosted, stream_usage, tpm, type."
)


def test_config_validate_rejects_a_field_of_another_type(cli, home):
    path = write_config(
        home,
        '[providers.mine]\ntype = "openai"\nbase_url = "https://x.example/v1"\nnum_ctx = 4096\n',
    )
    r = cli("config", "validate")
    assert r.exit_code == ExitCode.CONFIG
    assert r.stderr == (
        f"tokencli: Invalid config {path} (line 4): providers.mine.num_ctx is not a known "
        "setting. Known settings here: " + KNOWN_COMMON.format(extra="") + "\n"
    )

    write_config(home, '[providers.mock]\ndevice = "cpu"\n')
    r = cli("config", "validate")
    assert r.exit_code == ExitCode.CONFIG
    assert r.stderr == (
        f"tokencli: Invalid config {path} (line 2): providers.mock.device is not a known "
        "setting. Known settings here: " + KNOWN_COMMON.format(extra="delay_ms, ") + "\n"
    )


def test_a_type_field_reaches_the_provider_options(cli, home):
    write_config(home, "[providers.mock]\ndelay_ms = 0\n")
    assert cli("config", "validate").exit_code == 0
    r = cli("run", "-m", "mock:echo", "hi")
    assert (r.exit_code, r.stdout) == (0, "hi\n")


def test_a_type_registered_like_a_plugin_brings_its_fields_and_counter(cli, home, monkeypatch):
    toy = ProviderType(
        "toy",
        "tokencli.providers.mock:MockProvider",
        fields={"flavour": FieldSpec("str", "how it tastes")},
        counter="tokencli.providers.mock:count_request",
    )
    monkeypatch.setitem(TYPES, "toy", toy)
    assert PROTOCOLS["toy"] == toy.provider and TYPE_FIELDS["toy"] == toy.fields
    write_config(home, '[providers.fun]\ntype = "toy"\nflavour = "lemon"\n')
    assert cli("config", "validate").exit_code == 0
    r = cli("run", "-m", "fun:echo", "hi there")
    assert (r.exit_code, r.stdout) == (0, "hi there\n")
    r = cli("count", "-m", "fun:echo", "hi there", "--json")
    assert r.exit_code == 0, r.stderr
    assert '"method": "the mock provider\'s tokenizer"' in r.stdout


@pytest.mark.parametrize(
    "model", ["mock:echo", "openai:gpt-4o-mini", "ollama:gpt-oss:20b", "anthropic:claude-x"]
)
def test_count_loads_no_network_or_model_library(home, model):
    assert (
        imported_modules(home, "count", "-m", model, "hello")
        & {
            "httpx",
            "torch",
            "transformers",
        }
        == set()
    )


# ------------------------------------------------------------ the HTTP skeleton


class Talk(HTTPProvider):
    """The smallest protocol: SSE items {"text": ...} until {"end": true}."""

    request_id_headers = ("x-trace-id",)

    def url(self, request: ChatRequest) -> str:
        return f"{self.base}/talk"

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json"}

    def body(self, request: ChatRequest) -> dict[str, object]:
        return {"say": request.prompt_text}

    def parse_event(self, kind, data, state, request_id):
        if data.get("end"):
            state.done, state.finish, state.raw_finish = True, "stop", "end"
        else:
            yield TextDelta(data["text"])

    def parse_whole(self, data, request_id):
        yield TextDelta(data["text"])
        yield Finished("stop", "end")


def talk(handler) -> Talk:
    config = ProviderConfig(name="talk", type="openai", base_url="https://talk.example/v1")
    return Talk(config, "key", transport=httpx.MockTransport(handler))


def request(stream: bool = True) -> ChatRequest:
    return ChatRequest("m", (Message("user", "hi"),), stream=stream)


def sse(*lines: str) -> bytes:
    return "".join(f"data: {line}\n\n" for line in lines).encode()


def test_the_skeleton_posts_the_hooks_request_and_reads_the_stream():
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(
            200,
            headers={"x-trace-id": "t-1"},
            content=sse('{"text": "he"}', '{"text": "y"}', '{"end": true}'),
        )

    events = list(talk(handler).generate(request()))
    assert str(seen[0].url) == "https://talk.example/v1/talk"
    assert seen[0].content == b'{"say":"hi"}'
    assert seen[0].headers["user-agent"].startswith("tokencli/")
    assert isinstance(events[0], ResponseStarted) and events[0].request_id == "t-1"
    assert events[1:] == [TextDelta("he"), TextDelta("y"), Finished("stop", "end")]


def test_the_skeleton_reads_a_whole_answer():
    provider = talk(lambda req: httpx.Response(200, json={"text": "whole"}))
    assert list(provider.generate(request(stream=False)))[1:] == [
        TextDelta("whole"),
        Finished("stop", "end"),
    ]


def test_the_skeleton_maps_an_error_response_with_its_retry_metadata():
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429,
            headers={"x-trace-id": "t-9", "retry-after": "7"},
            json={"error": {"message": "slow down", "type": "rate_limit_error"}},
        )

    events: list[object] = []
    with pytest.raises(ProviderUnavailable) as info:
        events.extend(talk(handler).generate(request()))
    error = info.value
    assert events == []  # nothing started
    assert (error.kind, error.status_code, error.request_id) == ("rate_limit", 429, "t-9")
    assert error.retryable and error.retry_after == 7.0
    assert error.headers["retry-after"] == "7"
    assert error.message == "talk is rate limiting this key (slow down)."


def test_the_skeleton_reports_a_cut_stream_after_what_arrived():
    provider = talk(lambda req: httpx.Response(200, content=sse('{"text": "half"}')))
    events: list[object] = []
    with pytest.raises(ProviderUnavailable) as info:
        events.extend(provider.generate(request()))
    assert events[1:] == [TextDelta("half")]
    assert info.value.kind == "stream_cut" and info.value.retryable


def test_the_skeleton_maps_transport_failures_and_lets_a_protocol_refine_errors():
    class Hinted(Talk):
        def refine_error(self, error: ProviderError, request: ChatRequest) -> None:
            error.hint = f"no route to {request.model}"

    def refuse(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    config = ProviderConfig(name="talk", type="openai", base_url="https://talk.example/v1")
    provider = Hinted(config, None, transport=httpx.MockTransport(refuse))
    with pytest.raises(ProviderUnavailable) as info:
        list(provider.generate(request()))
    assert info.value.kind == "network"
    assert info.value.message == "Could not reach talk at talk.example (connection refused)."
    assert info.value.hint == "no route to m"


def test_the_skeleton_refuses_plain_http_and_closes_its_client():
    with pytest.raises(ConfigError, match="plain http would expose your key"):
        Talk(ProviderConfig(name="talk", type="openai", base_url="http://talk.example/v1"), "k")
    provider = talk(lambda req: httpx.Response(200))
    assert not provider.client.is_closed
    provider.close()
    assert provider.client.is_closed
