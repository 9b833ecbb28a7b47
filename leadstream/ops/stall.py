"""A worker that stops making progress says so (issue #30).

A worker whose assigned source partitions have records it has not committed, and whose
committed offsets have not moved for `LEADSTREAM_STALL_SECONDS`, is *stalled*, whatever the
cause (a produce that never completes, a fetch loop that stopped, Postgres away for good, a
deadlock of our own): `/readyz` answers 503 with the partitions and how long they have
waited, the log says it once with the worker's state, and
`leadstream_worker_stalled_partitions` counts them. The fresh-start stall of issue #30 was
silent for 20 minutes behind a green `/readyz`; this is what makes the next unknown one loud.

The log ends come from the broker (a small consumer of the watch's own, outside any group),
not from the worker's fetches, which stop updating exactly when the fetch loop stalls.
While the app rebalances or restores its tables nothing is expected to move, so the clocks
restart when that ends; a partition newly assigned starts its clock then.

`StallTracker` is the rule, with no I/O; `StallWatch` the service that feeds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import TopicPartition
from mode import Service

from leadstream.broker.clients import end_offsets, make_consumer
from leadstream.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stall:
    """One partition that has lag and has not advanced for `waited` seconds."""

    topic: str
    partition: int
    position: int | None
    end: int
    waited: float

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "position": self.position,
                "lag": self.end - (self.position or 0), "waited_s": round(self.waited, 1)}


class StallTracker:
    """Per partition: the position last seen and since when; a partition is stalled when it
    has lag and its position has not changed for `after` seconds."""

    def __init__(self, after: float) -> None:
        self.after = after
        #: (topic, partition) -> (position last seen, since when it has had lag without moving)
        self._seen: dict[tuple[str, int], tuple[int | None, float | None]] = {}

    def observe(self, now: float, samples: Mapping[tuple[str, int], tuple[int | None, int]],
                *, paused: bool = False) -> list[Stall]:
        """`samples`: (topic, partition) -> (position: the committed offset, None if never
        committed; log end) for every partition assigned now. `paused`: rebalancing or
        restoring, when no partition is expected to move. Returns the stalled ones."""
        seen = self._seen
        for tp in [tp for tp in seen if tp not in samples]:
            del seen[tp]  # revoked
        stalls: list[Stall] = []
        for tp, (position, end) in samples.items():
            last = seen.get(tp)
            lag = end - (position or 0)
            if paused or lag <= 0:
                seen[tp] = (position, None)  # no clock: nothing is expected to move
                continue
            if last is None or last[0] != position or last[1] is None:
                seen[tp] = (position, now)  # lag, newly seen or just moved: the clock starts
                continue
            waited = now - last[1]
            if waited >= self.after:
                stalls.append(Stall(tp[0], tp[1], position, end, waited))
        return sorted(stalls, key=lambda s: (s.topic, s.partition))


@dataclass
class WorkerView:
    """What the watch reads of the worker (callables, so it holds no Faust object itself)."""

    #: the source partitions assigned now
    assigned: Callable[[], set[Any]]
    #: a partition's committed offset (None: never committed)
    committed: Callable[[Any], int | None]
    #: rebalancing or restoring tables: nothing is expected to move
    paused: Callable[[], bool]
    #: the worker's state for the log line when a stall starts
    describe: Callable[[], dict[str, Any]]


class StallWatch(Service):
    """Samples every `every` seconds; `stalls` is what `/readyz` and the metrics read."""

    def __init__(self, settings: Settings, view: WorkerView, *, after: float,
                 every: float = 2.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.view = view
        self.tracker = StallTracker(after)
        self.every = every
        self.stalls: list[Stall] = []
        #: stall episodes since start (a counter for alerts: "stalled again")
        self.episodes = 0
        self._consumer: Any = None

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(self.every)
            try:
                await self.check()
            except Exception as exc:  # noqa: BLE001  # the broker away: its own probe says so
                log.debug("stall watch: no sample (%r)", exc)

    async def check(self, now: float | None = None) -> list[Stall]:
        view = self.view
        assigned = sorted(view.assigned())
        if not assigned:
            stalls = self.tracker.observe(time.monotonic() if now is None else now, {})
            return self._set(stalls)
        if self._consumer is None:
            self._consumer = make_consumer(self.settings, group_id=None)
            await self._consumer.start()
        ends = await asyncio.wait_for(end_offsets(
            self.settings, self._consumer,
            [TopicPartition(tp.topic, tp.partition) for tp in assigned]), 10)
        samples = {(tp.topic, tp.partition): (view.committed(tp),
                                              int(ends.get(TopicPartition(tp.topic,
                                                                          tp.partition), 0)))
                   for tp in assigned}
        stalls = self.tracker.observe(time.monotonic() if now is None else now, samples,
                                      paused=view.paused())
        return self._set(stalls)

    def _set(self, stalls: list[Stall]) -> list[Stall]:
        if stalls and not self.stalls:
            self.episodes += 1
            log.error("worker stalled: %d partition(s) with lag have not advanced for %.0f s:"
                      " %s; worker state: %s", len(stalls), self.tracker.after,
                      [s.as_dict() for s in stalls], self.view.describe())
        elif self.stalls and not stalls:
            log.warning("worker no longer stalled: every assigned partition advances")
        self.stalls = stalls
        return stalls
