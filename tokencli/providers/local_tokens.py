"""Counting a local model's input offline, exactly as it will see it.

The model's own `tokenizer.json` with the `tokenizers` library and its chat
template rendered by jinja2 the way transformers renders it: this reproduces
`apply_chat_template` exactly in about 0.1 s, without importing torch or
transformers (seconds). A `.gguf` file, or a folder with no tokenizer.json,
goes through transformers: still exact, only slower.

The `transformers` type's token counter (`registry.TYPES`); it imports none
of the heavy libraries until a count needs them.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import ChatRequest, TokenTally
from .local import (
    ModelSource,
    chat_messages,
    encode_prompt,
    import_backend,
    load_error,
    plain_prompt,
    resolve_source,
)

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


def count_request(request: ChatRequest, raw: bool) -> TokenTally:
    """A local model's count of a request: its tokenizer.json, else transformers."""
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


@functools.lru_cache(maxsize=16)
def _load_tokenizer(path: str, _mtime_ns: int) -> Any:
    """A tokenizer.json, loaded once per process (reloaded if the file changes)."""
    import tokenizers

    return tokenizers.Tokenizer.from_file(path)


def _count_with_tokenizer_json(folder: Path, request: ChatRequest, raw: bool) -> TokenTally:
    import jinja2

    path = folder / "tokenizer.json"
    tokenizer = _load_tokenizer(str(path), path.stat().st_mtime_ns)
    if raw:
        n = len(tokenizer.encode(request.prompt_text, add_special_tokens=False).ids)
        return TokenTally(n, "the model's tokenizer.json")
    template = chat_template_of(folder)
    if template is None:
        n = len(tokenizer.encode(plain_prompt(request), add_special_tokens=True).ids)
        return TokenTally(n, "the model's tokenizer.json (no chat template)")
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
    return TokenTally(n, "the model's tokenizer.json and chat template")


def _count_with_transformers(source: ModelSource, request: ChatRequest, raw: bool) -> TokenTally:
    """Exact but slower: the tokenizer as transformers loads it (.gguf files, slow tokenizers)."""
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
        return TokenTally(n, "the model's tokenizer (via transformers)")
    n = int(encode_prompt(tokenizer, request)["input_ids"].shape[1])
    return TokenTally(n, "the model's tokenizer and chat template (via transformers)")
