"""The call pipeline: resolve the model → write the pending row → call the
provider → price → complete the row.

The row exists before the request leaves, and every way out of a call
(success, provider error, cut stream, Ctrl-C, SIGTERM, a closed stdout, a bug)
completes it with what is known. The ledger writes themselves run with
Ctrl-C deferred, so a second Ctrl-C cannot tear a row in half.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from .config import Settings
from .errors import (
    ConfigError,
    Interrupted,
    ProviderError,
    ProviderRefused,
    TokencliError,
    UsageError,
)
from .ids import new_id
from .keys import KeyStore, require_key
from .ledger import Call, Ledger, format_ts, parse_ts, utc_now
from .pricing import Cost, prefetch, price_call
from .providers.base import (
    CONTENT_FILTER,
    ChatRequest,
    Finished,
    Message,
    Provider,
    ResponseStarted,
    TextDelta,
    UsageUpdate,
)
from .providers.registry import ProviderConfig, load_protocol
from .redact import redact
from .usage import COUNTED, ESTIMATED, Usage, estimate_tokens


@dataclass(frozen=True)
class ResolvedModel:
    provider: ProviderConfig
    model: str
    alias: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.provider.name}:{self.model}"


@dataclass
class RunOptions:
    prompt: str
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = True
    project: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    price_as: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None


@dataclass
class RunResult:
    call: Call
    text: str
    notices: list[str] = field(default_factory=list)


def resolve_model(settings: Settings, spec: str | None) -> ResolvedModel:
    """`-m` value (alias or PROVIDER:MODEL) → provider config and model name."""
    spec = (spec or settings.defaults.model or "").strip()
    if not spec:
        raise UsageError(
            "No model given.", "Pass -m PROVIDER:MODEL or set [defaults] model in the config."
        )
    alias = None
    if spec in settings.aliases:
        alias, spec = spec, settings.aliases[spec][0]
    provider_name, sep, model = spec.partition(":")
    if not sep or not model or not provider_name:
        known = ", ".join(sorted(settings.aliases)) or "none defined"
        raise ConfigError(
            f"Unknown model {spec!r}: not an alias and not PROVIDER:MODEL.",
            f"Write e.g. -m openai:gpt-4o-mini. Aliases: {known}.",
        )
    return ResolvedModel(settings.provider(provider_name), model, alias)


class Engine:
    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Callable[[], Ledger],
        clock: Callable[[], datetime] = utc_now,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.settings = settings
        self._ledger_factory = ledger
        self._ledger: Ledger | None = None
        self.clock = clock
        # A provider built once serves every call of this process (batch, compare).
        self._providers: dict[str, Provider] = providers if providers is not None else {}
        self.keys = KeyStore(settings.paths.keys)

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = self._ledger_factory()
        return self._ledger

    def close(self) -> None:
        for provider in self._providers.values():
            with contextlib.suppress(Exception):
                provider.close()
        self._providers.clear()

    def provider_for(self, config: ProviderConfig) -> Provider:
        found = self._providers.get(config.name)
        if found is None:
            key = require_key(config, self.settings.env, self.keys)
            found = load_protocol(config.type)(config, key)
            self._providers[config.name] = found
        return found

    # ------------------------------------------------------------------- run

    def run(self, opts: RunOptions, on_text: Callable[[str], None] = lambda _: None) -> RunResult:
        if not opts.prompt.strip():
            raise UsageError(
                "The prompt is empty.", "Pass a prompt argument or pipe text on stdin."
            )
        resolved = resolve_model(self.settings, opts.model)
        price_as = self._price_as(resolved, opts.price_as)
        provider = self.provider_for(resolved.provider)
        request = ChatRequest(
            model=resolved.model,
            messages=(Message("user", opts.prompt),),
            system=opts.system,
            max_tokens=opts.max_tokens
            if opts.max_tokens is not None
            else self.settings.defaults.max_tokens,
            temperature=opts.temperature
            if opts.temperature is not None
            else self.settings.defaults.temperature,
            stream=opts.stream,
        )
        validate = getattr(provider, "validate", None)
        if validate is not None:
            validate(request)
        if price_as is not None or (
            resolved.provider.prices_from and not resolved.provider.self_hosted
        ):
            prefetch()  # import the price table while the request is in flight

        store_text = self.settings.defaults.store_text
        params = {
            k: v
            for k, v in (("max_tokens", request.max_tokens), ("temperature", request.temperature))
            if v is not None
        }
        call = Call(
            id=new_id(),
            ts=format_ts(self.clock()),
            provider=resolved.provider.name,
            model=resolved.model,
            pid=os.getpid(),
            alias=resolved.alias,
            project=opts.project if opts.project is not None else self.settings.defaults.project,
            tags=dict(opts.tags),
            prompt_name=opts.prompt_name,
            prompt_version=opts.prompt_version,
            stream=request.stream,
            params=params,
            system_text=request.system if store_text else None,
            prompt_text=opts.prompt if store_text else None,
        )
        with deferred_signals():
            self.ledger.insert_call(call)
        return self._execute(call, provider, request, resolved, price_as, on_text, store_text)

    def _price_as(
        self, resolved: ResolvedModel, spec: str | None
    ) -> tuple[ProviderConfig, str] | None:
        if not spec:
            return None
        if not resolved.provider.self_hosted:
            raise UsageError(
                f"--price-as only applies to mock and self-hosted providers, not {resolved.provider.name}.",
                f"{resolved.provider.name} calls are priced as what they are.",
            )
        target = resolve_model(self.settings, spec)
        return target.provider, target.model

    def _execute(
        self,
        call: Call,
        provider: Provider,
        request: ChatRequest,
        resolved: ResolvedModel,
        price_as: tuple[ProviderConfig, str] | None,
        on_text: Callable[[str], None],
        store_text: bool,
    ) -> RunResult:
        parts: list[str] = []
        usage: Usage | None = None
        provider_cost: Decimal | None = None
        provider_cost_currency: str | None = None
        finished: Finished | None = None
        failure: BaseException | None = None
        started = time.monotonic()
        first_token: float | None = None
        try:
            for event in provider.generate(request):
                if isinstance(event, TextDelta):
                    if first_token is None:
                        first_token = time.monotonic()
                    parts.append(event.text)
                    on_text(event.text)
                elif isinstance(event, UsageUpdate):
                    usage = event.usage
                    if event.provider_cost is not None:
                        provider_cost, provider_cost_currency = (
                            event.provider_cost,
                            event.provider_cost_currency,
                        )
                elif isinstance(event, ResponseStarted):
                    call.request_id = event.request_id
                elif isinstance(event, Finished):
                    finished = event
        except (KeyboardInterrupt, Interrupted, BrokenPipeError) as exc:
            failure = exc
        except ProviderError as exc:
            failure = exc
            call.request_id = call.request_id or exc.request_id
        except TokencliError as exc:
            failure = exc
        except Exception as exc:  # a bug: still record the call, then let it surface
            failure = exc

        ended = time.monotonic()
        text = "".join(parts)
        call.duration_ms = int((ended - started) * 1000)
        call.ttft_ms = int((first_token - started) * 1000) if first_token is not None else None
        call.response_text = text if store_text else None
        call.usage = settle_usage(
            usage, request, text, complete=finished is not None and failure is None
        )
        notices: list[str] = []

        if finished is not None:
            call.finish_reason = finished.finish_reason
            call.response_model = finished.response_model
            call.request_id = call.request_id or finished.response_id
            if finished.extra:
                call.extra.update(finished.extra)

        error = self._classify_outcome(call, failure, finished)

        cost = self._cost(call, resolved, price_as, provider_cost, provider_cost_currency, notices)
        call.cost, call.currency, call.price_source = cost.amount, cost.currency, cost.source

        with deferred_signals():
            self.ledger.finish_call(call)
        if error is not None:
            # The CLI reports the recorded call (and --json prints it) on failure too.
            error.call = call  # type: ignore[attr-defined]
            raise error
        return RunResult(call=call, text=text, notices=notices)

    def _classify_outcome(
        self, call: Call, failure: BaseException | None, finished: Finished | None
    ) -> BaseException | None:
        """Set status and error fields; return the error to raise after recording."""
        if failure is None:
            if finished is not None and finished.finish_reason == CONTENT_FILTER:
                call.status, call.error_kind = "error", "content_filter"
                call.error_message = (
                    f"{call.provider} stopped the answer: its content filter blocked it."
                )
                return ProviderRefused(
                    call.error_message, "Rephrase the prompt.", kind="content_filter"
                )
            call.status = "ok"
            return None
        if isinstance(failure, KeyboardInterrupt | Interrupted | BrokenPipeError):
            call.status = "interrupted"
            if isinstance(failure, BrokenPipeError):
                call.error_kind, call.error_message = (
                    "stdout_closed",
                    "stdout was closed before the answer ended.",
                )
            elif isinstance(failure, Interrupted):
                call.error_kind, call.error_message = "terminated", failure.message
            else:
                call.error_kind, call.error_message = "interrupted", "Interrupted by Ctrl-C."
            return failure if isinstance(failure, Interrupted) else Interrupted(call.error_message)
        call.status = "error"
        if isinstance(failure, ProviderError):
            call.error_kind = failure.kind
        elif isinstance(failure, TokencliError):
            call.error_kind = type(failure).__name__.removesuffix("Error").lower() or "error"
        else:
            call.error_kind = "internal"
        call.error_message = redact(str(failure))[:2000]
        return failure

    def _cost(
        self,
        call: Call,
        resolved: ResolvedModel,
        price_as: tuple[ProviderConfig, str] | None,
        provider_cost: Decimal | None,
        provider_cost_currency: str | None,
        notices: list[str],
    ) -> Cost:
        try:
            cost = price_call(
                self.settings,
                resolved.provider,
                resolved.model,
                call.usage,
                when=parse_ts(call.ts),
                duration_ms=call.duration_ms or 0,
                provider_cost=provider_cost,
                provider_cost_currency=provider_cost_currency,
                price_as=price_as,
            )
        except Exception as exc:  # a broken price table must not lose the call
            notices.append(
                f"Could not price this call ({type(exc).__name__}); cost recorded as unknown."
            )
            return Cost(None, None, "unknown")
        if price_as is not None and cost.known and call.usage.source == COUNTED:
            # The real model would tokenize differently: the count is an estimate for it.
            call.usage = call.usage.with_source(ESTIMATED)
        if not cost.known:
            ref = f"{resolved.provider.name}:{price_as[1] if price_as else resolved.model}"
            try:
                first = self.ledger.notice_once(f"unknown-price:{ref}")
            except Exception:
                first = False
            if first:
                notices.append(
                    f"No price known for {ref}; its cost is recorded as unknown. "
                    f'Add [prices."{ref}"] with input and output per 1M tokens to the config to price it.'
                )
        return cost


def settle_usage(usage: Usage | None, request: ChatRequest, text: str, *, complete: bool) -> Usage:
    """The usage to record: reported when complete, else marked estimated.

    A call cut short has the provider's partial counts at best (Anthropic sends
    input counts first); output is then at least an estimate of the received text.
    """
    if usage is not None and complete and (usage.total_tokens or not text):
        return usage
    if usage is not None and usage.source == COUNTED:
        return usage  # exact running counts (mock, local models)
    estimated_input = estimate_tokens(request.system or "") + estimate_tokens(request.prompt_text)
    estimated_output = estimate_tokens(text)
    if usage is None:
        return Usage(input_tokens=estimated_input, output_tokens=estimated_output, source=ESTIMATED)
    return Usage(
        input_tokens=usage.input_tokens or estimated_input,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=max(usage.output_tokens, estimated_output),
        reasoning_tokens=usage.reasoning_tokens,
        source=ESTIMATED,
    )


# ------------------------------------------------------------------ signals


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until a ledger write is done, then deliver them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[signal.Signals] = []

    def hold(signum: int, _frame: object) -> None:
        caught.append(signal.Signals(signum))

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        handler = previous[caught[0]]
        if callable(handler):
            handler(caught[0], None)
        elif caught[0] == signal.SIGINT and handler != signal.SIG_IGN:
            raise KeyboardInterrupt
