"""The `mock` provider: free, offline, deterministic, metered like any other.

- `mock:echo` answers with the prompt itself;
- `mock:lorem` writes `--max-tokens` words of lorem ipsum (50 by default,
  at most 100,000: `--max-tokens 100000000` does not fill the memory), the
  same words for the same prompt.

Tokens are counted with a simple word-and-punctuation tokenizer (one token
per CJK character), so usage is `counted`. `delay_ms` in `[providers.mock]`
paces the stream, which makes Ctrl-C and progress easy to try.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

from ..calls.usage import COUNTED, Usage
from ..errors import ConfigError
from ..ids import new_id
from .base import (
    LENGTH,
    STOP,
    ChatRequest,
    Event,
    Finished,
    ResponseStarted,
    TextDelta,
    TokenTally,
    UsageUpdate,
)
from .registry import ProviderConfig

MODELS = {
    "echo": "answers with the prompt",
    "lorem": "writes --max-tokens words of lorem ipsum (default 50)",
}
DEFAULT_LOREM_WORDS = 50
# The longest lorem answer: the text is held in memory (and in the ledger).
MAX_LOREM_WORDS = 100_000

_TOKEN = re.compile(
    r"\s*(?:[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+|[^\w\s])", re.UNICODE
)

_LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "ut",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "ut",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "dolor",
    "in",
    "reprehenderit",
    "in",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "dolore",
    "eu",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "in",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
]


def tokenize(text: str) -> list[str]:
    """Pieces that join back into the text (trailing whitespace aside)."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


def count_request(request: ChatRequest, raw: bool) -> TokenTally:
    """The mock's own count of a request (exact: it is what the mock bills)."""
    if raw:
        texts = [request.prompt_text]
    else:
        texts = ([request.system] if request.system else []) + [m.content for m in request.messages]
    return TokenTally(sum(count_tokens(t) for t in texts), "the mock provider's tokenizer")


def lorem(prompt: str, words: int) -> str:
    start = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") % len(_LOREM)
    picked = [_LOREM[(start + i) % len(_LOREM)] for i in range(words)]
    if not picked:
        return ""
    picked[0] = picked[0].capitalize()
    return " ".join(picked) + "."


class MockProvider:
    def __init__(self, config: ProviderConfig, api_key: str | None = None, **_: object) -> None:
        self.config = config
        delay = config.options.get("delay_ms", 0)
        self.delay = max(int(delay), 0) / 1000 if isinstance(delay, int) else 0.0

    def close(self) -> None:
        pass

    def validate(self, request: ChatRequest) -> None:
        """Unknown mock models fail before anything is recorded."""
        if request.model not in MODELS:
            raise ConfigError(
                f"Unknown model {self.config.name}:{request.model}.",
                "Known models: " + ", ".join(f"{self.config.name}:{m}" for m in MODELS) + ".",
            )

    def count_tokens(self, request: ChatRequest, *, raw: bool = False) -> TokenTally:
        return count_request(request, raw)

    def list_models(self) -> list[str]:
        return list(MODELS)

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        self.validate(request)
        prompt = request.prompt_text
        input_tokens = count_tokens(request.system or "") + count_tokens(prompt)
        yield ResponseStarted(request_id=f"mock-{new_id()}")
        yield UsageUpdate(Usage(input_tokens=input_tokens, source=COUNTED))

        if request.model == "echo":
            pieces = tokenize(prompt)
            limit = request.max_tokens
        else:
            words = min(request.max_tokens or DEFAULT_LOREM_WORDS, MAX_LOREM_WORDS)
            pieces = tokenize(lorem(prompt, words))
            limit = None
        finish = STOP
        if limit is not None and len(pieces) > limit:
            pieces, finish = pieces[:limit], LENGTH

        sent = 0
        if request.stream:
            for piece in pieces:
                if self.delay:
                    time.sleep(self.delay)
                # Counted when generated, then delivered: like a real model, a token
                # interrupted on its way to the screen was still produced.
                sent += 1
                yield UsageUpdate(
                    Usage(input_tokens=input_tokens, output_tokens=sent, source=COUNTED)
                )
                yield TextDelta(piece)
        else:
            if self.delay:
                time.sleep(self.delay * len(pieces))
            if pieces:
                yield TextDelta("".join(pieces))
            sent = len(pieces)
            yield UsageUpdate(Usage(input_tokens=input_tokens, output_tokens=sent, source=COUNTED))
        yield Finished(finish, finish, request.model, None)
