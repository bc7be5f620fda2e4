"""The circuit breaker: a model or provider that keeps failing is set aside for a
cooldown, across processes, then one trial call decides.

Core tests drive an `Engine` with scripted providers and a clock whose wall
time (`timestamp()`) the test moves; the CLI tests use the loopback server and
real processes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ledger_rows, provider_config, subprocess_env, write_config
from tests.fakes import json_reply, openai_completion, openai_usage
from tests.test_engine import Scripted, answer
from tokencli.calls.circuit import CircuitOpen
from tokencli.calls.engine import Engine, RunOptions
from tokencli.clock import Clock
from tokencli.errors import CallFailed, ExitCode, ProviderRefused, ProviderUnavailable
from tokencli.ledger import Ledger, circuits
from tokencli.ledger.store import host_name
from tokencli.settings.loader import Settings, load_settings

# The recorded time (TOKENCLI_NOW-like) and the wall time the breaker runs on differ on purpose.
PINNED = datetime(2026, 3, 1, 12, 30, 15, tzinfo=UTC)
WALL = datetime(2026, 11, 20, 9, 0, 0, tzinfo=UTC).timestamp()

CONFIG = """
[defaults]
model = "fake:m"
timezone = "UTC"

[aliases]
chain = ["fake:m", "mock:echo"]
same = ["fake:m", "fake:n"]

[alerts]
max_consecutive_failures = 3
cooldown = 60

[providers.fake]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
self_hosted = true
max_retries = 0

[providers.flaky]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
self_hosted = true
max_retries = 5
"""


class WallClock(Clock):
    """`now()` pinned (what rows record); `timestamp()` the wall time the test moves."""

    def __init__(self) -> None:
        super().__init__(PINNED)
        self.wall = WALL

    def timestamp(self) -> float:
        return self.wall


def overloaded() -> ProviderUnavailable:
    return ProviderUnavailable("Overloaded.", kind="overloaded", status_code=503, retryable=True)


def bad_request() -> ProviderRefused:
    return ProviderRefused("Bad request.", kind="bad_request", status_code=400)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "config.toml").write_text(CONFIG)
    return load_settings({"TOKENCLI_HOME": str(tmp_path)})


class Harness:
    """An engine over the settings' ledger whose provider plays scripts one call at a time."""

    def __init__(self, settings: Settings, clock: WallClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or WallClock()
        self.notes: list[str] = []
        self.providers = {name: Scripted(settings.provider(name)) for name in ("fake", "flaky")}

    def engine(self) -> Engine:
        def open_ledger() -> Ledger:
            ledger = Ledger.open(self.settings.paths.db)
            assert ledger is not None
            return ledger

        return Engine(
            self.settings,
            ledger=open_ledger,
            clock=self.clock,
            providers=dict(self.providers),
            notify=self.notes.append,
            sleep=lambda _: None,
            rng=lambda: 0.0,
        )

    def run(self, *script: object, model: str = "fake:m", provider: str = "fake") -> object:
        """One call playing `script` (none: it must not be sent); its text, or its error."""
        if script:
            self.providers[provider].scripts.append(list(script))  # type: ignore[arg-type]
        engine = self.engine()
        try:
            return engine.run(RunOptions("Hi.", model=model)).text
        except (CallFailed, CircuitOpen) as exc:
            return exc
        finally:
            engine.close()

    def sent(self, provider: str = "fake") -> int:
        return len(self.providers[provider].requests)

    def state(self) -> list[tuple[str, str, int, str | None]]:
        ledger = Ledger.open(self.settings.paths.db)
        assert ledger is not None
        try:
            return [
                (c.key, c.state, c.failures, c.reason)
                for c in circuits.open_circuits(ledger, self.clock.wall)
            ]
        finally:
            ledger.close()


def call_rows(settings: Settings) -> list[tuple[str, str, str | None]]:
    ledger = Ledger.open(settings.paths.db)
    assert ledger is not None
    try:
        calls = sorted(ledger.list_calls(limit=100), key=lambda c: c.id)
        return [(f"{c.provider}:{c.model}", c.status, c.error_kind) for c in calls]
    finally:
        ledger.close()


# ----------------------------------------------------------------- opening


def test_it_opens_at_the_threshold_and_not_before(settings):
    h = Harness(settings)
    for _ in range(2):
        assert isinstance(h.run(overloaded()), CallFailed)
    assert h.state() == [] and h.notes == []  # two in a row: still closed

    third = h.run(overloaded())
    assert isinstance(third, CallFailed) and third.exit_code == ExitCode.UNAVAILABLE
    assert h.notes == ["fake:m is set aside until 09:01:00 after 3 failures in a row (overloaded)."]
    assert h.state() == [("fake:m", "open", 3, "3 failures in a row (overloaded)")]

    refused = h.run()
    assert isinstance(refused, CircuitOpen)
    assert refused.exit_code == ExitCode.UNAVAILABLE
    assert str(refused) == (
        "fake:m is set aside until 09:01:00 after 3 failures in a row (overloaded); "
        "it will be tried again then. Run again after that, or pick another model with -m "
        "(an alias may name a fallback chain)."
    )
    assert h.sent() == 3  # the fourth request never left
    assert len(call_rows(settings)) == 3  # and left no row


def test_a_success_in_between_starts_the_count_again(settings):
    h = Harness(settings)
    assert isinstance(h.run(overloaded()), CallFailed)
    assert isinstance(h.run(overloaded()), CallFailed)
    assert h.run(*answer("fine")) == "fine"
    assert isinstance(h.run(overloaded()), CallFailed)
    assert isinstance(h.run(overloaded()), CallFailed)
    assert h.state() == [] and h.notes == []


def test_refusals_that_say_nothing_about_health_are_not_counted(settings):
    h = Harness(settings)
    assert isinstance(h.run(overloaded()), CallFailed)
    assert isinstance(h.run(overloaded()), CallFailed)
    for _ in range(3):
        failed = h.run(bad_request())
        assert isinstance(failed, CallFailed) and failed.exit_code == ExitCode.REFUSED
    assert h.state() == []
    # Nor do they reset the count: the next retryable failure is the third in a row.
    assert isinstance(h.run(overloaded()), CallFailed)
    assert [key for key, *_ in h.state()] == ["fake:m"]


def test_retries_within_one_call_count_and_stop_once_it_opens(settings):
    h = Harness(settings)
    h.providers["flaky"].scripts[:] = [[overloaded()] for _ in range(6)]
    failed = h.run(model="flaky:m", provider="flaky")
    # max_retries = 5 allows six attempts; the breaker opened at the third.
    assert isinstance(failed, CallFailed) and failed.exit_code == ExitCode.UNAVAILABLE
    assert h.sent("flaky") == 3
    assert h.notes == [
        "flaky is overloaded; retrying in 0.5 s (attempt 2 of 6).",
        "flaky is overloaded; retrying in 1.0 s (attempt 3 of 6).",
        "flaky:m is set aside until 09:01:00 after 3 failures in a row (overloaded).",
    ]
    assert [s for _, s, _ in call_rows(settings)] == ["error"] * 3


def test_one_model_failing_sets_aside_that_model_not_its_provider(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    assert [key for key, *_ in h.state()] == ["fake:m"]
    assert h.run(*answer("other model"), model="fake:n") == "other model"


def test_failures_across_models_set_aside_the_provider(settings):
    h = Harness(settings)
    h.run(overloaded(), model="fake:a")
    h.run(overloaded(), model="fake:b")
    h.run(overloaded(), model="fake:c")
    assert [key for key, *_ in h.state()] == ["fake"]
    refused = h.run(model="fake:d")
    assert isinstance(refused, CircuitOpen)
    assert refused.summary == (
        "fake is set aside until 09:01:00 after 3 failures in a row (overloaded)"
    )


def test_a_billing_refusal_sets_the_provider_aside_at_once(settings):
    h = Harness(settings)
    billing = ProviderRefused("No credit left.", kind="billing", status_code=402)
    failed = h.run(billing)
    assert isinstance(failed, CallFailed) and failed.exit_code == ExitCode.REFUSED
    assert failed.hint == "tokencli sets fake aside until 09:01:00."  # one sentence, no notice
    assert h.notes == []
    assert h.state() == [
        ("fake", "open", 1, "a billing refusal (out of credit or quota)"),
    ]
    refused = h.run(model="fake:other")
    assert isinstance(refused, CircuitOpen) and refused.exit_code == ExitCode.UNAVAILABLE
    assert refused.hint == "Top up the account, or pick another model with -m."
    assert h.sent() == 1

    # `refill add` (once the account has money) closes it before the cooldown ends.
    ledger = Ledger.open(settings.paths.db)
    assert ledger is not None
    assert circuits.reset(ledger, "fake") == 1
    ledger.close()
    h.providers["fake"].scripts.clear()
    assert h.run(*answer("back")) == "back"


# -------------------------------------------------------------- while open


def test_an_open_model_goes_straight_to_the_fallback(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    h.notes.clear()
    h.providers["fake"].scripts.clear()

    assert h.run(model="chain") == "Hi."
    assert h.sent() == 3  # nothing more reached the first model
    assert h.notes == [
        "fake:m is set aside until 09:01:00 after 3 failures in a row (overloaded); "
        "using mock:echo."
    ]
    assert call_rows(settings)[3:] == [("mock:echo", "ok", None)]  # no row for fake:m


def test_an_open_provider_skips_each_of_its_models_in_the_chain(settings):
    h = Harness(settings)
    h.run(ProviderRefused("No credit left.", kind="billing", status_code=402))
    h.providers["fake"].scripts.clear()
    refused = h.run(model="same")
    assert isinstance(refused, CircuitOpen) and refused.exit_code == ExitCode.UNAVAILABLE
    assert h.notes[-1].startswith("fake is set aside until 09:01:00 after a billing refusal")
    assert h.notes[-1].endswith("; using fake:n.")
    assert h.sent() == 1


# -------------------------------------------------------------- the trial


def test_after_the_cooldown_a_trial_that_answers_closes_it(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    h.clock.wall += 59
    assert isinstance(h.run(), CircuitOpen)
    h.providers["fake"].scripts.clear()
    h.clock.wall += 1
    assert h.run(*answer("back")) == "back"
    assert h.state() == []
    # Closed with the count cleared: two more failures do not open it.
    h.run(overloaded())
    h.run(overloaded())
    assert h.state() == []


def test_a_trial_that_fails_sets_it_aside_for_another_cooldown(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    h.clock.wall += 60
    h.notes.clear()
    failed = h.run(overloaded())
    assert isinstance(failed, CallFailed)
    assert h.notes == ["fake:m is set aside until 09:02:00 after 4 failures in a row (overloaded)."]
    assert h.state() == [("fake:m", "open", 4, "4 failures in a row (overloaded)")]
    assert h.sent() == 4


def test_a_trial_without_a_verdict_lets_the_next_call_try(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    h.clock.wall += 60
    assert isinstance(h.run(bad_request()), CallFailed)
    assert h.state() == [("fake:m", "half_open", 3, "3 failures in a row (overloaded)")]
    assert h.run(*answer("back")) == "back"
    assert h.state() == []


def test_exactly_one_caller_holds_the_trial(settings):
    ledger = Ledger.open(settings.paths.db)
    assert ledger is not None
    try:
        keys = ["fake", "fake:m"]
        circuits.open_now(ledger, "fake:m", reason="r", kind="server", now=0.0, until=60.0)
        assert circuits.admit(ledger, keys, 30.0, "h:1:a", 60.0).refused is not None
        first = circuits.admit(ledger, keys, 61.0, "h:1:a", 60.0)
        second = circuits.admit(ledger, keys, 62.0, "h:1:b", 60.0)
        assert first.probes == ("fake:m",) and first.refused is None
        assert second.refused is not None and second.refused.probe_owner == "h:1:a"
        # A trial that runs longer than the cooldown is presumed lost; the next call takes over.
        third = circuits.admit(ledger, keys, 122.0, "h:1:c", 60.0)
        assert third.probes == ("fake:m",)
    finally:
        ledger.close()


def test_a_trial_whose_process_died_is_taken_over(settings):
    proc = subprocess.Popen(["true"])
    proc.wait()
    ledger = Ledger.open(settings.paths.db)
    assert ledger is not None
    try:
        circuits.open_now(ledger, "fake:m", reason="r", kind="server", now=0.0, until=60.0)
        dead_owner = f"{host_name()}:{proc.pid}:x"
        assert circuits.admit(ledger, ["fake:m"], 61.0, dead_owner, 600.0).probes
        assert circuits.admit(ledger, ["fake:m"], 62.0, "h:1:y", 600.0).probes == ("fake:m",)
    finally:
        ledger.close()


def test_the_cooldown_runs_on_wall_time_not_the_pinned_clock(settings):
    h = Harness(settings)
    for _ in range(3):
        h.run(overloaded())
    ledger = Ledger.open(settings.paths.db)
    assert ledger is not None
    (circuit,) = circuits.open_circuits(ledger, WALL)
    ledger.close()
    assert (circuit.opened_at, circuit.open_until) == (WALL, WALL + 60)


def test_the_breaker_can_be_turned_off(tmp_path):
    (tmp_path / "config.toml").write_text(
        CONFIG.replace("max_consecutive_failures = 3", "max_consecutive_failures = 0")
    )
    h = Harness(load_settings({"TOKENCLI_HOME": str(tmp_path)}))
    for _ in range(5):
        assert isinstance(h.run(overloaded()), CallFailed)
    assert h.run(*answer("fine")) == "fine"
    assert h.state() == [] and h.notes == []


# ------------------------------------------------------ the CLI, processes


OK = openai_completion("fine", openai_usage(10, 1))
UNAVAILABLE = json_reply({"error": {"message": "Service Unavailable"}}, 503)


def cli_setup(home: Path, server, alias: str = "") -> None:
    write_config(
        home,
        "[alerts]\nmax_consecutive_failures = 2\ncooldown = 600\n"
        + provider_config("fake", "openai", server.url + "/v1", max_retries=0, prices_from="openai")
        + alias,
    )


def test_cli_sets_a_failing_model_aside_for_other_processes(cli, home, server, tokencli_exe):
    cli_setup(home, server)
    server.queue(UNAVAILABLE, UNAVAILABLE)
    first = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert first.exit_code == 5 and "set aside" not in first.stderr
    second = cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    assert second.exit_code == 5
    assert "tokencli: fake:gpt-4o-mini is set aside until " in second.stderr
    assert "after 2 failures in a row (overloaded)." in second.stderr

    # Another process, with TOKENCLI_NOW pinned far in the past, sees it set aside too.
    proc = subprocess.run(
        [*tokencli_exe, "run", "-m", "fake:gpt-4o-mini", "--no-stream", "q"],
        env=subprocess_env(home, TOKENCLI_NOW="2020-01-01T00:00:00Z"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 5 and proc.stdout == ""
    assert "fake:gpt-4o-mini is set aside until " in proc.stderr
    assert "it will be tried again then." in proc.stderr
    assert len(server.requests) == 2  # the third never reached the server
    assert [r["status"] for r in ledger_rows(home)] == ["error", "error"]


def test_cli_falls_back_while_set_aside(cli, home, server):
    cli_setup(home, server, '[aliases]\nsafe = ["fake:gpt-4o-mini", "mock:echo"]\n')
    server.queue(UNAVAILABLE, UNAVAILABLE)
    for _ in range(2):
        cli("run", "-m", "fake:gpt-4o-mini", "--no-stream", "q")
    r = cli("run", "-m", "safe", "--no-stream", "hello there")
    assert r.exit_code == 0 and r.stdout == "hello there\n"
    assert "; using mock:echo." in r.stderr
    assert len(server.requests) == 2
    rows = ledger_rows(home)
    assert [(x["provider"], x["status"]) for x in rows] == [
        ("fake", "error"),
        ("fake", "error"),
        ("mock", "ok"),
    ]
