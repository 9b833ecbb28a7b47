"""A managed Kafka's security (issue #16): the whole pipeline (webhook, worker with Faust, the
in-process sink) and the CLI on a SASL listener, with SCRAM-SHA-256; PLAIN and SCRAM-SHA-512
through the clients every process makes; a wrong password refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from leadstream.broker.clients import make_consumer, make_producer
from leadstream.config import Settings
from tests.support.cli import acli
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kafka]

USER, PASSWORD = "leadstream", "s3cret-Pa55"


async def test_pipeline_and_clients_on_a_sasl_listener(
        pipelines: StartPipeline, kafka_settings: Settings,
        tmp_path: Path) -> None:
    from leadstream.embedded.kafka import KafkaCluster

    cluster = KafkaCluster(tmp_path / "kafka", sasl_users={USER: PASSWORD}).start()
    s = kafka_settings.model_copy(update={
        "kafka_bootstrap_servers": cluster.sasl_bootstrap,
        "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": USER, "kafka_sasl_password": PASSWORD})
    try:
        p = await pipelines(s)
        try:
            assert await p.message("6281270000001", "wamid.sasl1") == 200
            row = await eventually(lambda: p.fetchrow("SELECT message_count FROM leads"),
                                   timeout=90)
            assert row["message_count"] == 1
            status = await acli(["status", "--json"], env=s.to_env())  # the CLI too
            assert status.exit_code == 0, status.output
            assert '"worker"' in status.output
        finally:
            await p.stop()

        for mechanism in ("PLAIN", "SCRAM-SHA-512"):
            m = s.model_copy(update={"kafka_sasl_mechanism": mechanism})
            await _round_trip(m, f"{s.topic('events')}")

        wrong = s.model_copy(update={"kafka_sasl_password": "not-it"})
        producer = make_producer(wrong, request_timeout_ms=5000)
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.start(), 30)
        await producer.stop()
    finally:
        cluster.stop()


async def _round_trip(s: Settings, topic: str) -> None:
    """A record produced and read back through the clients the processes make."""
    producer = make_producer(s)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"ping", key=b"k")
    finally:
        await producer.stop()
    consumer = make_consumer(s, group_id=None)
    await consumer.start()
    try:
        from aiokafka.structs import TopicPartition

        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        got = await consumer.getmany(tp, timeout_ms=10_000)
        assert [r.value for r in got[tp]][:1] == [b"ping"]
    finally:
        await consumer.stop()
