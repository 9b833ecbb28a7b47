"""The one retry policy (leadstream.retry.Backoff): exponential, capped, jittered down only,
reset after a success, and a stop cuts a wait short."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from leadstream.retry import Backoff, retry_after


def test_grows_to_the_cap_with_jitter_taken_off_only() -> None:
    rolls = itertools.cycle([0.0, 1.0, 0.5])
    b = Backoff(first=0.1, cap=1.0, jitter=0.5, rng=lambda: next(rolls))
    waits = [b.next() for _ in range(8)]
    nominal = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for w, n, roll in zip(waits, nominal, itertools.cycle([0.0, 1.0, 0.5]), strict=False):
        assert abs(w - n * (1 - 0.5 * roll)) < 1e-9
    assert all(w <= 1.0 for w in waits) and b.attempts == 8
    b.reset()
    assert b.delay == 0.1 and b.attempts == 0


def test_jitter_spreads_a_fleet() -> None:
    waits = {round(Backoff(first=1.0).next(), 6) for _ in range(50)}
    assert len(waits) > 40 and all(0.5 <= w <= 1.0 for w in waits)


async def test_a_stop_cuts_the_wait_short() -> None:
    stop = asyncio.Event()
    b = Backoff(first=10.0, cap=10.0, jitter=0.0)
    asyncio.get_running_loop().call_later(0.05, stop.set)
    t0 = time.monotonic()
    assert await b.wait(stop) is False
    assert time.monotonic() - t0 < 1.0
    assert await b.wait(stop) is False  # already set: at once
    assert await Backoff(first=0.01, jitter=0.0).wait(asyncio.Event()) is True


@pytest.mark.parametrize(("header", "want"), [
    ("2", 2.0), ("0.5", 0.5), (None, 7.0), ("soon", 7.0), ("-3", 0.0), ("99999", 120.0),
])
def test_retry_after_reads_seconds_and_is_bounded(header: str | None, want: float) -> None:
    assert retry_after(header, 7.0) == want


def test_retry_after_reads_an_http_date() -> None:
    from email.utils import format_datetime

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after(when, 1.0) <= 30
