"""`RetryPolicy.delay` as a pure function: an injected rng, a recording sleep, no clock."""

from __future__ import annotations

import pytest

from tokencli.calls.retry import MAX_BACKOFF_S, RetryPolicy
from tokencli.errors import ProviderRefused, ProviderUnavailable


def overloaded(retry_after: float | None = None) -> ProviderUnavailable:
    return ProviderUnavailable(
        "busy", kind="overloaded", status_code=503, retry_after=retry_after, retryable=True
    )


def fixed(value: float):
    """An rng that always draws `value` (random.random draws from [0, 1))."""
    return lambda: value


def waits(policy: RetryPolicy, error, rng) -> list[float]:
    """Drive `delay` as the engine does, recording each sleep instead of sleeping."""
    slept: list[float] = []
    attempt, waited = 1, 0.0
    while (wait := policy.delay(attempt, error, waited, rng)) is not None:
        slept.append(wait)
        waited += wait
        attempt += 1
    return slept


def test_backoff_doubles_from_the_base_without_jitter():
    policy = RetryPolicy(max_retries=4, max_wait=1000, backoff=0.5)
    assert waits(policy, overloaded(), fixed(0.0)) == [0.5, 1.0, 2.0, 4.0]


def test_backoff_is_capped_per_attempt():
    policy = RetryPolicy(max_retries=10, max_wait=1000, backoff=0.5)
    slept = waits(policy, overloaded(), fixed(0.0))
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert max(slept) == MAX_BACKOFF_S


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_jitter_only_shortens_the_wait_by_at_most_a_quarter(draw):
    policy = RetryPolicy(max_retries=10, max_wait=1000, backoff=0.5)
    for attempt, base in [(1, 0.5), (3, 2.0), (9, MAX_BACKOFF_S)]:
        wait = policy.delay(attempt, overloaded(), 0.0, fixed(draw))
        assert wait == base * (1 - 0.25 * draw)
        assert 0.75 * base < wait <= base


def test_retry_after_is_honoured_exactly_without_jitter_or_cap():
    policy = RetryPolicy(max_retries=2, max_wait=60, backoff=0.5)
    assert policy.delay(1, overloaded(retry_after=3.7), 0.0, fixed(0.9)) == 3.7
    assert policy.delay(2, overloaded(retry_after=20.0), 0.0, fixed(0.9)) == 20.0


def test_a_wait_that_ends_exactly_at_the_bound_is_taken():
    policy = RetryPolicy(max_retries=5, max_wait=10.0, backoff=0.5)
    assert policy.delay(1, overloaded(retry_after=4.0), 6.0, fixed(0.0)) == 4.0


def test_no_retry_when_the_wait_would_pass_the_total_bound():
    policy = RetryPolicy(max_retries=5, max_wait=10.0, backoff=0.5)
    assert policy.delay(1, overloaded(retry_after=4.0), 6.5, fixed(0.0)) is None
    assert policy.delay(1, overloaded(retry_after=10.5), 0.0, fixed(0.0)) is None


def test_the_sum_of_backoff_waits_stays_within_the_bound():
    policy = RetryPolicy(max_retries=10, max_wait=10.0, backoff=0.5)
    slept = waits(policy, overloaded(), fixed(0.0))
    # 0.5 + 1 + 2 + 4 = 7.5; the next 8 s would make 15.5 > 10.
    assert slept == [0.5, 1.0, 2.0, 4.0]


def test_attempts_stop_after_max_retries():
    policy = RetryPolicy(max_retries=2, max_wait=1000, backoff=0.5)
    assert policy.delay(2, overloaded(), 0.0, fixed(0.0)) == 1.0
    assert policy.delay(3, overloaded(), 0.0, fixed(0.0)) is None
    assert len(waits(policy, overloaded(), fixed(0.0))) == 2


def test_non_retryable_errors_give_none():
    policy = RetryPolicy(max_retries=5, max_wait=1000, backoff=0.5)
    billing = ProviderRefused("no credit", kind="billing", status_code=402, retryable=False)
    assert policy.delay(1, billing, 0.0, fixed(0.0)) is None
    assert policy.delay(1, ProviderRefused("x", kind="billing", retry_after=1.0), 0.0) is None


def test_a_failure_after_text_arrived_is_not_retried():
    policy = RetryPolicy(max_retries=5, max_wait=1000, backoff=0.5)
    cut = ProviderUnavailable("cut", kind="stream_cut", retryable=True)
    cut.had_output = True
    assert policy.delay(1, cut, 0.0, fixed(0.0)) is None
