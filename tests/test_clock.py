"""The one clock: TOKENCLI_NOW pins every recorded and compared time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import ledger_rows
from tokencli.clock import SYSTEM_CLOCK, clock_from_env, pinned_clock
from tokencli.errors import ConfigError


def test_a_pinned_clock_reads_the_same_instant_every_time() -> None:
    clock = clock_from_env({"TOKENCLI_NOW": "2026-11-15T12:00:00Z"})
    assert clock.now() == clock.now() == datetime(2026, 11, 15, 12, tzinfo=UTC)
    # Waits shared with other processes keep the wall clock, or they would never end.
    assert abs(clock.timestamp() - SYSTEM_CLOCK.timestamp()) < 5


def test_a_naive_pin_is_utc() -> None:
    assert pinned_clock(datetime(2026, 1, 2, 3)).now() == datetime(2026, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["yesterday", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01"]
)
def test_an_unusable_pin_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        clock_from_env({"TOKENCLI_NOW": value})
    assert "TOKENCLI_NOW" in raised.value.message


def test_recorded_calls_and_logs_since_follow_the_pinned_clock(cli, home, monkeypatch) -> None:
    monkeypatch.setenv("TOKENCLI_NOW", "2026-03-01T08:30:00Z")
    assert cli("run", "-m", "mock:echo", "hello").exit_code == 0
    (row,) = ledger_rows(home)
    assert row["ts"] == "2026-03-01T08:30:00.000000Z"
    # Ten minutes later the call is inside --since 30min, and a day later it is not.
    monkeypatch.setenv("TOKENCLI_NOW", "2026-03-01T08:40:00Z")
    assert len(json.loads(cli("logs", "--since", "30min", "--json").stdout)) == 1
    monkeypatch.setenv("TOKENCLI_NOW", "2026-03-02T08:40:00Z")
    assert json.loads(cli("logs", "--since", "30min", "--json").stdout) == []


def test_an_out_of_range_pin_exits_6_with_one_sentence(cli, monkeypatch) -> None:
    monkeypatch.setenv("TOKENCLI_NOW", "9999-12-31T23:59:59Z")
    result = cli("forecast")
    assert result.exit_code == 6
    assert "TOKENCLI_NOW" in result.stderr and "Traceback" not in result.stderr
