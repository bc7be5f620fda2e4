"""The call pipeline, in the order `Engine._run_on` runs it:

1. resolve: the model (or a fallback chain), the request, how it is priced;
2. the response cache: an identical earlier answer costs nothing;
3. guards (input size; budgets add theirs; the circuit breaker is asked
   last), then the wait for the shared rate limit: nothing is written before
   they pass;
4. the pending row;
5. the provider, then the finished row: usage, outcome, cost;
6. the circuit breaker counts the outcome; observers (alerts, anomaly rules,
   refill thresholds, gateway metrics);
7. retry what is worth retrying; a failure leaves as `CallFailed`, which
   carries the recorded call.

The row exists before the request leaves, and every way out of a call
(success, provider error, cut stream, Ctrl-C, SIGTERM, a closed stdout, a bug)
completes it with what is known. The ledger writes themselves run with
Ctrl-C deferred, so a second Ctrl-C cannot tear a row in half.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    CallFailed,
    ExitCode,
    Interrupted,
    ProviderError,
    ProviderRefused,
    ReaderGone,
    TokencliError,
    UsageError,
)
from ..ids import new_id
from ..ledger import Call, Ledger, format_ts, parse_ts
from ..ledger.budgets import Hold
from ..pricing.cost import Cost, needs_table, prefetch, price_call
from ..providers.base import (
    CONTENT_FILTER,
    ChatRequest,
    Finished,
    Provider,
    ResponseStarted,
    TextDelta,
    UsageUpdate,
    ValidatesRequests,
)
from ..providers.registry import ProviderConfig, load_protocol
from ..redact import redact
from ..settings.keys import KeyStore, require_key
from ..settings.loader import Settings
from .cache import request_key
from .circuit import CircuitBreaker, CircuitOpen
from .guards import AdmitsCalls, Guard, PlannedCall, default_guards, estimate_input
from .limits import DEFAULT_OUTPUT_RESERVE, RateLimiter, Reservation
from .observers import Observer
from .resolve import ResolvedModel, RunOptions, build_request, resolve_chain, resolve_price_as
from .retry import RetryPolicy, describe_failure, give_up_hint
from .signals import deferred_signals
from .usage import (
    COUNTED,
    ESTIMATED,
    Usage,
    check_cost,
    check_usage,
    estimate_tokens,
    provider_text,
)


@dataclass
class RunResult:
    call: Call
    text: str


@dataclass(frozen=True)
class _Outcome:
    """One attempt, recorded: its call, the text that arrived, what ended it badly."""

    call: Call
    text: str
    error: Exception | None


def _validate(provider: Provider, request: ChatRequest) -> None:
    """A provider that can check a request before anything is recorded does."""
    if isinstance(provider, ValidatesRequests):
        provider.validate(request)


class Engine:
    """Runs calls. One per process (or per batch); safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Callable[[], Ledger],
        clock: Clock = SYSTEM_CLOCK,
        providers: dict[str, Provider] | None = None,
        notify: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        guards: Sequence[Guard] | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.settings = settings
        # Asked in order before each attempt; None: the built-in ones (input size).
        # The circuit breaker is always asked, and last: it claims the trial call
        # after a cooldown, which a later refusal would leave dangling.
        self.circuits = CircuitBreaker(settings, lambda: self.ledger, clock.timestamp)
        self.guards: tuple[Guard, ...] = (
            *(default_guards(settings, clock) if guards is None else guards),
            self.circuits,
        )
        self.observers: tuple[Observer, ...] = tuple(observers)
        self._ledger_factory = ledger
        self._local = threading.local()  # one SQLite connection per thread
        self._ledgers: list[Ledger] = []
        self._lock = threading.Lock()
        self.clock = clock
        self.notify = notify
        self.sleep = sleep
        self.rng = rng
        # A provider built once serves every call of this process (batch, compare).
        self._providers: dict[str, Provider] = providers if providers is not None else {}
        self.keys = KeyStore(settings.paths.keys)
        self.limiter = RateLimiter(settings, lambda: self.ledger, clock.timestamp, notify)

    @property
    def ledger(self) -> Ledger:
        ledger = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._ledger_factory()
            self._local.ledger = ledger
            with self._lock:
                self._ledgers.append(ledger)
        return ledger

    def close(self) -> None:
        for provider in self._providers.values():
            with contextlib.suppress(Exception):
                provider.close()
        self._providers.clear()
        for ledger in self._ledgers:
            with contextlib.suppress(Exception):
                ledger.close()
        self._ledgers.clear()
        self._local = threading.local()

    def provider_for(self, config: ProviderConfig) -> Provider:
        with self._lock:
            found = self._providers.get(config.name)
            if found is None:
                key = require_key(config, self.settings.env, self.keys)
                found = load_protocol(config.type)(config, key)
                self._providers[config.name] = found
            return found

    # ------------------------------------------------------------------- run

    def run(self, opts: RunOptions, on_text: Callable[[str], None] = lambda _: None) -> RunResult:
        """Run one prompt on the first model of its chain that answers.

        Raises `CallFailed` (carrying the recorded call) when a call was made and
        failed, or the `TokencliError` that refused it before anything was written.
        """
        if not opts.prompt.strip():
            raise UsageError(
                "The prompt is empty.", "Pass a prompt argument or pipe text on stdin."
            )
        chain = resolve_chain(self.settings, opts.model)
        for index, target in enumerate(chain):
            try:
                return self._run_on(target, opts, on_text)
            except (CallFailed, ProviderError) as exc:
                error = exc.error if isinstance(exc, CallFailed) else exc
                nxt = chain[index + 1] if index + 1 < len(chain) else None
                if isinstance(error, CircuitOpen) and nxt is not None:
                    # Set aside: nothing was sent or written; straight to the next model.
                    self.notify(f"{error.summary}; using {nxt.ref}.")
                    continue
                if (
                    nxt is None
                    or not isinstance(error, ProviderError)
                    or not error.retryable
                    or error.had_output
                ):
                    raise
                self.notify(f"{target.ref} failed ({error.kind}); falling back to {nxt.ref}.")
        raise AssertionError("unreachable: a chain has at least one model")

    def _run_on(
        self, target: ResolvedModel, opts: RunOptions, on_text: Callable[[str], None]
    ) -> RunResult:
        # 1. Resolve: what is sent, and how it is priced.
        price_as = resolve_price_as(self.settings, target, opts.price_as)
        provider = self.provider_for(target.provider)
        request = build_request(self.settings, target, opts)
        _validate(provider, request)
        plan = PlannedCall.of(target, request, opts)

        # 2. The response cache.
        use_cache = opts.cache if opts.cache is not None else target.provider.cache
        cache_key = request_key(target.provider.name, request) if use_cache else None
        if cache_key:
            hit = self._cached(target, cache_key)
            if hit is not None:
                return self._answer_from_cache(hit, plan, cache_key, on_text)

        wants_prices = needs_table(self.settings, target.provider, target.model, price_as)
        policy = RetryPolicy.of(target.provider)
        waited = 0.0
        while True:
            # 3. Guards, then the shared rate limit: nothing is written until they pass.
            self._check_guards(plan, cache_key)
            if wants_prices:
                prefetch(self.settings)  # import the price table while the request is in flight
            reservation = self._wait_for_rate_limit(
                target, plan.estimated_input + (request.max_tokens or DEFAULT_OUTPUT_RESERVE)
            )
            # 4. The pending row, with what budgets reserve for it.
            call = self._new_call(plan, cache_key)
            self._insert_pending(call, plan)
            # 5-6. The provider, the finished row, the observers.
            outcome = self._execute(call, provider, request, target, price_as, on_text)
            error = outcome.error
            if error is None:
                self.limiter.settle(
                    target.provider.name, target.model, reservation, call.usage.total_tokens
                )
                return RunResult(call=call, text=outcome.text)
            # 7. Retry, or give up.
            if not isinstance(error, ProviderError):
                raise CallFailed(error, call) from error
            self._learn_from_failure(target, error)
            delay = policy.delay(plan.attempt, error, waited, self.rng)
            if delay is not None and self.circuits.is_open(target):
                delay = None  # set aside (by this failure or another process): stop here
            if delay is None:
                if plan.attempt > 1 or error.retryable:
                    error.hint = give_up_hint(error, plan.attempt, policy)
                raise CallFailed(error, call) from error
            self.notify(
                f"{target.provider.name} {describe_failure(error)}; retrying in {delay:.1f} s "
                f"(attempt {plan.attempt + 1} of {policy.max_retries + 1})."
            )
            self.sleep(delay)
            waited += delay
            plan = replace(plan, attempt=plan.attempt + 1, retry_of=plan.retry_of or call.id)

    def _new_call(self, plan: PlannedCall, cache_key: str | None) -> Call:
        """The attempt's row, not yet written."""
        request, opts, target = plan.request, plan.options, plan.target
        store_text = self.settings.defaults.store_text
        params = {
            k: v
            for k, v in (("max_tokens", request.max_tokens), ("temperature", request.temperature))
            if v is not None
        }
        call = Call(
            id=new_id(),
            ts=format_ts(self.clock.now()),
            provider=target.provider.name,
            model=target.model,
            pid=os.getpid(),
            alias=target.alias,
            project=opts.project if opts.project is not None else self.settings.defaults.project,
            tags=dict(opts.tags),
            prompt_name=opts.prompt_name,
            prompt_version=opts.prompt_version,
            stream=request.stream,
            params=params,
            system_text=request.system if store_text else None,
            prompt_text=request.prompt_text if store_text else None,
            cache_key=cache_key,
            batch_id=opts.batch_id,
            batch_item=opts.batch_item,
        )
        if plan.attempt > 1:
            call.extra.update({"attempt": plan.attempt, "retry_of": plan.retry_of})
        return call

    def open_call(self, plan: PlannedCall, note: Callable[[Call], None] = lambda _: None) -> Call:
        """Guards, then the pending row, as `_run_on` does before it sends (the gateway's way
        in; `complete` is its way out). `note` adds to the row before it is written. Raises
        what refused the call: `CallFailed` when the refusal was recorded (a budget)."""
        self._check_guards(plan, None)
        call = self._new_call(plan, None)
        note(call)
        self._insert_pending(call, plan)
        return call

    # ------------------------------------------------- guards and observers

    def _check_guards(self, plan: PlannedCall, cache_key: str | None) -> None:
        """Let each guard refuse the attempt; record the refusal if the guard asks to."""
        for guard in self.guards:
            try:
                guard.check(plan)
            except TokencliError as refusal:
                status = guard.refusal_status
                if status is None:
                    raise
                call = self._new_call(plan, cache_key)
                call.status = status
                call.error_kind = _error_kind(refusal)
                call.error_message = redact(str(refusal))[:2000]
                call.usage = Usage(input_tokens=plan.estimated_input, source=ESTIMATED)
                self._record(call)
                raise CallFailed(refusal, call) from refusal

    def _insert_pending(self, call: Call, plan: PlannedCall) -> None:
        """Write the pending row; guards that need the write lock (budgets) admit it first,
        in the same transaction, and a refusal is recorded like any guard's."""
        admitters = [g for g in self.guards if isinstance(g, AdmitsCalls)]

        def admit(ledger: Ledger) -> list[Hold]:
            return [hold for g in admitters for hold in g.admit(plan, call, ledger)]

        try:
            with deferred_signals():
                self.ledger.insert_call(call, admit=admit if admitters else None)
        except TokencliError as refusal:
            call.status = "blocked"
            call.error_kind = _error_kind(refusal)
            call.error_message = redact(str(refusal))[:2000]
            self._record(call)  # no tokens: a refused call spent nothing
            # Nothing was sent: no verdict for the breaker, and a trial it granted goes back.
            self.circuits.settle(plan.target, refusal)
            raise CallFailed(refusal, call) from refusal

    def _record(self, call: Call) -> None:
        """Write a call that is already finished (cached, refused), then tell the observers."""
        with deferred_signals():
            self.ledger.insert_call(call)
        self._observe(call)

    def _observe(self, call: Call) -> None:
        """Tell every observer about a finished row; one that fails is reported and skipped."""
        for observer in self.observers:
            try:
                observer.finished(call)
            except Exception as exc:
                self.notify(
                    f"{type(observer).__name__} failed on call {call.id} "
                    f"({type(exc).__name__}: {redact(str(exc))[:200]}); the call is recorded."
                )

    def _count_for_circuits(self, target: ResolvedModel, error: Exception | None) -> None:
        """The attempt's outcome, counted by the circuit breaker; say when it opens one."""
        try:
            opened = self.circuits.settle(target, error)
        except Exception as exc:  # shared state that cannot be written must not lose the call
            self.notify(
                f"The circuit breaker could not record {target.ref}'s outcome "
                f"({type(exc).__name__}: {redact(str(exc))[:200]})."
            )
            return
        for circuit in opened:
            if isinstance(error, ProviderError) and not error.retryable:
                # A refusal (billing) ends the call now: say it in its sentence, not a line apart.
                aside = f"tokencli sets {circuit.key} aside until {self.circuits.until(circuit)}."
                error.hint = f"{error.hint} {aside}" if error.hint else aside
            else:
                self.notify(f"{self.circuits.describe(circuit)}.")

    def _wait_for_rate_limit(self, target: ResolvedModel, estimated_tokens: int) -> Reservation:
        reservation = self.limiter.acquire(target.provider.name, target.model, estimated_tokens)
        if reservation.wait > 0.05:
            rpm, tpm = self.limiter.limits(target.provider.name, target.model)
            what = ", ".join(
                x
                for x in (
                    f"{rpm} requests/min" if rpm else "",
                    f"{tpm:,} tokens/min" if tpm else "",
                )
                if x
            )
            self.notify(
                f"waiting {reservation.wait:.1f} s for {target.ref}'s rate limit"
                + (f" ({what})." if what else ".")
            )
        if reservation.wait > 0:
            self.sleep(reservation.wait)
        return reservation

    def _learn_from_failure(self, target: ResolvedModel, exc: ProviderError) -> None:
        if exc.headers:
            self.limiter.learn(target.provider.name, target.model, exc.headers)
        if exc.kind == "rate_limit" and exc.retry_after:
            # Everyone on this machine waits, not only this process.
            self.limiter.hold(target.provider.name, target.model, exc.retry_after)

    # ----------------------------------------------------------------- cache

    def _cached(self, target: ResolvedModel, cache_key: str) -> Call | None:
        ttl = target.provider.cache_ttl
        not_before = format_ts(self.clock.now() - timedelta(seconds=float(ttl))) if ttl else None
        return self.ledger.cached_answer(cache_key, not_before)

    def _answer_from_cache(
        self, hit: Call, plan: PlannedCall, cache_key: str, on_text: Callable[[str], None]
    ) -> RunResult:
        """No call is made: the row records what the answer would have cost (the saving)."""
        text = hit.response_text or ""
        call = self._new_call(plan, cache_key)
        call.status = "cached"
        call.usage = hit.usage
        call.cost, call.currency = hit.cost, hit.currency
        call.price_source = f"saved: cached answer of {hit.id}"
        call.finish_reason, call.response_model = hit.finish_reason, hit.response_model
        call.duration_ms, call.ttft_ms = 0, 0
        call.extra = {"cached_from": hit.id}
        call.response_text = text if self.settings.defaults.store_text else None
        self._record(call)
        if text:
            on_text(text)
        return RunResult(call=call, text=text)

    # -------------------------------------------------------------- one call

    def _execute(
        self,
        call: Call,
        provider: Provider,
        request: ChatRequest,
        resolved: ResolvedModel,
        price_as: tuple[ProviderConfig, str] | None,
        on_text: Callable[[str], None],
    ) -> _Outcome:
        """Send the request, then complete the row with what came back, whatever happened."""
        parts: list[str] = []
        usage: Usage | None = None
        provider_cost: Decimal | None = None
        provider_cost_currency: str | None = None
        finished: Finished | None = None
        failure: Exception | KeyboardInterrupt | None = None
        started = time.monotonic()
        first_token: float | None = None
        # Once the provider reported a usage no call can have, none of its reports is trusted.
        distrusted = False
        try:
            for event in provider.generate(request):
                if isinstance(event, TextDelta):
                    if first_token is None:
                        first_token = time.monotonic()
                    parts.append(event.text)
                    on_text(event.text)
                elif isinstance(event, UsageUpdate):
                    checked, note = check_usage(event.usage)
                    if note and not distrusted:
                        self.notify(f"{call.provider} {note}")
                    distrusted = distrusted or checked is None
                    usage = None if distrusted else checked
                    reported, note = check_cost(event.provider_cost)
                    if note:
                        self.notify(f"{call.provider} {note}")
                    if reported is not None:
                        provider_cost, provider_cost_currency = (
                            reported,
                            event.provider_cost_currency,
                        )
                elif isinstance(event, ResponseStarted):
                    call.request_id = provider_text(event.request_id)
                    if event.headers:
                        self.limiter.learn(resolved.provider.name, resolved.model, event.headers)
                elif isinstance(event, Finished):
                    finished = event
        except (KeyboardInterrupt, Interrupted, BrokenPipeError) as exc:
            failure = exc
        except ProviderError as exc:
            failure = exc
            exc.had_output = bool(parts)
            call.request_id = call.request_id or provider_text(exc.request_id)
        except TokencliError as exc:
            failure = exc
        except Exception as exc:  # a bug: still record the call, then let it surface
            failure = exc

        ended = time.monotonic()
        text = "".join(parts)
        call.duration_ms = int((ended - started) * 1000)
        call.ttft_ms = int((first_token - started) * 1000) if first_token is not None else None
        error = self.complete(
            call, request, resolved, price_as, text, usage, finished, failure,
            provider_cost, provider_cost_currency, distrusted=distrusted,
        )  # fmt: skip
        return _Outcome(call, text, error)

    def complete(
        self,
        call: Call,
        request: ChatRequest,
        resolved: ResolvedModel,
        price_as: tuple[ProviderConfig, str] | None,
        text: str,
        usage: Usage | None,
        finished: Finished | None,
        failure: Exception | KeyboardInterrupt | None,
        provider_cost: Decimal | None = None,
        provider_cost_currency: str | None = None,
        *,
        distrusted: bool = False,
    ) -> Exception | None:
        """Finish a pending row with what came back (the gateway relays, then calls this):
        usage settled, status classified, cost priced, the breaker and observers told.
        Returns the error that ended the call, if one did.

        What the provider reported is checked here, whoever read it (`_execute`
        checks each report as it comes, so a distrusted stream stays distrusted;
        checking a value twice says nothing twice)."""
        if usage is not None:
            usage, note = check_usage(usage)
            if note:
                self.notify(f"{call.provider} {note}")
            distrusted = distrusted or usage is None
        provider_cost, note = check_cost(provider_cost)
        if note:
            self.notify(f"{call.provider} {note}")
        call.request_id = provider_text(call.request_id)
        call.response_text = text if self.settings.defaults.store_text else None
        call.usage = settle_usage(
            usage,
            request,
            text,
            complete=finished is not None and failure is None and not distrusted,
        )

        if finished is not None:
            call.finish_reason = provider_text(finished.finish_reason, 40)
            call.response_model = provider_text(finished.response_model)
            call.request_id = call.request_id or provider_text(finished.response_id)
            if finished.extra:
                call.extra.update(finished.extra)

        error = self._classify_outcome(call, failure, finished)

        cost = self._cost(call, resolved, price_as, provider_cost, provider_cost_currency)
        call.cost, call.currency, call.price_source = cost.amount, cost.currency, cost.source

        with deferred_signals():
            kept = self.ledger.finish_call(call)
        if kept:  # the ledger could not be written: the recovery journal holds the call
            self.notify(kept)
        self._count_for_circuits(resolved, error)
        self._observe(call)
        return error

    def _classify_outcome(
        self, call: Call, failure: Exception | KeyboardInterrupt | None, finished: Finished | None
    ) -> Exception | None:
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
                # The gateway's disconnected client says so in its own kind.
                kind = getattr(failure, "kind", "terminated")
                call.error_kind, call.error_message = kind, failure.message
            else:
                call.error_kind, call.error_message = "interrupted", "Interrupted by Ctrl-C."
            if isinstance(failure, Interrupted):
                return failure
            # A reader that went away (`| head`) needs no message: like SIGPIPE, stay quiet
            # (and exit as SIGPIPE would, 141; a closed stdout, `>&-`, stays 130).
            stopped = Interrupted(call.error_message, quiet=isinstance(failure, BrokenPipeError))
            if isinstance(failure, ReaderGone):
                stopped.exit_code = ExitCode.BROKEN_PIPE
            return stopped
        call.status = "error"
        call.error_kind = _error_kind(failure)
        call.error_message = redact(str(failure))[:2000]
        return failure

    def _cost(
        self,
        call: Call,
        resolved: ResolvedModel,
        price_as: tuple[ProviderConfig, str] | None,
        provider_cost: Decimal | None,
        provider_cost_currency: str | None,
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
            reason = str(exc) if isinstance(exc, TokencliError) else type(exc).__name__
            self.notify(f"Could not price this call ({reason}); cost recorded as unknown.")
            return Cost(None, None, "unknown")
        if cost.read is not None:
            self._stale_list_hint(cost.read)
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
                self.notify(
                    f"No price known for {ref}; its cost is recorded as unknown. "
                    f'Add [prices."{ref}"] with input and output per 1M tokens to the config to price it.'
                )
        return cost

    def _stale_list_hint(self, read: date) -> None:
        """Once a month: the bundled list that priced this call is getting old."""
        from ..pricing.cny import stale_days, stale_message

        now = self.clock.now()
        age = stale_days(read, now.date())
        if age is None:
            return
        try:
            first = self.ledger.notice_once(f"cny-list-stale:{now:%Y-%m}")
        except Exception:
            first = False
        if first:
            self.notify(stale_message(read, age))


def _error_kind(error: Exception) -> str:
    """What the ledger records as `error_kind` for an error."""
    if isinstance(error, ProviderError):
        return error.kind
    if isinstance(error, TokencliError):
        return type(error).__name__.removesuffix("Error").lower() or "error"
    return "internal"


def settle_usage(usage: Usage | None, request: ChatRequest, text: str, *, complete: bool) -> Usage:
    """The usage to record: reported when complete, else marked estimated.

    A call cut short has the provider's partial counts at best (Anthropic sends
    input counts first); output is then at least an estimate of the received text.
    """
    if usage is not None and complete and (usage.total_tokens or not text):
        return usage
    if usage is not None and usage.source == COUNTED:
        return usage  # exact running counts (mock, local models)
    estimated_input = estimate_input(request)
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
