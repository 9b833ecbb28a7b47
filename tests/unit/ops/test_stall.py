"""The stall rule (leadstream.ops.stall.StallTracker): a partition with lag whose position
has not moved for `after` seconds is stalled; anything that moves, catches up, is paused or
is newly assigned starts its clock again."""

from __future__ import annotations

import itertools

from leadstream.ops.stall import StallTracker

TP = ("leadstream.events", 0)


def test_lag_without_progress_is_a_stall_after_the_threshold() -> None:
    t = StallTracker(after=10)
    assert t.observe(0, {TP: (5, 9)}) == []
    assert t.observe(9.9, {TP: (5, 9)}) == []
    [s] = t.observe(10, {TP: (5, 9)})
    assert (s.topic, s.partition, s.position, s.end, s.waited) == (*TP, 5, 9, 10)
    assert s.as_dict()["lag"] == 4


def test_progress_restarts_the_clock() -> None:
    t = StallTracker(after=10)
    t.observe(0, {TP: (5, 9)})
    assert t.observe(8, {TP: (6, 9)}) == []  # moved
    assert t.observe(17, {TP: (6, 9)}) == []
    assert len(t.observe(18, {TP: (6, 9)})) == 1


def test_no_lag_is_never_a_stall_however_long() -> None:
    t = StallTracker(after=10)
    for now in range(0, 100, 7):
        assert t.observe(now, {TP: (9, 9)}) == []
    # lag appears: its clock starts then, not when the position last moved
    assert t.observe(100, {TP: (9, 12)}) == []
    assert t.observe(109, {TP: (9, 12)}) == []
    assert len(t.observe(110, {TP: (9, 12)})) == 1


def test_never_committed_partition_with_records_stalls() -> None:
    t = StallTracker(after=5)
    t.observe(0, {TP: (None, 3)})
    assert [s.as_dict()["lag"] for s in t.observe(5, {TP: (None, 3)})] == [3]


def test_paused_restarts_every_clock_and_revoked_partitions_are_forgotten() -> None:
    t = StallTracker(after=10)
    other = ("leadstream.sarah", 1)
    t.observe(0, {TP: (1, 5), other: (0, 2)})
    assert t.observe(9, {TP: (1, 5), other: (0, 2)}, paused=True) == []
    assert t.observe(18, {TP: (1, 5), other: (0, 2)}) == []  # the clocks start again here
    assert t.observe(27, {TP: (1, 5), other: (0, 2)}) == []
    assert len(t.observe(28, {TP: (1, 5), other: (0, 2)})) == 2
    assert t.observe(29, {other: (0, 2)}) != []  # TP revoked
    # TP assigned again later: a new clock, not the old one
    assert [s.topic for s in t.observe(30, {TP: (1, 5), other: (0, 2)})] == ["leadstream.sarah"]


def test_exhaustive_small_histories() -> None:
    """Over every history of 6 samples (position moves or not, lag or not) a stall is
    reported exactly when the last `after` seconds had lag and no move."""
    after = 3
    for moves, lags in itertools.product(itertools.product([False, True], repeat=6),
                                         itertools.product([False, True], repeat=6)):
        t = StallTracker(after=after)
        position = 0
        start: int | None = None  # since when: lag and no move
        for now, (move, lag) in enumerate(zip(moves, lags, strict=True)):
            position += move
            got = t.observe(now, {TP: (position, position + (5 if lag else 0))})
            if not lag:
                start = None
            elif move or start is None:
                start = now
            want = start is not None and now - start >= after
            assert bool(got) == want, (moves, lags, now)
