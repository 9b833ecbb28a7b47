"""Consumer lag of every group, read from the broker (the committed offsets against the log
ends), not from the consumers: `leadstream status` prints it and the webhook/API server
exports it (`leadstream_group_lag`), so a worker, sink or summarizer that died or hangs
still shows as lag growing on its partitions (a dead worker exports nothing). This is what
Burrow or kafka-lag-exporter do for a Java fleet; one reading costs two broker round trips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from leadstream.broker.clients import group_offsets, log_bounds
from leadstream.config import Settings
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)


def groups(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """What each consumer group does -> (its id, the topics it reads)."""
    names = TopicNames.from_settings(settings)
    sink_topics = ([names.daily, names.notes, names.dlq] if settings.replica_writer == "worker"
                   else [*names.derived(), names.dlq])
    return {"worker": (settings.app_id, [*names.sources(), names.ticks]),
            "sink": (settings.sink_group, sink_topics),
            "summarizer": (settings.app_id + "-summaries", [names.daily_closed])}


async def read_lag(settings: Settings, *, timeout: float = 15.0) -> dict[str, Any]:
    """role -> {"group", "total", "partitions": [{topic, partition, committed, end, lag}]}.
    A partition its group never committed on lags by everything from the log start."""
    roles = groups(settings)
    committed_by_group = await asyncio.wait_for(
        group_offsets(settings, [group for group, _ in roles.values()]), timeout)
    bounds = await asyncio.wait_for(
        log_bounds(settings, sorted({t for _, topics in roles.values() for t in topics})),
        timeout)
    lag: dict[str, Any] = {}
    for role, (group, topics) in roles.items():
        committed = committed_by_group[group]
        parts = []
        for tp in sorted((tp for tp in bounds if tp.topic in topics),
                         key=lambda t: (t.topic, t.partition)):
            start, end = bounds[tp]
            at = committed.get(tp, start)
            parts.append({"topic": tp.topic, "partition": tp.partition,
                          "committed": committed.get(tp), "end": end,
                          "lag": max(0, end - max(at, start))})
        lag[role] = {"group": group, "total": sum(p["lag"] for p in parts),
                     "partitions": parts}
    return lag


class GroupLagCollector(Collector):
    """`leadstream_group_lag{role, group, topic, partition}` from the last reading, refreshed
    by `refresh()` before a scrape when it is older than `every` seconds (no scraper, no
    broker requests). A failed reading keeps no stale figures: the family is left out and
    `leadstream_group_lag_read_failures_total` counts it (the broker's own alert says why)."""

    def __init__(self, settings: Settings, *, every: float = 10.0, timeout: float = 5.0) -> None:
        self.settings = settings
        self.every = every
        self.timeout = timeout
        self.reading: dict[str, Any] | None = None
        self.read_at: float | None = None  # monotonic
        self.failures = 0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:  # two scrapers at once: one reading
            now = time.monotonic()
            if self.read_at is not None and now - self.read_at < self.every:
                return
            self.read_at = now
            try:
                self.reading = await read_lag(self.settings, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001  # the broker away: no figures, counted
                self.failures += 1
                self.reading = None
                log.warning("group lag not read: %r", exc)

    def collect(self) -> Iterator[Any]:
        failures = CounterMetricFamily("leadstream_group_lag_read_failures",
                                       "group lag readings the broker did not answer")
        failures.add_metric([], self.failures)
        yield failures
        if self.reading is None:
            return
        g = GaugeMetricFamily("leadstream_group_lag",
                              "records of a partition its consumer group has not committed,"
                              " read from the broker (log end minus committed offset)",
                              labels=["role", "group", "topic", "partition"])
        for role, r in self.reading.items():
            for p in r["partitions"]:
                g.add_metric([role, r["group"], p["topic"], str(p["partition"])], p["lag"])
        yield g
