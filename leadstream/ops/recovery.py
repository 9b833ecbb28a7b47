"""How long each changelog partition took to restore, which Faust does not tell (it logs the
whole recovery's time only): the partition that holds a recovery up is the one to compact or
to spread. Sampled while a recovery runs; exported as
`leadstream_worker_partition_recovery_seconds` (the last recovery) and
`leadstream_worker_recovery_remaining_records` (now)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mode import Service
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: (monotonic start, monotonic end, records left per changelog partition)
Progress = tuple[float | None, float | None, Mapping[Any, int]]


class RecoveryWatch(Service, Collector):
    """A partition's recovery time is from the recovery's start to the first sample that
    finds it at its highwater (to the recovery's end if that came first), so it is exact to
    `every` seconds."""

    def __init__(self, progress: Callable[[], Progress], *, every: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, **kw: Any) -> None:
        super().__init__(**kw)
        self.progress = progress
        self.every = every
        self.clock = clock
        #: (topic, partition) -> seconds it took in the last recovery that restored it
        self.seconds: dict[tuple[str, int], float] = {}
        #: (topic, partition) -> records it has left to restore (0 once restored)
        self.remaining: dict[tuple[str, int], int] = {}
        self._watching: float | None = None  # the start of the recovery being sampled
        self._done: set[tuple[str, int]] = set()

    @Service.task
    async def _sample(self) -> None:
        while not self.should_stop:
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001  # Faust's state mid-rebalance: next time
                log.debug("recovery watch: no sample (%r)", exc)
            await self.sleep(self.every)

    def sample(self) -> None:
        started, ended, left = self.progress()
        if started is None:
            return
        if started != self._watching:  # a new recovery began
            self._watching = started
            self._done = set()
            self.remaining = {}
        over = ended is not None and ended >= started
        now = ended if over and ended is not None else self.clock()
        for tp, n in left.items():
            key = (tp.topic, tp.partition)
            self.remaining[key] = max(0, int(n)) if not over else 0
            if key not in self._done and (n <= 0 or over):
                self._done.add(key)
                self.seconds[key] = max(0.0, now - started)

    def collect(self) -> Iterator[Any]:
        """A scrape samples too: a recovery shorter than `every` is in the first scrape
        after it."""
        with contextlib.suppress(Exception):
            self.sample()
        took = GaugeMetricFamily("leadstream_worker_partition_recovery_seconds",
                                 "how long the last table recovery took to restore a changelog"
                                 " partition (sampled every 0.25 s)",
                                 labels=["topic", "partition"])
        for (topic, partition), s in sorted(self.seconds.items()):
            took.add_metric([topic, str(partition)], round(s, 3))
        yield took
        left = GaugeMetricFamily("leadstream_worker_recovery_remaining_records",
                                 "changelog records a partition has left to restore",
                                 labels=["topic", "partition"])
        for (topic, partition), n in sorted(self.remaining.items()):
            left.add_metric([topic, str(partition)], n)
        yield left
