"""The call pipeline without the CLI: an `Engine` over a temporary ledger, with
the mock provider or a scripted one speaking `providers.base` events."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tokencli.calls.engine import Engine, RunOptions, settle_usage
from tokencli.calls.guards import Guard, PlannedCall
from tokencli.calls.observers import Observer
from tokencli.calls.usage import COUNTED, ESTIMATED, REPORTED, Usage
from tokencli.clock import pinned_clock
from tokencli.errors import (
    CallFailed,
    ExitCode,
    LimitError,
    ProviderRefused,
    ProviderUnavailable,
    UsageError,
)
from tokencli.ledger import Call, Ledger
from tokencli.providers.base import (
    STOP,
    ChatRequest,
    Event,
    Finished,
    Message,
    ResponseStarted,
    TextDelta,
    UsageUpdate,
)
from tokencli.providers.registry import ProviderConfig
from tokencli.settings.loader import Settings, load_settings

NOW = datetime(2026, 3, 1, 12, 30, 15)

CONFIG = """
[defaults]
model = "fake:m"

[aliases]
sturdy = ["fake:m", "mock:echo"]

[providers.fake]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
self_hosted = true
max_retries = 0

[providers.flaky]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
self_hosted = true
max_retries = 1
"""


class Scripted:
    """A Provider that plays one script of events per call; an exception in a
    script is raised at that point, as a real provider's failure would be."""

    def __init__(self, config: ProviderConfig, *scripts: list[Event | Exception]) -> None:
        self.config = config
        self.scripts = list(scripts)
        self.requests: list[ChatRequest] = []

    def generate(self, request: ChatRequest) -> Iterator[Event]:
        self.requests.append(request)
        for step in self.scripts.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step

    def close(self) -> None:
        pass


def answer(text: str, input_tokens: int = 5, output_tokens: int = 3) -> list[Event | Exception]:
    return [
        ResponseStarted(request_id="req-1"),
        TextDelta(text),
        UsageUpdate(Usage(input_tokens=input_tokens, output_tokens=output_tokens)),
        Finished(STOP, "stop", "m-2026", "resp-1"),
    ]


@dataclass
class Seen:
    """An observer that notes each call and what the ledger held for it then."""

    settings: Settings
    calls: list[Call] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)

    def finished(self, call: Call) -> None:
        self.calls.append(call)
        ledger = Ledger.open(self.settings.paths.db)
        assert ledger is not None
        try:
            self.stored.append(ledger.get_call(call.id).status)
        finally:
            ledger.close()


class Broken:
    def finished(self, call: Call) -> None:
        raise RuntimeError("the webhook is down")


class Refuse:
    """A guard that refuses every call, recording it as `refusal_status` when set."""

    def __init__(self, refusal_status: str | None = None) -> None:
        self.refusal_status = refusal_status
        self.seen: list[PlannedCall] = []

    def check(self, attempt: PlannedCall) -> None:
        self.seen.append(attempt)
        raise LimitError("The monthly budget 'team' is spent.", "Raise it or wait.")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "config.toml").write_text(CONFIG)
    return load_settings({"TOKENCLI_HOME": str(tmp_path)})


def make_engine(
    settings: Settings,
    *providers: Scripted,
    notes: list[str] | None = None,
    guards: list[Guard] | None = None,
    observers: Sequence[Observer] = (),
) -> Engine:
    """An engine over the settings' ledger; no waiting, no jitter, time pinned at NOW."""

    def open_ledger() -> Ledger:
        ledger = Ledger.open(settings.paths.db)
        assert ledger is not None
        return ledger

    return Engine(
        settings,
        ledger=open_ledger,
        clock=pinned_clock(NOW),
        providers={p.config.name: p for p in providers},
        notify=(notes if notes is not None else []).append,
        sleep=lambda _: None,
        rng=lambda: 0.0,
        guards=guards,
        observers=observers,
    )


def rows(settings: Settings) -> list[Call]:
    ledger = Ledger.open(settings.paths.db)
    if ledger is None:
        return []
    try:
        return sorted(ledger.list_calls(limit=100), key=lambda c: c.id)
    finally:
        ledger.close()


def fake(settings: Settings, *scripts: list[Event | Exception], name: str = "fake") -> Scripted:
    return Scripted(settings.provider(name), *scripts)


# ----------------------------------------------------------------- outcomes


def test_an_ok_call_is_one_finished_row_stamped_by_the_clock(settings):
    engine = make_engine(settings, fake(settings, answer("Hello there.")))
    result = engine.run(RunOptions("Say hello.", project="site", tags={"team": "web"}))
    engine.close()

    (row,) = rows(settings)
    assert result.text == "Hello there."
    assert row.id == result.call.id
    assert row.ts == "2026-03-01T12:30:15.000000Z"
    assert (row.status, row.provider, row.model, row.project, row.tags) == (
        "ok",
        "fake",
        "m",
        "site",
        {"team": "web"},
    )
    assert (row.usage.input_tokens, row.usage.output_tokens, row.usage.source) == (5, 3, REPORTED)
    assert (row.request_id, row.finish_reason, row.response_model) == ("req-1", STOP, "m-2026")


def test_the_mock_provider_records_its_counted_usage(settings):
    engine = make_engine(settings)
    result = engine.run(RunOptions("one two three", model="mock:echo"))
    engine.close()

    (row,) = rows(settings)
    assert result.text == "one two three"
    assert (row.status, row.usage.input_tokens, row.usage.output_tokens, row.usage.source) == (
        "ok",
        3,
        3,
        COUNTED,
    )


def test_a_provider_error_is_recorded_and_raised_with_its_call(settings):
    refused = ProviderRefused("Invalid API key.", "Check the key.", kind="auth", status_code=401)
    engine = make_engine(settings, fake(settings, [ResponseStarted(request_id="req-9"), refused]))
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("Hi."))
    engine.close()

    failed = caught.value
    (row,) = rows(settings)
    assert failed.error is refused
    assert failed.call.id == row.id
    assert (failed.exit_code, failed.message, failed.hint) == (
        ExitCode.REFUSED,
        "Invalid API key.",
        "Check the key.",
    )
    assert (row.status, row.error_kind, row.request_id) == ("error", "auth", "req-9")
    assert row.error_message == "Invalid API key. Check the key."


def test_a_bug_in_a_provider_still_leaves_a_row(settings):
    engine = make_engine(settings, fake(settings, [ResponseStarted(), KeyError("choices")]))
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("Hi."))
    engine.close()

    (row,) = rows(settings)
    assert isinstance(caught.value.error, KeyError)
    assert caught.value.exit_code == ExitCode.BUG
    assert (row.status, row.error_kind) == ("error", "internal")


def test_a_retry_is_a_second_row_pointing_at_the_first(settings):
    overloaded = ProviderUnavailable("Overloaded.", kind="overloaded", retryable=True)
    provider = fake(settings, [overloaded], answer("Fine."), name="flaky")
    seen, notes = Seen(settings), []
    engine = make_engine(settings, provider, notes=notes, observers=[seen])
    result = engine.run(RunOptions("Hi.", model="flaky:m"))
    engine.close()

    first, second = rows(settings)
    assert (first.status, second.status) == ("error", "ok")
    assert second.id == result.call.id
    assert second.extra == {"attempt": 2, "retry_of": first.id}
    assert [c.id for c in seen.calls] == [first.id, second.id]
    assert notes == ["flaky is overloaded; retrying in 0.5 s (attempt 2 of 2)."]


def test_a_fallback_chain_moves_on_after_a_retryable_failure(settings):
    overloaded = ProviderUnavailable("Overloaded.", kind="overloaded", retryable=True)
    notes: list[str] = []
    engine = make_engine(settings, fake(settings, [overloaded]), notes=notes)
    result = engine.run(RunOptions("hello", model="sturdy"))
    engine.close()

    failed, answered = rows(settings)
    assert (failed.provider, failed.status, failed.alias) == ("fake", "error", "sturdy")
    assert (answered.provider, answered.status, answered.alias) == ("mock", "ok", "sturdy")
    assert result.text == "hello"
    assert notes == ["fake:m failed (overloaded); falling back to mock:echo."]


# ------------------------------------------------------------------- guards


def test_a_refusing_guard_writes_nothing_and_calls_nothing(settings):
    provider = fake(settings, answer("never"))
    guard = Refuse()
    engine = make_engine(settings, provider, guards=[guard])
    with pytest.raises(LimitError, match="budget 'team' is spent"):
        engine.run(RunOptions("Hi.", project="site"))
    engine.close()

    assert rows(settings) == []
    assert provider.requests == []
    (planned,) = guard.seen
    assert (planned.target.ref, planned.options.project, planned.attempt) == ("fake:m", "site", 1)
    assert planned.estimated_input == 1


def test_a_guard_may_have_its_refusal_recorded(settings):
    provider = fake(settings, answer("never"))
    seen = Seen(settings)
    engine = make_engine(settings, provider, guards=[Refuse("blocked")], observers=[seen])
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("Hi there, model.", project="site"))
    engine.close()

    (row,) = rows(settings)
    assert provider.requests == []
    assert isinstance(caught.value.error, LimitError)
    assert caught.value.exit_code == ExitCode.LIMIT
    assert caught.value.call.id == row.id
    assert (row.status, row.error_kind, row.project) == ("blocked", "limit", "site")
    assert row.error_message == "The monthly budget 'team' is spent. Raise it or wait."
    assert (row.usage.input_tokens, row.usage.output_tokens, row.usage.source) == (4, 0, ESTIMATED)
    assert seen.stored == ["blocked"]


def test_a_cached_answer_is_not_asked_of_the_guards(settings):
    engine = make_engine(settings)
    engine.run(RunOptions("same", model="mock:echo", cache=True))
    engine.close()
    guard = Refuse()
    engine = make_engine(settings, guards=[guard])
    cached = engine.run(RunOptions("same", model="mock:echo", cache=True))  # costs nothing
    engine.close()
    assert (cached.text, cached.call.status, guard.seen) == ("same", "cached", [])


def input_limited(tmp_path: Path, limit: int) -> Settings:
    (tmp_path / "config.toml").write_text(
        CONFIG + f'\n[models."fake:m"]\nmax_input_tokens = {limit}\n'
    )
    return load_settings({"TOKENCLI_HOME": str(tmp_path)})


def test_the_input_guard_lets_a_prompt_at_exactly_its_limit_through(tmp_path):
    settings = input_limited(tmp_path, 100)
    engine = make_engine(settings, fake(settings, answer("ok")))
    engine.run(RunOptions("abcd" * 100))  # estimated at 100 tokens
    engine.close()
    assert [r.status for r in rows(settings)] == ["ok"]


def test_the_input_guard_refuses_one_token_over_before_any_row(tmp_path):
    settings = input_limited(tmp_path, 100)
    provider = fake(settings, answer("never"))
    engine = make_engine(settings, provider)
    with pytest.raises(UsageError) as caught:
        engine.run(RunOptions("abcd" * 101))
    engine.close()

    assert caught.value.message == (
        "The prompt is about 101 tokens, over the 100-token limit (max_input_tokens) for fake:m."
    )
    assert caught.value.exit_code == ExitCode.USAGE
    assert rows(settings) == []
    assert provider.requests == []


def test_no_guards_means_no_input_limit(tmp_path):
    settings = input_limited(tmp_path, 1)
    engine = make_engine(settings, fake(settings, answer("ok")), guards=[])
    engine.run(RunOptions("abcd" * 50))
    engine.close()
    assert [r.status for r in rows(settings)] == ["ok"]


# ---------------------------------------------------------------- observers


def test_observers_see_every_finished_call_after_its_row_is_written(settings):
    refused = ProviderRefused("No credit left.", kind="billing")
    provider = fake(settings, answer("first"), [refused])
    seen = Seen(settings)
    engine = make_engine(settings, provider, observers=[seen])
    ok = engine.run(RunOptions("one"))
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("two"))
    engine.close()

    assert [c.id for c in seen.calls] == [ok.call.id, caught.value.call.id]
    assert seen.stored == ["ok", "error"]  # never the pending row


def test_observers_see_cached_answers(settings):
    seen = Seen(settings)
    engine = make_engine(settings, observers=[seen])
    engine.run(RunOptions("same", model="mock:echo", cache=True))
    cached = engine.run(RunOptions("same", model="mock:echo", cache=True))
    engine.close()
    assert cached.call.status == "cached"
    assert seen.stored == ["ok", "cached"]


def test_an_observer_that_raises_loses_nothing(settings):
    seen, notes = Seen(settings), []
    engine = make_engine(
        settings, fake(settings, answer("Hello.")), notes=notes, observers=[Broken(), seen]
    )
    result = engine.run(RunOptions("Hi."))
    engine.close()

    (row,) = rows(settings)
    assert (result.text, result.call.status, row.status) == ("Hello.", "ok", "ok")
    assert seen.stored == ["ok"]  # the next observer still heard of it
    assert notes == [
        f"Broken failed on call {row.id} (RuntimeError: the webhook is down); the call is recorded."
    ]


def test_an_observer_that_raises_keeps_a_failure_as_it_was(settings):
    refused = ProviderRefused("Invalid API key.", kind="auth")
    engine = make_engine(settings, fake(settings, [refused]), observers=[Broken()])
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("Hi."))
    engine.close()
    assert caught.value.error is refused
    assert caught.value.exit_code == ExitCode.REFUSED
    assert [r.status for r in rows(settings)] == ["error"]


# ------------------------------------------------------------ a cut stream


def request(prompt: str) -> ChatRequest:
    return ChatRequest(model="m", messages=(Message("user", prompt),))


def test_settle_usage_keeps_the_estimate_when_a_cut_stream_reported_less():
    partial = Usage(input_tokens=12, output_tokens=2)
    settled = settle_usage(partial, request("hi"), "abcd" * 10, complete=False)
    assert settled == Usage(input_tokens=12, output_tokens=10, source=ESTIMATED)


def test_settle_usage_keeps_the_report_when_a_cut_stream_reported_more():
    partial = Usage(input_tokens=12, cached_input_tokens=4, output_tokens=30)
    settled = settle_usage(partial, request("hi"), "abcd" * 10, complete=False)
    assert settled == Usage(
        input_tokens=12, cached_input_tokens=4, output_tokens=30, source=ESTIMATED
    )


def test_settle_usage_estimates_input_a_cut_stream_never_reported():
    settled = settle_usage(Usage(output_tokens=1), request("abcd" * 6), "abcd" * 3, complete=False)
    assert settled == Usage(input_tokens=6, output_tokens=3, source=ESTIMATED)


def test_a_stream_cut_mid_answer_records_the_larger_output(settings):
    cut = ProviderUnavailable("The connection closed mid-answer.", kind="stream_cut")
    script: list[Event | Exception] = [
        ResponseStarted(),
        UsageUpdate(Usage(input_tokens=7, output_tokens=1)),
        TextDelta("abcd" * 25),
        cut,
    ]
    engine = make_engine(settings, fake(settings, script))
    with pytest.raises(CallFailed) as caught:
        engine.run(RunOptions("Write a lot."))
    engine.close()

    (row,) = rows(settings)
    assert cut.had_output
    assert caught.value.error is cut
    assert (row.status, row.error_kind) == ("error", "stream_cut")
    assert (row.usage.input_tokens, row.usage.output_tokens, row.usage.source) == (
        7,
        25,
        ESTIMATED,
    )


# ---------------------------------------------------------------- layering


def test_resolving_a_model_does_not_import_the_engine():
    code = (
        "import sys, tokencli.calls.resolve, tokencli.pricing.counting;"
        "print('tokencli.calls.engine' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
