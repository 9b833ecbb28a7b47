"""What only Apache Kafka does, proven on it: compaction of the derived topics followed by a
replay, and a three-broker cluster losing a broker mid-stream. Skipped on Tansu (it never
compacts and runs one node)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from leadstream.broker.clients import log_ends, read_to_end, topic_configs
from leadstream.config import Settings
from leadstream.sink.replay import replay_and_verify
from leadstream.streams import topics as T
from tests.support.faults import Delivery, converge, oracle, report, workload
from tests.support.fixtures import TEST_BROKER_PROPS, StartPipeline
from tests.support.pipeline import Pipeline, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kafka]




async def _records_and_span(s: Settings, topic: str) -> tuple[int, int]:
    """(records readable from the start, offsets spanned): fewer records than offsets means
    the log was compacted."""
    records = 0
    async for batch, _goal in read_to_end(s, [topic]):
        records += len(batch)
    return records, sum((await log_ends(s, [topic])).values())


async def test_compacted_derived_topics_replay_to_an_equal_replica(pipelines: StartPipeline,
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Kafka compacts `leads` (many snapshots per lead: only the newest is kept) while
    `messages` keeps every message (keyed by lead, so it must never be compacted); a replay
    from the compacted log rebuilds a replica equal to the live one, no message row missing."""
    s = kafka_settings
    assert TEST_BROKER_PROPS["log.cleaner.backoff.ms"] == "1000"
    p = await pipelines(s)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap)
    await admin.start()
    try:
        # make the cleaner work now: roll segments every 200 ms, clean at any dirt ratio
        eager = {"segment.ms": "200", "min.cleanable.dirty.ratio": "0.001",
                 "delete.retention.ms": "100", "min.compaction.lag.ms": "0"}
        await admin.alter_configs([
            ConfigResource(ConfigResourceType.TOPIC, s.topic(name),
                           configs={**topic_configs(name, s), **eager})
            for name in (T.LEADS, T.MESSAGES)])
        acked: list[Delivery] = []
        for r in range(3):  # rounds a while apart, so segments roll between them
            batch = workload(leads=12, per_lead=5, seed=10 + r, first_phone=41_000_000)
            for d in batch:
                assert await p.kapso(d.event, d.body) == 200
            acked += batch
            await converge(p, *oracle(acked), timeout=60)
            await asyncio.sleep(0.5)

        async def compacted() -> bool:
            # a record appended later rolls the last segment so the cleaner may take it
            roll = workload(leads=1, per_lead=1, seed=time.monotonic_ns(),
                            first_phone=49_000_000)
            assert await p.kapso(roll[0].event, roll[0].body) == 200
            acked.extend(roll)
            records, span = await _records_and_span(s, s.topic(T.LEADS))
            return records < span

        await eventually(compacted, timeout=90, every=1.0)
        assert (await converge(p, *oracle(acked), timeout=60)).equal
        msg_records, msg_span = await _records_and_span(s, s.topic(T.MESSAGES))
        assert msg_records == msg_span, "messages must never be compacted"

        result = await replay_and_verify(s)
        assert result["equal"], result["tables"]
        _, want_msgs = oracle(acked)
        got = {r["message_id"] for r in await p.fetch("SELECT message_id FROM messages")}
        assert set(want_msgs) <= got, sorted(set(want_msgs) - got)[:10]
    finally:
        await admin.close()
        await p.stop()


async def _send_retrying(p: Pipeline, deliveries: list[Delivery], rate: float
                         ) -> tuple[list[Delivery], int]:
    """As Kapso does: a delivery answered 503 is sent again (after a pause) until it is 200.
    Returns the acknowledged deliveries and how many answers were 503."""
    refused = 0
    start = time.monotonic()
    for n, d in enumerate(deliveries):
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        while (status := await p.kapso(d.event, d.body)) == 503:
            refused += 1
            await asyncio.sleep(0.5)
        assert status == 200, status
    return deliveries, refused


async def test_three_brokers_one_killed_mid_stream_loses_nothing(pipelines: StartPipeline,
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """Three brokers, every topic RF 3 with min.insync.replicas 2 and acks=all: a broker
    SIGKILLed while the webhook takes traffic and the worker processes loses no acknowledged
    event and counts none twice (the fault suite's oracle)."""
    from leadstream.embedded.kafka import KafkaCluster

    cluster = KafkaCluster(tmp_path / "cluster", nodes=3).start()
    s = kafka_settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap,
                                          "topic_replication": 3})
    assert s.min_insync == 2
    deliveries = workload(leads=20, per_lead=12, seed=21, first_phone=42_000_000)
    p = await pipelines(s)
    try:
        half = len(deliveries) // 2
        acked, refused = await _send_retrying(p, deliveries[:half], rate=40)
        assert (await converge(p, *oracle(acked), timeout=120)).equal
        cluster.kill(2)
        t_kill = time.monotonic()
        # recovered: a delivery sent after the kill is acknowledged and in the replica
        probe, refused_after = await _send_retrying(p, deliveries[half:half + 1], rate=40)
        acked += probe
        await eventually(lambda: p.fetchrow("SELECT 1 FROM messages WHERE message_id = $1",
                                            probe[0].body["message"]["id"]), timeout=120)
        recover_s = time.monotonic() - t_kill
        more, refused_more = await _send_retrying(p, deliveries[half + 1:], rate=40)
        acked += more
        result = await converge(p, *oracle(acked), timeout=180)
        report("3 brokers, one SIGKILLed (RF 3, ISR 2)", sent=len(deliveries),
               acked=len(acked), result=result, recover_s=recover_s,
               faults=f"1 of 3 brokers SIGKILLed mid-stream, "
                      f"{refused + refused_after + refused_more} "
                      f"answers 503 (retried)")
        assert result.equal, result
    finally:
        await p.stop()
        cluster.stop()
