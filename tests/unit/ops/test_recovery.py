"""RecoveryWatch: a recovery time per changelog partition, from samples of Faust's
progress (issue #28)."""

from __future__ import annotations

from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest

from leadstream.ops.recovery import RecoveryWatch


class TP(NamedTuple):
    topic: str
    partition: int


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watch(progress: list[Any], clock: Clock) -> RecoveryWatch:
    return RecoveryWatch(lambda: progress[0], clock=clock)


A, B = TP("ls-leads-changelog", 0), TP("ls-leads-changelog", 1)


def test_each_partition_takes_the_time_until_it_reached_its_highwater() -> None:
    clock = Clock()
    progress: list[Any] = [(None, None, {})]
    w = watch(progress, clock)
    w.sample()
    assert w.seconds == {} and w.remaining == {}  # no recovery yet
    progress[0] = (100.0, None, {A: 500, B: 20})
    clock.now = 100.5
    w.sample()
    assert w.remaining == {("ls-leads-changelog", 0): 500, ("ls-leads-changelog", 1): 20}
    assert w.seconds == {}
    progress[0] = (100.0, None, {A: 300, B: 0})
    clock.now = 101.0
    w.sample()
    assert w.seconds == {("ls-leads-changelog", 1): 1.0}
    progress[0] = (100.0, None, {A: 0, B: 0})
    clock.now = 104.25
    w.sample()
    clock.now = 110.0
    w.sample()  # a restored partition keeps its time
    assert w.seconds == {("ls-leads-changelog", 0): 4.25, ("ls-leads-changelog", 1): 1.0}
    assert w.remaining == {("ls-leads-changelog", 0): 0, ("ls-leads-changelog", 1): 0}


def test_a_recovery_that_ended_between_samples_gives_its_end_and_a_new_one_starts_over() -> None:
    clock = Clock()
    progress: list[Any] = [(100.0, None, {A: 10})]
    w = watch(progress, clock)
    w.sample()
    progress[0] = (100.0, 102.0, {A: 10})  # Faust ended it; the offsets no longer move
    clock.now = 103.0
    w.sample()
    assert w.seconds == {("ls-leads-changelog", 0): 2.0}
    assert w.remaining == {("ls-leads-changelog", 0): 0}
    # a rebalance: partition 1 now, partition 0 again
    progress[0] = (200.0, 102.0, {A: 7, B: 3})
    clock.now = 200.25
    w.sample()
    assert w.remaining == {("ls-leads-changelog", 0): 7, ("ls-leads-changelog", 1): 3}
    progress[0] = (200.0, 203.5, {A: 0, B: 0})
    w.sample()
    assert w.seconds == {("ls-leads-changelog", 0): 3.5, ("ls-leads-changelog", 1): 3.5}


def test_the_figures_are_exported_per_partition() -> None:
    clock = Clock()
    w = watch([(100.0, 101.5, {A: 0})], clock)
    w.sample()
    registry = CollectorRegistry()
    registry.register(w)
    text = generate_latest(registry).decode()
    assert ('leadstream_worker_partition_recovery_seconds{partition="0",'
            'topic="ls-leads-changelog"} 1.5') in text
    assert ('leadstream_worker_recovery_remaining_records{partition="0",'
            'topic="ls-leads-changelog"} 0.0') in text
