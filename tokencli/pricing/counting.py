"""Offline token counts and the input cost they imply (`count`, `run --dry-run`).

How a model's input is counted, best first:

- local models (`local:`): the model's own `tokenizer.json` with the
  `tokenizers` library and its chat template rendered by jinja2 the way
  transformers renders it. This reproduces `apply_chat_template` exactly in
  about 0.1 s, without importing torch or transformers (seconds). A `.gguf`
  file, or a folder with no tokenizer.json, goes through transformers: still
  exact, only slower;
- `mock:` models: the mock's own tokenizer (exact, it is what it bills);
- OpenAI models: their real encodings (o200k_base, cl100k_base) from the
  `bpe-openai` package, which ships them, so no download is needed, plus the
  chat format's fixed overhead as OpenAI documents it (3 tokens a message,
  3 to prime the reply);
- anything else: `usage.estimate_tokens`, labelled as an estimate.

`--raw` counts the text alone, without chat framing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..calls.resolve import (
    ResolvedModel,
    RunOptions,
    build_request,
    resolve_model,
    resolve_price_as,
)
from ..calls.usage import COUNTED, ESTIMATED, Usage, estimate_tokens
from ..clock import SYSTEM_CLOCK
from ..errors import ConfigError, UsageError
from ..providers.base import ChatRequest, Message
from ..providers.registry import ProviderConfig
from ..settings.loader import Settings
from .cost import Cost, price_call

if TYPE_CHECKING:
    from ..providers.local import ModelSource

OPENAI_TOKENIZER_HINT = "pip install 'tokencli[openai-tokenizer]'"


@dataclass(frozen=True)
class TokenCount:
    provider: str
    model: str
    input_tokens: int
    usage_source: str  # counted | estimated
    method: str  # how, in words
    cost: Cost
    notes: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class DryRun:
    """What `run` would send, and its counted input."""

    request: ChatRequest
    count: TokenCount
    alias: str | None = None


@dataclass
class _Counted:
    tokens: int
    method: str
    source: str = COUNTED
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- entry


def count_request(
    settings: Settings,
    resolved: ResolvedModel,
    request: ChatRequest,
    *,
    raw: bool = False,
    price_as: tuple[ProviderConfig, str] | None = None,
    when: datetime | None = None,
) -> TokenCount:
    """The input tokens `request` would cost on `resolved`, and their price."""
    provider = resolved.provider
    counted: _Counted | None = None
    if provider.type == "transformers":
        counted = _count_local(request, raw)
    elif provider.type == "mock":
        counted = _count_mock(request, raw)
    elif openai_encoding_name(request.model):
        counted = _count_openai(request, raw)
        if counted is None:
            counted = _estimate(request, raw)
            counted.notes.append(
                f"Exact counts for OpenAI models need the bpe-openai package: {OPENAI_TOKENIZER_HINT}."
            )
    if counted is None:
        counted = _estimate(request, raw)
    usage = Usage(input_tokens=counted.tokens, source=counted.source)
    cost = _input_cost(
        settings, provider, resolved.model, usage, when or SYSTEM_CLOCK.now(), price_as
    )
    return TokenCount(
        provider=provider.name,
        model=resolved.model,
        input_tokens=counted.tokens,
        usage_source=counted.source,
        method=counted.method,
        cost=cost,
        notes=tuple(counted.notes),
    )


def count_text(
    settings: Settings,
    model: str | None,
    text: str,
    *,
    system: str | None = None,
    raw: bool = False,
    when: datetime | None = None,
) -> TokenCount:
    """`tokencli count`: TEXT as one user message (or alone with `raw`)."""
    if not text.strip():
        raise UsageError("The text is empty.", "Pass TEXT as an argument or pipe it on stdin.")
    resolved = resolve_model(settings, model)
    request = ChatRequest(
        model=resolved.model, messages=(Message("user", text),), system=system, stream=False
    )
    return count_request(settings, resolved, request, raw=raw, when=when)


def dry_run(settings: Settings, opts: RunOptions, *, when: datetime | None = None) -> DryRun:
    """`run --dry-run`: the request `Engine.run` would send, counted and priced; no call."""
    if not opts.prompt.strip():
        raise UsageError("The prompt is empty.", "Pass a prompt argument or pipe text on stdin.")
    resolved = resolve_model(settings, opts.model)
    price_as = resolve_price_as(settings, resolved, opts.price_as)
    request = build_request(settings, resolved, opts)
    count = count_request(settings, resolved, request, price_as=price_as, when=when)
    return DryRun(request=request, count=count, alias=resolved.alias)


def _input_cost(
    settings: Settings,
    provider: ProviderConfig,
    model: str,
    usage: Usage,
    when: datetime,
    price_as: tuple[ProviderConfig, str] | None,
) -> Cost:
    if (
        price_as is None
        and provider.self_hosted
        and provider.hourly_cost is not None
        and f"{provider.name}:{model}" not in settings.prices
    ):
        return Cost(None, provider.currency, "hourly_cost: priced by call time, not by tokens")
    try:
        return price_call(settings, provider, model, usage, when=when, price_as=price_as)
    except Exception as exc:  # a broken price table must not break counting
        return Cost(None, None, f"unknown ({type(exc).__name__})")


# ------------------------------------------------------------------ estimate


def _texts(request: ChatRequest) -> list[str]:
    return ([request.system] if request.system else []) + [m.content for m in request.messages]


def _estimate(request: ChatRequest, raw: bool) -> _Counted:
    texts = [request.prompt_text] if raw else _texts(request)
    return _Counted(
        sum(estimate_tokens(t) for t in texts),
        "estimate (about 4 characters a token, 1 a CJK character)",
        ESTIMATED,
    )


def _count_mock(request: ChatRequest, raw: bool) -> _Counted:
    from ..providers.mock import count_tokens

    texts = [request.prompt_text] if raw else _texts(request)
    return _Counted(sum(count_tokens(t) for t in texts), "the mock provider's tokenizer")


# -------------------------------------------------------------------- OpenAI

# Model-name prefixes → encoding, longest first (tiktoken's model map).
_OPENAI_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),  # o200k_harmony: o200k_base plus chat-format tokens
    ("chatgpt-4o", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
_O_SERIES = re.compile(r"^o\d")


def openai_encoding_name(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI model name (`openai/` prefixes allowed)."""
    name = model.lower().removeprefix("openai/")
    for prefix, encoding in _OPENAI_ENCODINGS:
        if name.startswith(prefix) and (not _O_SERIES.match(prefix) or _O_SERIES.match(name)):
            return encoding
    return None


def _count_openai(request: ChatRequest, raw: bool) -> _Counted | None:
    name = openai_encoding_name(request.model)
    if name is None:
        return None
    try:
        import bpe_openai
    except ImportError:
        return None
    encoding = bpe_openai.get_encoding(name)

    def n(text: str) -> int:
        return len(encoding.encode(text))

    if raw:
        return _Counted(n(request.prompt_text), f"{name} encoding")
    # OpenAI's documented chat overhead: <|start|>{role}\n{content}<|end|>\n
    # costs 3 tokens plus role and content; the reply is primed with 3 more.
    messages = [("system", request.system)] if request.system else []
    messages += [(m.role, m.content) for m in request.messages]
    total = sum(3 + n(role) + n(content) for role, content in messages) + 3
    return _Counted(total, f"{name} encoding, chat format")


# --------------------------------------------------------------------- local

# The named special tokens transformers passes to a chat template.
_SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


def _count_local(request: ChatRequest, raw: bool) -> _Counted:
    from ..providers.local import resolve_source

    source = resolve_source(request.model)
    folder = None if source.kind == "gguf" else _tokenizer_folder(source)
    if folder is not None and (folder / "tokenizer.json").is_file():
        try:
            import jinja2  # noqa: F401  (the template renderer)
            import tokenizers  # noqa: F401
        except ImportError:
            folder = None
        else:
            return _count_with_tokenizer_json(folder, request, raw)
    return _count_with_transformers(source, request, raw)


def _tokenizer_folder(source: ModelSource) -> Path | None:
    """The folder holding the tokenizer files (a hub id: its snapshot in the HF cache)."""
    if source.kind == "folder":
        return Path(source.location)
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        return None
    cached = try_to_load_from_cache(source.location, "tokenizer.json")
    if isinstance(cached, str):
        folder = Path(cached).parent
    else:
        try:
            folder = Path(hf_hub_download(source.location, "tokenizer.json")).parent
        except Exception:
            return None  # transformers will say what is wrong, or find another tokenizer
    for name in ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if not (folder / name).exists():
            try:
                hf_hub_download(source.location, name)
            except Exception:
                pass  # optional files
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def chat_template_of(folder: Path) -> str | None:
    """The chat template transformers would use: chat_template.jinja, else tokenizer_config.json."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text("utf-8")
    template = _read_json(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


def special_tokens_of(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for source in (
        _read_json(folder / "special_tokens_map.json"),
        _read_json(folder / "tokenizer_config.json"),
    ):
        for name in _SPECIAL_TOKEN_NAMES:
            value = source.get(name)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                found[name] = value
    return found


def render_chat_template(
    template: str, messages: list[dict[str, str]], special_tokens: dict[str, str]
) -> str:
    """Render a chat template in the environment transformers uses for it."""
    import json as _json
    from datetime import datetime as _datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return _json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: _datetime.now().strftime(fmt)
    compiled = env.from_string(template)
    return compiled.render(
        messages=messages,
        tools=None,
        documents=None,
        add_generation_prompt=True,
        **special_tokens,
    )


def _count_with_tokenizer_json(folder: Path, request: ChatRequest, raw: bool) -> _Counted:
    import jinja2
    import tokenizers

    from ..providers.local import chat_messages, plain_prompt

    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    if raw:
        n = len(tokenizer.encode(request.prompt_text, add_special_tokens=False).ids)
        return _Counted(n, "the model's tokenizer.json")
    template = chat_template_of(folder)
    if template is None:
        n = len(tokenizer.encode(plain_prompt(request), add_special_tokens=True).ids)
        return _Counted(n, "the model's tokenizer.json (no chat template)")
    special = special_tokens_of(folder)
    try:
        text = render_chat_template(template, chat_messages(request), special)
    except jinja2.TemplateError:
        if not request.system:
            raise ConfigError(
                f"The chat template of {folder} failed to render.", "Check the model's files."
            ) from None
        text = render_chat_template(template, chat_messages(request, merge_system=True), special)
    n = len(tokenizer.encode(text, add_special_tokens=False).ids)
    return _Counted(n, "the model's tokenizer.json and chat template")


def _count_with_transformers(source: ModelSource, request: ChatRequest, raw: bool) -> _Counted:
    """Exact but slower: the tokenizer as transformers loads it (.gguf files, slow tokenizers)."""
    from ..providers.local import encode_prompt, import_backend, load_error

    _, transformers = import_backend()
    kwargs: dict[str, Any] = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if not os.environ.get("TOKENCLI_DEBUG"):
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise load_error(source, exc) from None
    if raw:
        n = len(tokenizer(request.prompt_text, add_special_tokens=False)["input_ids"])
        return _Counted(n, "the model's tokenizer (via transformers)")
    n = int(encode_prompt(tokenizer, request)["input_ids"].shape[1])
    return _Counted(n, "the model's tokenizer and chat template (via transformers)")
