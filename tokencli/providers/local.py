"""The `local` provider (type `transformers`): a model run in this process.

`-m local:MODEL` where MODEL is a Hugging Face id (`Qwen/Qwen2.5-0.5B-Instruct`,
downloaded and cached the usual way; `HF_HUB_OFFLINE=1` keeps it to the cache),
a folder saved with `save_pretrained`, or a `.gguf` file (dequantized at load).

Why it is built this way:
- torch and transformers cost seconds to import, so they load only inside
  `validate`/`generate`, never when this module is imported: `count` reads
  `resolve_source` from here without paying for them.
- A loaded model is kept on the provider instance, keyed by where it came from
  and how it was loaded; the engine reuses one provider per process, so batch
  and compare load each model once.
- Loading happens in `validate`, before the ledger row is written: a model
  that cannot be found is a configuration error (exit 6) like an unknown remote
  model, and the call's duration (hence an `hourly_cost`) and time to first
  token measure generation, not loading. The load time is kept in `extra`.
- `generate()` runs in a thread with a streamer that receives token ids, so
  the counts are exact (prompt tokens after the chat template; completion
  tokens up to and including the stop token) and known after every token:
  a Ctrl-C still records exact usage. A stopping criterion watching an Event
  ends the thread when the caller stops listening.
- Sampling follows transformers: without --temperature the model's own
  generation_config decides (greedy for most base models, the model card's
  sampling for many chat models); --temperature 0 is greedy decoding, which is
  deterministic; any other temperature samples.
- Without --max-tokens (or default_max_tokens) the model writes until it
  emits a stop token or fills its context window, as Ollama does, instead of
  transformers' surprising 20-token default.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..calls.usage import COUNTED, Usage
from ..errors import ConfigError, ProviderRefused, ProviderUnavailable
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

EXTRA_HINT = (
    "Install the local-model extra: pip install 'tokencli[local]' "
    "(with a GPU, install the torch build for it first)."
)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {
    "auto": "auto",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float32": "float32",
}
QUANTIZE = ("8bit", "4bit")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class LocalSettings:
    device: str = "auto"
    dtype: str = "auto"
    quantize: str | None = None
    trust_remote_code: bool = False

    @classmethod
    def from_config(cls, config: ProviderConfig) -> LocalSettings:
        opts = config.options
        where = f"[providers.{config.name}]"
        device = str(opts.get("device", "auto")).strip().lower()
        if device.split(":")[0] not in DEVICES or (
            ":" in device and not (device.startswith("cuda:") and device[5:].isdigit())
        ):
            raise ConfigError(
                f"{where} device = {device!r} is not a device tokencli knows.",
                "Use auto, cpu, cuda, cuda:N or mps.",
            )
        dtype = str(opts.get("dtype", "auto")).strip().lower()
        if dtype not in DTYPES:
            raise ConfigError(
                f"{where} dtype = {dtype!r} is not a dtype tokencli knows.",
                "Use auto, bf16, fp16 or fp32.",
            )
        quantize = opts.get("quantize")
        quantize = str(quantize).strip().lower() if quantize else None
        if quantize is not None and quantize not in QUANTIZE:
            raise ConfigError(
                f"{where} quantize = {quantize!r} is not supported.",
                'Use quantize = "8bit" or "4bit", or leave it out.',
            )
        return cls(device, DTYPES[dtype], quantize, bool(opts.get("trust_remote_code", False)))


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a folder, a .gguf file (and its folder), or a hub id."""

    kind: str  # "folder" | "gguf" | "hub"
    location: str  # the folder, the .gguf file's folder, or the hub id
    gguf_file: str | None = None

    @property
    def label(self) -> str:
        return str(Path(self.location) / self.gguf_file) if self.gguf_file else self.location


def resolve_source(spec: str) -> ModelSource:
    """MODEL from `-m local:MODEL` → where to load it from. Cheap: no torch."""
    spec = spec.strip()
    path = Path(os.path.expanduser(spec))
    looks_like_path = spec.startswith(("/", "./", "../", "~", ".\\")) or os.sep + os.sep in spec
    if spec.lower().endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(
                f"GGUF file {spec} not found.", "Check the path after local: (-m local:PATH.gguf)."
            )
        return ModelSource("gguf", str(path.resolve().parent), path.name)
    if path.is_dir():
        return ModelSource("folder", str(path.resolve()))
    if looks_like_path or path.exists() or not _HUB_ID.match(spec):
        raise ConfigError(
            f"Model folder {spec} not found.",
            "Give a folder saved with save_pretrained, a .gguf file, or a Hugging Face id "
            "like Qwen/Qwen2.5-0.5B-Instruct.",
        )
    return ModelSource("hub", spec)


# ------------------------------------------------------------------- loading


def import_backend() -> tuple[Any, Any]:
    """torch and transformers, or a ConfigError saying how to install them."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "torch/transformers"
        raise ConfigError(
            f"Local models need {missing}, which is not installed.", EXTRA_HINT
        ) from None
    return torch, transformers


def _require(module: str, purpose: str, install: str) -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"{purpose} needs the {module} package.", f"Install it: {install}")


def pick_device(torch: Any, wanted: str) -> str:
    if wanted == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device = {wanted} but torch sees no CUDA GPU.",
            "Install a CUDA build of torch, or set device = auto or cpu.",
        )
    if wanted == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError(
            "device = mps but this torch has no Apple GPU support.", "Use auto or cpu."
        )
    return wanted


def pick_dtype(torch: Any, device: str, wanted: str) -> Any:
    """`auto`: bfloat16 on a CUDA GPU that has it (else float16), float16 on MPS, float32 on CPU.

    Half precision on CPU is slow or unsupported for many ops, and fp32
    weights on a GPU waste half its memory, hence not the checkpoint's dtype.
    """
    if wanted != "auto":
        return getattr(torch, wanted)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: str
    eos_ids: frozenset[int]
    pad_id: int | None
    context: int | None
    load_ms: int
    load_reported: bool = False


def load_error(source: ModelSource, exc: Exception) -> ConfigError:
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    hint = "Check the model name or path."
    if source.kind == "hub":
        # transformers' own messages run to several sentences and links; say it in one.
        lowered = text.lower()
        if "couldn't connect" in lowered or "offline" in lowered:
            text = "it is not in the Hugging Face cache and could not be downloaded"
        elif "not a valid model identifier" in lowered or "repository not found" in lowered:
            text = "there is no such model on the Hugging Face Hub (or it needs a login)"
        hint = (
            "A hub id is downloaded on first use and then read from the Hugging Face cache; "
            "offline (HF_HUB_OFFLINE=1 or no network) it must already be cached. "
            "Or pass a local folder."
        )
    return ConfigError(f"Cannot load local model {source.label}: {text.rstrip('.')}.", hint)


def load_model(source: ModelSource, settings: LocalSettings) -> LoadedModel:
    started = time.monotonic()
    torch, transformers = import_backend()
    if not os.environ.get("TOKENCLI_DEBUG"):
        # Progress bars and advice from transformers would interleave with the answer.
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    device = pick_device(torch, settings.device)
    dtype = pick_dtype(torch, device, settings.dtype)
    common: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code}
    if source.gguf_file:
        for module in ("gguf", "accelerate"):  # transformers needs both for GGUF
            _require(module, "Loading a .gguf file", "pip install 'tokencli[local,gguf]'")
        common["gguf_file"] = source.gguf_file
    model_kwargs: dict[str, Any] = {"dtype": dtype}
    if settings.quantize:
        _require("bitsandbytes", f"quantize = {settings.quantize!r}", "pip install bitsandbytes")
        _require("accelerate", f"quantize = {settings.quantize!r}", "pip install accelerate")
        bits = transformers.BitsAndBytesConfig
        model_kwargs["quantization_config"] = (
            bits(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
            if settings.quantize == "4bit"
            else bits(load_in_8bit=True)
        )
        model_kwargs["device_map"] = {"": device}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.location, **common)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source.location, **common, **model_kwargs
        )
    except (OSError, ValueError, KeyError) as exc:
        raise load_error(source, exc) from None
    if not settings.quantize:
        model.to(device)
    model.eval()

    gen = model.generation_config
    eos: set[int] = set()
    for value in (gen.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, list | tuple):
            eos.update(v for v in value if isinstance(v, int))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else gen.pad_token_id
    if pad is None and eos:
        pad = min(eos)
    context = getattr(model.config, "max_position_embeddings", None)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=str(model.device),
        dtype=str(model.dtype).removeprefix("torch."),
        eos_ids=frozenset(eos),
        pad_id=pad,
        context=context if isinstance(context, int) and context > 0 else None,
        load_ms=int((time.monotonic() - started) * 1000),
    )


# ----------------------------------------------------------------- prompting


def chat_messages(request: ChatRequest, *, merge_system: bool = False) -> list[dict[str, str]]:
    """The chat the template renders; `merge_system` folds the system prompt into
    the first user message, for templates that refuse a system role (Gemma)."""
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    if request.system:
        if merge_system and messages and messages[0]["role"] == "user":
            messages[0] = {
                "role": "user",
                "content": f"{request.system}\n\n{messages[0]['content']}",
            }
        else:
            messages.insert(0, {"role": "system", "content": request.system})
    return messages


def plain_prompt(request: ChatRequest) -> str:
    """What a model without a chat template (a base model) is given."""
    parts = [request.system] if request.system else []
    parts.extend(m.content for m in request.messages)
    return "\n\n".join(parts)


def encode_prompt(tokenizer: Any, request: ChatRequest) -> Any:
    """input_ids and attention_mask of the prompt as the model will see it."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer(plain_prompt(request), return_tensors="pt")
    import jinja2

    try:
        return tokenizer.apply_chat_template(
            chat_messages(request),
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
    except jinja2.TemplateError:
        if not request.system:
            raise
        return tokenizer.apply_chat_template(
            chat_messages(request, merge_system=True),
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )


class IncrementalDecoder:
    """Token ids in, text out, without splitting a character across pieces.

    Decodes a short window of recent ids and emits what it adds (the method
    text-generation servers use), holding back text that ends in an incomplete
    UTF-8 sequence. Joined, the pieces equal decoding all ids at once.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def decode(self, ids: list[int]) -> str:
        """All of `ids` at once (the non-streaming answer)."""
        # No clean-up: it edits spaces around punctuation, which would make the
        # streamed pieces differ from the whole.
        text: str = self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text

    def push(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        before = self.decode(self.ids[self.prefix : self.read])
        after = self.decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        before = self.decode(self.ids[self.prefix : self.read])
        after = self.decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :]


# ------------------------------------------------------------------ provider


_END = object()


class LocalProvider:
    def __init__(self, config: ProviderConfig, api_key: str | None = None, **_: object) -> None:
        self.config = config
        self.settings = LocalSettings.from_config(config)
        self._models: dict[tuple[str, str | None, LocalSettings], LoadedModel] = {}
        # Batch workers share this provider: load each model once, and let one
        # call at a time generate (parallel generate calls on one model only
        # compete for the same device and memory).
        self._loading = threading.Lock()
        self._generating = threading.Lock()

    def close(self) -> None:
        self._models.clear()

    def loaded(self, model: str) -> LoadedModel:
        """The model for `-m local:MODEL`, loaded on first use and kept."""
        source = resolve_source(model)
        key = (source.location, source.gguf_file, self.settings)
        with self._loading:
            found = self._models.get(key)
            if found is None:
                found = self._models[key] = load_model(source, self.settings)
        return found

    def validate(self, request: ChatRequest) -> None:
        """Load the model before the call is recorded (see the module docstring)."""
        self.loaded(request.model)

    def count_tokens(self, request: ChatRequest, *, raw: bool = False) -> TokenTally:
        from .local_tokens import count_request

        return count_request(request, raw)

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        with self._generating:
            yield from self._generate(request)

    def _generate(self, request: ChatRequest) -> Iterator[Event]:
        loaded = self.loaded(request.model)
        inputs = encode_prompt(loaded.tokenizer, request)
        input_ids = inputs["input_ids"].to(loaded.device)
        attention_mask = inputs["attention_mask"].to(loaded.device)
        prompt_tokens = int(input_ids.shape[1])
        max_new = self._max_new_tokens(request, loaded, prompt_tokens)

        yield ResponseStarted()
        yield UsageUpdate(Usage(input_tokens=prompt_tokens, source=COUNTED))

        run = _GenerationThread(
            loaded,
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new,
            sampling=sampling_kwargs(request.temperature),
        )
        ids: list[int] = []
        decoder = IncrementalDecoder(loaded.tokenizer)
        run.start()
        try:
            for piece in run.pieces():
                ids.extend(piece)
                if request.stream:
                    text = decoder.push(piece)
                    if text:
                        yield TextDelta(text)
                yield UsageUpdate(
                    Usage(input_tokens=prompt_tokens, output_tokens=len(ids), source=COUNTED)
                )
        finally:
            run.stop()
        text = decoder.flush() if request.stream else decoder.decode(ids)
        if text:
            yield TextDelta(text)
        finish = STOP if ids and ids[-1] in loaded.eos_ids else LENGTH
        if len(ids) < max_new and finish == LENGTH:
            finish = STOP  # a stopping rule of the model's own ended it
        extra: dict[str, object] = {"device": loaded.device, "dtype": loaded.dtype}
        if self.settings.quantize:
            extra["quantize"] = self.settings.quantize
        if not loaded.load_reported:
            extra["load_ms"] = loaded.load_ms
            loaded.load_reported = True
        yield Finished(finish, finish, request.model, None, extra)

    def _max_new_tokens(self, request: ChatRequest, loaded: LoadedModel, prompt: int) -> int:
        room = loaded.context - prompt if loaded.context else None
        if room is not None and room <= 0:
            raise ProviderRefused(
                f"The prompt is {prompt:,} tokens; {request.model} holds {loaded.context:,}.",
                "Shorten the prompt.",
                kind="context_length",
            )
        wanted = request.max_tokens or self.config.default_max_tokens
        if wanted is None:
            return room if room is not None else 4096
        return min(wanted, room) if room is not None else wanted


def sampling_kwargs(temperature: float | None) -> dict[str, Any]:
    """transformers' generate() arguments for a temperature (see the module docstring)."""
    if temperature is None:
        return {}
    if temperature == 0:
        # Clear the model's sampling settings too, or generate() warns they are unused.
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": temperature}


@dataclass
class _GenerationThread:
    """`model.generate` in a thread, handing over generated ids as they come."""

    loaded: LoadedModel
    input_ids: Any
    attention_mask: Any
    max_new_tokens: int
    sampling: dict[str, Any]
    queue: queue.Queue[Any] = field(default_factory=queue.Queue)
    stop_event: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="tokencli-generate", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        handoff = self.queue
        stop_event = self.stop_event

        class Streamer(BaseStreamer):
            prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:  # generate() first hands over the prompt
                    self.prompt_seen = True
                    return
                handoff.put([int(v) for v in value.reshape(-1).tolist()])

            def end(self) -> None:
                pass

        class StopWhenAsked(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                import torch

                return torch.full(
                    (input_ids.shape[0],),
                    stop_event.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        loaded = self.loaded
        kwargs: dict[str, Any] = dict(self.sampling)
        if loaded.eos_ids:
            # The tokenizer's end-of-turn token too: some generation configs name only <|endoftext|>.
            kwargs["eos_token_id"] = sorted(loaded.eos_ids)
        if loaded.pad_id is not None:
            kwargs["pad_token_id"] = loaded.pad_id
        try:
            import torch

            with torch.inference_mode():
                loaded.model.generate(
                    input_ids=self.input_ids,
                    attention_mask=self.attention_mask,
                    max_new_tokens=self.max_new_tokens,
                    streamer=Streamer(),
                    stopping_criteria=StoppingCriteriaList([StopWhenAsked()]),
                    **kwargs,
                )
        except BaseException as exc:
            self.error = exc
        finally:
            handoff.put(_END)

    def pieces(self) -> Iterator[list[int]]:
        """Generated ids as generate() produces them; raises what generate() raised."""
        while True:
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.thread is not None and not self.thread.is_alive() and self.queue.empty():
                    break
                continue
            if item is _END:
                break
            yield item
        if self.error is not None:
            raise _generation_error(self.error)

    def stop(self) -> None:
        """Ask generate() to stop after the current token and wait for it."""
        self.stop_event.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            with contextlib.suppress(Exception):
                self.thread.join(timeout=60)


def _generation_error(exc: BaseException) -> Exception:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:300]
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return ProviderUnavailable(
            f"The local model ran out of memory while generating ({text.rstrip('.')}).",
            'Lower --max-tokens, use a smaller model, or set quantize = "4bit".',
            kind="out_of_memory",
        )
    return ProviderUnavailable(
        f"The local model failed while generating: {name}: {text.rstrip('.')}.",
        "Run with TOKENCLI_DEBUG=1 for details.",
        kind="local_error",
    )
