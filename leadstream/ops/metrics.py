"""The worker's `/healthz`, `/readyz` and `/metrics` (contract §5), on
`LEADSTREAM_WORKER_HTTP_PORT`, as a `mode.Service` in the worker process.

The metrics are read from the live objects when Prometheus scrapes (a collector, not
counters updated on the hot path), so they cost nothing per event. What is exported, and
what each means, is listed in the README (Operations).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aiohttp import web
from mode import Service
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from leadstream.broker.faust_internals import committed_offset
from leadstream.ops.health import ProbeCollector, broker_ready, database_ready
from leadstream.ops.stall import StallWatch

log = logging.getLogger(__name__)


class WorkerCollector(Collector):
    """Figures of one worker process: the batch path, the rules, the daily windows, the
    sink and summarizer in the process, and consumer lag per source partition."""

    def __init__(self, *, runner: Any, windows: Any, consumer: Callable[[], Any],
                 sink: Any | None, summaries: Any | None, stall: StallWatch | None = None,
                 state: Callable[[], dict[str, Any]] | None = None, group: str = "",
                 digest: Any | None = None) -> None:
        """`sink`, `summaries`, `stall`: the PostgresSink, SummaryService and StallWatch of
        this process, if any."""
        self.stall = stall
        self.state = state
        self.group = group  # the consumer group: the lag's label
        self.digest = digest  # the DigestService, if this worker writes digests
        self.runner = runner
        self.windows = windows
        self.consumer = consumer
        self.sink = sink
        self.summaries = summaries

    def collect(self) -> Iterator[Any]:
        r, p = self.runner, self.runner.processor
        yield _counter("leadstream_worker_events", "source records applied, by outcome",
                       ["outcome"], [(["applied"], p.processed), (["unchanged"], p.skipped),
                                     (["dead_lettered"], p.dead)])
        yield _counter("leadstream_worker_flushes", "flushes made durable", [],
                       [([], r.flushes)])
        yield _counter("leadstream_worker_flushed_events", "events in durable flushes", [],
                       [([], r.events)])
        yield _counter("leadstream_worker_records_produced",
                       "changelog and output records produced by flushes", [],
                       [([], r.records_out)])
        yield _counter("leadstream_worker_replica_rows", "rows the worker wrote to Postgres",
                       [], [([], r.rows_out)])
        if self.state is not None:
            st = self.state()
            yield _gauge("leadstream_worker_rebalancing", "1 while the group rebalances", [],
                         [([], float(st["rebalancing"]))])
            yield _gauge("leadstream_worker_recovering",
                         "1 while the worker restores its tables from their changelogs", [],
                         [([], float(st["recovering"]))])
            yield _counter("leadstream_worker_rebalances", "rebalances this worker went through",
                           [], [([], st["rebalances"])])
            yield _counter("leadstream_worker_changelog_records_applied",
                           "table changelog records applied to this worker's stores, by table"
                           " and role (active: a recovery; standby: a warm copy)",
                           ["table", "role"],
                           [([table, role], n) for (table, role), n
                            in sorted(st.get("changelog_applied", {}).items())])
            if st["last_recovery_s"] is not None:
                yield _gauge("leadstream_worker_last_recovery_seconds",
                             "how long the last table recovery took", [],
                             [([], st["last_recovery_s"])])
        if self.digest is not None:
            d = self.digest
            yield _counter("leadstream_digests_written", "workspace digests written", [],
                           [([], d.written)])
            yield _counter("leadstream_digest_failures", "digest runs Postgres refused", [],
                           [([], d.failures)])
            if d.through_days is not None:
                yield _gauge("leadstream_digest_through_days",
                             "the newest day a workspace digest exists for (days since "
                             "1970-01-01)", [], [([], d.through_days)])
        fresh = r.freshness
        yield HistogramMetricFamily(
            "leadstream_worker_freshness_seconds",
            "per flush: from its oldest event's durable write (the record's timestamp) to its"
            " replica rows committed", buckets=fresh.cumulative(), sum_value=fresh.total)
        yield _counter("leadstream_worker_flush_wait_seconds",
                       "time spent waiting for a flush to be durable", [],
                       [([], r.settle_wait_s)])
        yield _counter("leadstream_worker_produce_retries", "flush produces retried", [],
                       [([], r.produce_retries)])
        yield _counter("leadstream_worker_refused_records",
                       "output records the broker refused for good (dead-lettered)", [],
                       [([], r.refused)])
        replica = r.replica
        yield _counter("leadstream_worker_replica_retries",
                       "replica writes retried (Postgres away)", [],
                       [([], replica.pg_retries if replica is not None else 0)])
        w = self.windows
        yield _counter("leadstream_daily_windows", "daily windows, by what happened",
                       ["what"], [(["closed"], w.closed), (["late_update"], w.late_updates),
                                  (["past_retention"], w.too_late)])
        closed = [d for d in w.through.values() if d is not None]
        if closed:
            yield _gauge("leadstream_daily_closed_through_days",
                         "newest closed day, as days since 1970-01-01 (the daily-close lag is"
                         " today minus this)", [], [([], max(closed).toordinal() - 719163)])
        if self.sink is not None:
            yield _counter("leadstream_sink_rows", "rows the sink wrote", [],
                           [([], self.sink.rows_written)])
            yield _counter("leadstream_sink_dead_letters", "records the sink dead-lettered",
                           [], [([], self.sink.dead_letters)])
        if self.summaries is not None:
            yield _counter("leadstream_summaries", "daily summaries written", [],
                           [([], self.summaries.summarized)])
            yield _counter("leadstream_summarizer_fallbacks",
                           "summaries written by the built-in summarizer after the LLM"
                           " failed", [],
                           [([], getattr(self.summaries.summarizer, "fallbacks", 0))])
        if self.stall is not None:
            yield _gauge("leadstream_worker_stalled_partitions",
                         "assigned source partitions with lag whose committed offset has not"
                         " moved for LEADSTREAM_STALL_SECONDS", [],
                         [([], len(self.stall.stalls))])
            yield _counter("leadstream_worker_stalls", "times the worker became stalled", [],
                           [([], self.stall.episodes)])
        yield from self._lag()

    def _lag(self) -> Iterator[Any]:
        try:
            consumer = self.consumer()
            assigned = consumer.assignment()
        except Exception:  # noqa: BLE001  # not started yet
            return
        group = self.group
        g = GaugeMetricFamily("leadstream_worker_consumer_lag",
                              "records of a source partition not yet committed (log end minus"
                              " committed offset)", labels=["group", "topic", "partition"])
        for tp in sorted(assigned):
            if tp.topic not in self.runner.topics:
                continue
            try:
                end = consumer.highwater(tp)
            except Exception:  # noqa: BLE001  # a partition not fetched yet: no lag to tell
                continue
            committed = committed_offset(consumer, tp) or 0
            if end is not None:
                g.add_metric([group, tp.topic, str(tp.partition)],
                             max(0, int(end) - int(committed)))
        yield g


def _family(cls: Any, name: str, doc: str, labels: list[str],
            values: list[tuple[list[str], float]]) -> Any:
    m = cls(name, doc, labels=labels)
    for lv, v in values:
        m.add_metric(lv, v)
    return m


def _counter(name: str, doc: str, labels: list[str],
             values: list[tuple[list[str], float]]) -> CounterMetricFamily:
    return _family(CounterMetricFamily, name, doc, labels, values)


def _gauge(name: str, doc: str, labels: list[str],
           values: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    return _family(GaugeMetricFamily, name, doc, labels, values)


class WorkerWeb(Service):
    """`/healthz` (the process runs), `/readyz` (broker and database answer now, and the
    worker is not stalled), `/metrics`."""

    def __init__(self, *, host: str, port: int, collector: WorkerCollector,
                 kafka_client: Callable[[], Any], pool: Callable[[], Any] | None,
                 stall: StallWatch | None = None, collectors: Sequence[Collector] = (),
                 state: Callable[[], dict[str, Any]] | None = None, **kw: Any) -> None:
        """`pool`: the process's Postgres pool (None: this worker uses no database);
        `stall`: its stall watch (a stalled worker is not ready); `collectors`: the figures
        of the process's other services (the reconciler); `state`: whether it is
        rebalancing or restoring its tables (`faust_internals.recovery_state`): not ready."""
        self.worker_state = state
        super().__init__(**kw)
        self.stall = stall
        self.host = host
        self.port = port
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        # the process's own figures (CPU, memory, open files, GC), as the webhook's default
        # registry has them
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        for extra in collectors:
            self.registry.register(extra)
        self.kafka_client = kafka_client
        self.pool = pool
        self._runner: web.AppRunner | None = None
        self.probes = ProbeCollector({"broker": self._broker_up} | (
            {} if pool is None else {"postgres": self._postgres_up}))
        self.registry.register(self.probes)

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as exc:  # e.g. a second worker on one machine: it still works
            log.error("worker health and metrics not served: %s:%s: %s (set"
                      " LEADSTREAM_WORKER_HTTP_PORT)", self.host, self.port, exc)
            return
        log.info("worker health and metrics on http://%s:%s/metrics", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        broker, postgres = await asyncio.gather(self._broker_up(), self._postgres_up())
        database = None if self.pool is None else postgres
        body: dict[str, Any] = {"broker": broker, "database": database}
        stalls = self.stall.stalls if self.stall is not None else []
        if stalls:
            body["stalled"] = [s.as_dict() for s in stalls]
        busy = None
        if self.worker_state is not None:
            st = self.worker_state()
            # before its first assignment a worker is neither rebalancing nor restoring,
            # and has nothing: "starting" until a first recovery has ended (bench/scale.py
            # found /readyz 200 half a second after a start that then restored for longer)
            busy = ("restoring tables" if st["recovering"] else
                    "rebalancing" if st["rebalancing"] else
                    "starting" if st.get("last_recovery_s") is None else None)
            if busy:
                body["not_ready"] = busy
                if st["recovering"] and st["recovery_started"] is not None:
                    body["recovering_s"] = round(time.monotonic() - st["recovery_started"], 1)
        ok = broker and database is not False and not stalls and busy is None
        return web.json_response(body, status=200 if ok else 503)

    async def _broker_up(self) -> bool:
        try:
            client = self.kafka_client()
        except Exception:  # noqa: BLE001  # the producer has not started yet
            return False
        return await broker_ready(client)

    async def _postgres_up(self) -> bool:
        return self.pool is not None and await database_ready(self.pool())

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.probes.refresh()
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
