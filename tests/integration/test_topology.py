"""The production topology (docker-compose.yml) as local processes, no Docker: three Apache
Kafka brokers (RF 3, min.insync.replicas 2), a Postgres primary and a streaming standby made
with `pg_basebackup`, two workers with their own state and health ports, and the webhook/API
reading the standby (issue #16). It shows:

* a new message readable through the API, served from the standby, about a second after the
  webhook's 200 (the figure is printed with the fault-suite figures);
* the worker's lag metric rising under a backlog and returning to 0;
* `/readyz` turning 503 when the brokers are gone and 200 once they are back.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from leadstream.broker.clients import make_producer
from leadstream.config import Settings
from leadstream.ingest.common import Workspace
from leadstream.ingest.kapso import parse_kapso
from leadstream.simulate import kapso_message
from leadstream.streams.records import encode
from tests.support.faults import FIGURES
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import PNID, TOKEN, Worker, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kafka]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_production_topology_as_processes(
        pipelines: StartPipeline, kafka_settings: Settings, tmp_path: Path
        ) -> None:
    from leadstream.embedded.kafka import KafkaCluster
    from leadstream.embedded.postgres import EmbeddedPostgres

    cluster = KafkaCluster(tmp_path / "kafka", nodes=3).start()
    primary = EmbeddedPostgres(tmp_path / "pg-primary", fsync=False).start()
    standby = EmbeddedPostgres.standby_of(primary, tmp_path / "pg-standby").start()
    ports = (_port(), _port())
    s = kafka_settings.model_copy(update={
        "kafka_bootstrap_servers": cluster.bootstrap, "topic_replication": 3,
        "database_url": primary.url, "database_read_url": standby.url,
        "topic_partitions": 4, "worker_http_port": ports[0]})
    p = await pipelines(s)
    second = Worker(s.model_copy(update={"worker_http_port": ports[1],
                                         "data_dir": tmp_path / "data-b"}),
                    str(tmp_path / "worker-b.log"))
    second.start()
    try:
        async with aiohttp.ClientSession() as http:
            # 1. through the API, from the standby
            assert await _in_recovery(standby.url)
            latencies = []
            for i in range(6):
                phone = f"62812{61000000 + i:08d}"
                assert await p.message(phone, f"wamid.topo{i}", ts=1_760_000_000 + i) == 200
                acked = time.monotonic()
                await eventually(lambda ph=phone: _listed(http, p.base, ph), timeout=60,  # type: ignore[misc]
                                 every=0.02)
                latencies.append(time.monotonic() - acked)
            fresh = statistics.median(latencies[1:])  # the first one warms the path up
            FIGURES.append({"scenario": "topology: 200 -> API via standby (median s)",
                            "sent": 6, "acked": 6, "lost": 0, "duplicated": 0,
                            "recover_s": round(fresh, 2),
                            "faults": f"3 brokers, primary + standby, 2 workers; "
                                      f"max {max(latencies[1:]):.2f} s"})
            assert fresh <= 1.0, latencies

            # 2. the lag metric under a backlog, on whichever worker owns the partitions
            metrics = [f"http://127.0.0.1:{port}/metrics" for port in ports]
            await _backlog(s, 20_000)
            seen_lag = 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                lag = sum([await _lag(http, m) for m in metrics])
                seen_lag = max(seen_lag, lag)
                if seen_lag and lag == 0:
                    break
                await asyncio.sleep(0.1)
            assert seen_lag > 0 and lag == 0, (seen_lag, lag)

            # 3. /readyz follows the brokers
            ready = p.base + "/readyz"
            assert await _status(http, ready) == 200
            for node in (1, 2, 3):
                cluster.kill(node)
            assert await eventually(lambda: _is(http, ready, 503), timeout=30)
            cluster.restart(1, 2, 3)
            assert await eventually(lambda: _is(http, ready, 200), timeout=90)
    finally:
        second.stop()
        await p.stop()
        standby.stop()
        primary.stop()
        cluster.stop()


async def _in_recovery(dsn: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
    finally:
        await conn.close()


async def _listed(http: aiohttp.ClientSession, base: str, phone: str) -> bool:
    async with http.get(base + "/api/leads", params={"q": "+" + phone},
                        headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        return r.status == 200 and bool((await r.json())["leads"])


async def _backlog(s: Settings, n: int) -> None:
    """`n` inbound events straight onto the events topic (faster than any webhook)."""
    ws = Workspace("ws1")
    now = datetime.now(UTC)
    producer = make_producer(s, linger_ms=20)
    await producer.start()
    try:
        futs = []
        for i in range(n):
            body = kapso_message(PNID, wa_id=f"62812{62000000 + i % 500:08d}",
                                 wamid=f"wamid.backlog{i}", text="halo", ts=1_760_000_100 + i)
            (ev,) = parse_kapso(ws, "whatsapp.message.received", body, now)
            futs.append(await producer.send(s.topic("events"), encode(ev),
                                            key=ev.lead_key.encode()))
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def _lag(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url) as r:
            text = await r.text()
    except aiohttp.ClientError:
        return 0
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("leadstream_worker_consumer_lag{"))


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return -1


async def _is(http: aiohttp.ClientSession, url: str, want: int) -> bool:
    return await _status(http, url) == want
