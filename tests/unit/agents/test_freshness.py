"""The freshness histogram's counting: Prometheus' cumulative buckets, bounds inclusive."""

from __future__ import annotations

import pytest

from leadstream.agents.batch import FRESHNESS_BUCKETS, Buckets


def test_counts_are_cumulative_and_a_bound_is_inclusive() -> None:
    b = Buckets((0.1, 1.0, 5.0))
    for v in (0.05, 0.1, 0.7, 1.0, 3.0, 9.0, -0.2):
        b.observe(v)
    assert b.cumulative() == [("0.1", 3), ("1.0", 5), ("5.0", 6), ("+Inf", 7)]
    assert b.n == 7 and b.total == pytest.approx(0.05 + 0.1 + 0.7 + 1.0 + 3.0 + 9.0)


def test_the_promise_is_a_bound() -> None:
    assert 1.0 in FRESHNESS_BUCKETS and list(FRESHNESS_BUCKETS) == sorted(FRESHNESS_BUCKETS)
    assert Buckets(FRESHNESS_BUCKETS).cumulative()[-1] == ("+Inf", 0)
