"""The reconciler as a long-lived service of each worker process: once at start (from each
number's watermark, so an outage of any length is repaired when the stack comes back) and
then every `LEADSTREAM_RECONCILE_INTERVAL_SECONDS` over the last
`LEADSTREAM_RECONCILE_LOOKBACK_SECONDS` (which also catches a delivery Kapso dropped for its
own reasons). It runs beside the worker's agents, never in the webhook's process, so it
cannot slow the webhook path; Postgres or the broker away only postpones a run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from mode import Service
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from leadstream.broker.clients import make_producer
from leadstream.config import Settings
from leadstream.db import watermarks
from leadstream.reconcile.client import KapsoApi
from leadstream.reconcile.reconciler import Reconciler, Record
from leadstream.retry import Backoff

log = logging.getLogger(__name__)


async def produce_all(producer: Any, records: Sequence[Record]) -> None:
    """Every record, acked by the broker, before the watermark may move past them."""
    futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
    await asyncio.gather(*futures)


class ReconcileService(Service):
    """Runs the reconciler at start and periodically; exports its figures."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.stopping = asyncio.Event()
        self.api = KapsoApi(settings.kapso_api_url, stop=self.stopping)
        self.reconciler: Reconciler | None = None
        self.pool: asyncpg.Pool | None = None
        self.producer: Any = None
        self.marks: list[dict[str, Any]] = []
        self.last_run_s = 0.0

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.api.close()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()

    async def _connect(self) -> bool:
        backoff = Backoff(0.5, 30.0)
        while not self.stopping.is_set():
            try:
                if self.pool is None:
                    self.pool = await asyncpg.create_pool(
                        self.settings.dsn, min_size=1,
                        max_size=self.settings.reconcile_concurrency + 2)
                if self.producer is None:
                    producer = make_producer(self.settings)
                    await producer.start()
                    self.producer = producer
                self.reconciler = Reconciler(
                    self.settings, self.pool, self.api,
                    lambda records: produce_all(self.producer, records))
                return True
            except Exception as exc:  # noqa: BLE001  # Postgres or the broker away: retry
                log.warning("reconciler: cannot start yet (%r)", exc)
                if not await backoff.wait(self.stopping):
                    return False
        return False

    @Service.task
    async def _runs(self) -> None:
        if not await self._connect():
            return
        interval = self.settings.reconcile_interval_seconds
        while not self.stopping.is_set():
            await self.run_once()
            if interval <= 0:
                return
            try:
                await asyncio.wait_for(self.stopping.wait(), interval)
            except TimeoutError:
                continue

    async def run_once(self) -> None:
        assert self.reconciler is not None and self.pool is not None
        started = time.monotonic()
        try:
            reports = await self.reconciler.run()
        except Exception as exc:  # noqa: BLE001  # never stop the worker or later runs
            log.warning("reconciliation run failed: %r", exc)
            return
        finally:
            self.last_run_s = time.monotonic() - started
        for r in reports:
            if r.missing or r.behind or r.error:
                log.info("reconciled %s/%s: read %d, missing %d, behind %d, produced %d%s",
                         r.workspace_id, r.phone_number_id, r.read, r.missing, r.behind,
                         r.produced, f", error: {r.error}" if r.error else "")
        try:
            self.marks = await watermarks.watermarks(self.pool)
        except (asyncpg.PostgresError, OSError) as exc:
            log.debug("reconciler: watermarks not read (%r)", exc)

    def collector(self) -> Collector:
        return ReconcileCollector(self)


class ReconcileCollector(Collector):
    """The reconciler's figures: missing messages found per workspace, pages read, API
    errors by kind, runs, and each number's watermark age and failing streak."""

    def __init__(self, service: ReconcileService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        s = self.service
        missing = CounterMetricFamily("leadstream_reconcile_missing",
                                      "messages Kapso held that the log did not, found and "
                                      "ingested by the reconciler", labels=["workspace"])
        for ws, n in sorted((s.reconciler.missing_by_workspace if s.reconciler else {}).items()):
            missing.add_metric([ws], n)
        yield missing
        yield CounterMetricFamily("leadstream_reconcile_pages",
                                  "pages read from Kapso's list-messages API",
                                  value=s.api.stats.pages)
        errors = CounterMetricFamily("leadstream_reconcile_api_errors",
                                     "failed calls to Kapso's API, by kind", labels=["kind"])
        for kind, n in sorted(s.api.stats.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        runs = CounterMetricFamily("leadstream_reconcile_runs", "reconciliation runs",
                                   labels=["outcome"])
        r = s.reconciler
        runs.add_metric(["ok"], (r.runs - r.failed_runs) if r else 0)
        runs.add_metric(["failed"], r.failed_runs if r else 0)
        yield runs
        now = datetime.now(UTC)
        age = GaugeMetricFamily("leadstream_reconcile_watermark_age_seconds",
                                "how long ago each number was last known complete",
                                labels=["workspace", "phone_number_id"])
        failing = GaugeMetricFamily("leadstream_reconcile_failures",
                                    "failed reconciliations of a number in a row",
                                    labels=["workspace", "phone_number_id"])
        for m in s.marks:
            labels = [m["workspace_id"], m["phone_number_id"]]
            if m["complete_until"] is not None:
                age.add_metric(labels, (now - m["complete_until"]).total_seconds())
            failing.add_metric(labels, m["failures"])
        yield age
        yield failing
        yield GaugeMetricFamily("leadstream_reconcile_last_run_seconds",
                                "how long the last reconciliation run took",
                                value=s.last_run_s)
