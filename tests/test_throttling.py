"""Rate limits hold under concurrency (gridplatform.throttling): requests from many threads at
once, on the real cache (Redis), never get past the limit, and each client has its own budget."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from gridplatform.throttling import AnonRate, AtomicRateMixin, UserRate
from meters.api import MeterRateThrottle

THREADS = 8
LIMIT = 120


def _user(ident: str) -> Any:
    return SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=ident), META={})


def _hammer(throttle_class: type[AtomicRateMixin], requests: list[Any]) -> int:
    """Send ``requests`` through fresh throttles from THREADS threads at once; how many passed."""
    passed: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(mine: list[Any]) -> None:
        start.wait()
        try:
            passed.append(sum(throttle_class().allow_request(r, None) for r in mine))
        except BaseException as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [
        threading.Thread(target=worker, args=(requests[i::THREADS],)) for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(passed)


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch, throttle_clock: float) -> None:
    rate = f"{LIMIT}/min"
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"user": rate, "anon": rate, "meter": rate}
    )


def test_a_user_limit_holds_under_concurrent_requests(limits: None) -> None:
    ident = f"race-{uuid.uuid4().hex}"
    try:
        assert _hammer(UserRate, [_user(ident)] * (4 * LIMIT)) == LIMIT
    finally:
        UserRate.forget(f"throttle_user_{ident}")


def test_an_anonymous_limit_holds_per_address(limits: None) -> None:
    def anonymous(address: str) -> Any:
        return Request(RequestFactory().get("/", REMOTE_ADDR=address))

    a, b = "198.51.100.61", "198.51.100.62"
    try:
        passed = _hammer(AnonRate, [anonymous(a)] * (3 * LIMIT) + [anonymous(b)] * 10)
        assert passed == LIMIT + 10  # a is cut at its limit; b has its own budget
    finally:
        for address in (a, b):
            AnonRate.forget(f"throttle_anon_{address}")


def test_a_meter_limit_holds_under_concurrent_batches(
    limits: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ident = f"meter-race-{uuid.uuid4().hex}"
    monkeypatch.setattr(MeterRateThrottle, "get_cache_key", lambda self, r, v: r.key)
    try:
        assert _hammer(MeterRateThrottle, [SimpleNamespace(key=ident)] * (2 * LIMIT)) == LIMIT
    finally:
        MeterRateThrottle.forget(ident)


def test_the_next_window_starts_afresh_and_says_when(
    limits: None, monkeypatch: pytest.MonkeyPatch, throttle_clock: float
) -> None:
    ident = f"window-{uuid.uuid4().hex}"
    request = _user(ident)
    try:
        throttle = UserRate()
        assert all(throttle.allow_request(request, None) for _ in range(LIMIT))
        assert not throttle.allow_request(request, None)
        assert throttle.wait() == 40.0  # the clock stands 20 s into its minute
        later = throttle_clock + 40
        monkeypatch.setattr(AtomicRateMixin, "timer", staticmethod(lambda: later))
        assert UserRate().allow_request(request, None)
    finally:
        UserRate.forget(f"throttle_user_{ident}")
        monkeypatch.setattr(AtomicRateMixin, "timer", staticmethod(lambda: throttle_clock))
        UserRate.forget(f"throttle_user_{ident}")
