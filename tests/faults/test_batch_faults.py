"""The batch hot path under faults (issue #15): a backlog drained in many small flushes, the
worker SIGKILLed in the middle of one, a second worker joining (a rebalance) while flushes
are in flight and traffic flows, and a poison record inside a batch. The replica must equal
the oracle: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
import pytest

from leadstream.broker.clients import make_producer
from leadstream.config import Settings
from tests.support.faults import Delivery, converge, oracle, report, workload
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import Pipeline, Worker, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _send_all(p: Pipeline, deliveries: list[Delivery], concurrency: int = 32
                    ) -> list[Delivery]:
    sem = asyncio.Semaphore(concurrency)

    async def one(d: Delivery) -> Delivery:
        async with sem:
            status = await p.kapso(d.event, d.body)
            assert status == 200, status
            return d

    return list(await asyncio.gather(*(one(d) for d in deliveries)))


async def _rows(p: Pipeline) -> int:
    row = await p.fetchrow("SELECT count(*) AS n FROM messages")
    return int(row["n"]) if row else 0


async def test_sigkill_mid_flush_and_a_rebalance_mid_batch_lose_and_double_nothing(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path
) -> None:
    # small flushes, so that a kill at any moment of the drain lands inside one
    s = settings.model_copy(update={"flush_max_events": 20, "topic_partitions": 8})
    first = workload(leads=50, per_lead=50, seed=31, first_phone=41_000_000)
    second = workload(leads=50, per_lead=20, seed=32, first_phone=41_000_000)
    p = await pipelines(s, worker=False)
    other = Worker(s, str(tmp_path / "worker-b.log"))
    try:
        acked = await _send_all(p, first)  # a backlog: no worker yet
        p.worker.start()
        # the first rows: the drain is under way (it takes well under a second)
        await eventually(lambda: _at_least(p, 1), timeout=120, every=0.005)
        p.worker.kill()  # mid-drain: inside a flush, or between two
        t_kill = time.monotonic()
        at_kill = await _rows(p)
        assert at_kill < len(first), "the drain ended before the kill: raise the backlog"
        p.worker.start()
        await eventually(lambda: _at_least(p, at_kill + 1), timeout=90)
        recovered = time.monotonic() - t_kill
        # a second worker joins while the first drains and new traffic arrives: partitions
        # are revoked from the first with batches in flight
        other.start()
        acked += await _send_all(p, second, concurrency=8)
        result = await converge(p, *oracle(acked), timeout=180)
        report("batch path: SIGKILL mid-flush + rebalance", sent=len(acked),
               acked=len(acked), faults=f"SIGKILL at {at_kill}/{len(first)} rows, 2nd worker"
               " joins mid-drain, flushes of <=20", result=result, recover_s=recovered)
        assert result.equal, result
        assert "batch path on" in p.worker.log_tail(4000)
    finally:
        other.stop()
        await p.stop()


async def _at_least(p: Pipeline, n: int) -> bool:
    return await _rows(p) >= n


async def test_a_poison_record_inside_a_batch_is_dead_lettered_and_its_batch_applied(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path
) -> None:
    """Records produced straight to the events topic, one of them undecodable, all in one
    fetch: the poison goes to the dead-letter topic (and `sync_failures`), the others to the
    replica, and the partition goes on."""
    p = await pipelines(settings, worker=False)
    producer = make_producer(settings)
    await producer.start()
    try:
        good = list(workload(leads=3, per_lead=4, seed=33, first_phone=42_000_000))
        acked = await _send_all(p, good[:6])
        key = b"ws1:+6281242000000"
        await producer.send_and_wait(settings.topic("events"),
                                     orjson.dumps({"lead_key": key.decode(), "kind": 7}),
                                     key=key)
        acked += await _send_all(p, good[6:])
        p.worker.start()
        result = await converge(p, *oracle(acked), timeout=120)
        assert result.equal, result

        async def failed() -> bool:
            row = await p.fetchrow("SELECT reason FROM sync_failures WHERE stage = 'worker'")
            return row is not None and "invalid record" in row["reason"]

        await eventually(failed, timeout=60)
    finally:
        await producer.stop()
        await p.stop()


async def test_a_worker_frozen_past_its_session_rejoins_and_goes_on(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path
) -> None:
    """SIGSTOP (a VM pause, a long GC) for longer than the session timeout: the group moves
    on without the worker; after SIGCONT it rejoins, and new messages show within seconds."""
    import os
    import signal

    p = await pipelines(settings)
    try:
        first = workload(leads=5, per_lead=4, seed=34, first_phone=44_000_000)
        acked = await _send_all(p, first)
        assert (await converge(p, *oracle(acked), timeout=90)).equal
        assert p.worker.proc is not None
        # frozen while busy: a wave arrives, and the worker stops in the middle of it
        acked += await _send_all(p, workload(leads=5, per_lead=20, seed=36,
                                             first_phone=44_000_000))
        os.kill(p.worker.proc.pid, signal.SIGSTOP)
        await asyncio.sleep(float(os.environ.get("LEADSTREAM_TEST_FREEZE_S",
                                                 3 * settings.session_timeout_seconds)))
        os.kill(p.worker.proc.pid, signal.SIGCONT)
        t0 = time.monotonic()
        acked += await _send_all(p, workload(leads=5, per_lead=4, seed=35,
                                             first_phone=44_000_000))
        result = await converge(p, *oracle(acked), timeout=90)
        report("batch path: worker frozen past its session", sent=len(acked),
               acked=len(acked), faults=f"SIGSTOP {settings.session_timeout_seconds * 3:.0f}"
               " s, then SIGCONT", result=result, recover_s=time.monotonic() - t0)
        if not result.equal:  # what every task of the worker waits on (mode's SIGUSR1)
            os.kill(p.worker.proc.pid, signal.SIGUSR1)
            await asyncio.sleep(3)
            print(p.worker.log_tail(400))
        assert result.equal, result
    finally:
        await p.stop()


@pytest.mark.kafka
async def test_a_record_the_broker_refuses_is_dead_lettered_and_the_partition_flows(pipelines: StartPipeline,
        kafka_settings: Settings, tmp_path: Path) -> None:
    """Issue #24: a produce the broker refuses for good (a record over the topic's size
    limit) was retried forever, stopping every partition of the worker. Now the refused
    record is dead-lettered with its reason (stage `produce`, its workspace named) and
    everything else goes on: later messages of the same lead and of other leads arrive.
    The limit is lowered on the `leads` topic so a lead with a long story exceeds it. The
    story is random CJK text: the producers compress (zstd on Apache Kafka), and the limit
    holds for the compressed batch, which a repeated character would not reach."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from leadstream.broker.clients import ensure_topics, make_admin, topic_configs
    from leadstream.db.registry import add_workspace
    from leadstream.streams import topics as T

    s = kafka_settings
    await ensure_topics(s)
    admin = make_admin(s)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, s.topic(T.LEADS),
            configs={**topic_configs(T.LEADS, s), "max.message.bytes": "10000"})])
    finally:
        await admin.close()
    p = await pipelines(s)
    try:
        assert p.pool is not None
        async with p.pool.acquire() as conn:
            await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                                webhook_secret=None, api_token="tok-sarah-big", role="sarah-bot")
        assert await p.message("6281377001001", "wamid.big.1", text="halo") == 200
        await eventually(lambda: p.fetchrow("SELECT 1 FROM messages WHERE message_id ="
                                            " 'wamid.big.1'"), timeout=60)
        assert p.session is not None
        rng = random.Random(7)
        async with p.session.post(f"{p.base}/api/sarah/state", json={
                "contact_phone": "081377001001", "state": "qualifying",
                "extracted_data": {"story": "".join(
                    chr(0x4E00 + rng.randrange(20_000)) for _ in range(9_000))}},
                headers={"Authorization": "Bearer tok-sarah-big"}) as r:
            assert r.status == 202
        failure = await eventually(lambda: p.fetchrow(
            "SELECT * FROM sync_failures WHERE stage = 'produce'"), timeout=60)
        assert failure["source_topic"] == s.topic(T.LEADS)
        assert failure["workspace_id"] == "ws1" and "refuses" in failure["reason"]
        # the same lead (same partition) and other leads keep flowing
        for i in range(2, 6):
            assert await p.message("6281377001001", f"wamid.big.{i}", text=f"lagi {i}",
                                   ts=1_760_000_000 + i) == 200
            assert await p.message(f"62813770010{10 + i}", f"wamid.other.{i}") == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM messages WHERE message_id IN ('wamid.big.5', 'wamid.other.5')"
            " HAVING count(*) = 2"), timeout=60)
        assert "stalled" not in p.worker.log_tail(400)
    finally:
        await p.stop()
