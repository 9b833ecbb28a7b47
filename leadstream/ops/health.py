"""Readiness probes shared by every long-running process (contract §5: `/readyz` is 200 only
while the broker and the database answer *now*). Each probe is bounded in time, so a probe
against a dead service answers 503 within about a second instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

PROBE_SECONDS = 1.5


async def broker_ready(client: Any, timeout: float = PROBE_SECONDS) -> bool:
    """Some broker of the cluster answers a metadata request now (`client`: the process's
    aiokafka client, which tries its known brokers in turn and speaks the metadata version
    the broker supports); the whole probe takes at most `timeout`."""
    try:
        cluster = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
    except Exception:  # noqa: BLE001  # unreachable, timed out, refused: not ready, whatever the error
        return False
    return bool(cluster.brokers())


async def database_ready(pool: asyncpg.Pool | None, timeout: float = PROBE_SECONDS) -> bool:
    if pool is None:
        return False
    try:
        return bool(await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


class ProbeCollector(Collector):
    """`leadstream_dependency_up{dependency}`: the readiness probes' answers, probed when
    Prometheus scrapes (`refresh()` before the scrape), so "Postgres unreachable" is an
    alert even when no traffic would make a write fail."""

    def __init__(self, probes: Mapping[str, Callable[[], Awaitable[bool]]]) -> None:
        self.probes = probes
        self.up: dict[str, bool] = {}

    async def refresh(self) -> None:
        names = list(self.probes)
        answers = await asyncio.gather(*(self.probes[n]() for n in names),
                                       return_exceptions=True)
        self.up = {n: a is True for n, a in zip(names, answers, strict=True)}

    def collect(self) -> Iterator[Any]:
        g = GaugeMetricFamily("leadstream_dependency_up",
                              "1 when the dependency answered this process's probe at the last"
                              " scrape (broker: metadata; postgres: SELECT 1; 1.5 s each)",
                              labels=["dependency"])
        for name, up in sorted(self.up.items()):
            g.add_metric([name], 1.0 if up else 0.0)
        yield g
