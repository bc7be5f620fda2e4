"""Hypothesis: the gateway's readers of Responses and embeddings answers take any JSON.

Whatever an upstream sends, a reader read as the relay reads it (through
`http_base.guarded`) yields events or raises the provider error that the relay turns
into an error in the client's protocol; nothing else may escape.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokencli.errors import ProviderError
from tokencli.gateway.readers import EmbeddingsReader, ResponsesReader
from tokencli.providers.http_base import StreamState, guarded

KEYS = st.sampled_from(
    ["type", "delta", "response", "usage", "input_tokens", "output_tokens", "input_tokens_details",
     "output_tokens_details", "cached_tokens", "reasoning_tokens", "object", "output", "content",
     "text", "status", "model", "id", "data", "error", "prompt_tokens", "total_tokens"]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "response",
            "output_text",
            "completed",
            "incomplete",
            "response.completed",
            "response.output_text.delta",
            "response.failed",
            "error",
            "list",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(data=JSON, kind=st.none() | st.sampled_from(["response.completed", "error", "message"]))
def test_any_event_or_answer_is_events_or_a_provider_error(data, kind) -> None:
    for reader in (ResponsesReader("openai"), EmbeddingsReader("openai")):
        try:
            list(guarded(reader.parse_event(kind, data, StreamState(), "req_1"), "openai", "r"))
        except ProviderError:
            pass
        try:
            list(guarded(reader.parse_whole(data, "req_1"), "openai", "r"))
        except ProviderError:
            pass


@settings(max_examples=200, deadline=None)
@given(data=JSON)
def test_the_chat_protocols_read_any_event_as_events_or_a_provider_error(data) -> None:
    """The relay reads chat and Messages with the providers' own parsers, guarded the same way."""
    from tokencli.providers.anthropic import AnthropicProvider
    from tokencli.providers.openai import OpenAIProvider

    for cls in (OpenAIProvider, AnthropicProvider):
        parser = cls.__new__(cls)  # the parsing half needs no client
        for kind in (None, "message_start", "content_block_delta", "message_delta"):
            try:
                list(guarded(parser.parse_event(kind, data, StreamState(), "r"), "p", "r"))
            except ProviderError:
                pass
