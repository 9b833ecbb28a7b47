"""Each embedded-broker workaround, shown necessary (the quirk is observed) and sufficient.

These run only against Tansu (the default embedded broker); with Apache Kafka the quirks do
not exist and the workarounds are never installed.
"""

from __future__ import annotations

import asyncio
import uuid

import aiokafka
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from leadstream.broker import tansu
from leadstream.broker.clients import make_consumer, make_producer
from leadstream.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.tansu]


@pytest.fixture
def tansu_only(broker: tuple[str, str]) -> str:
    if broker[1] != "tansu":
        pytest.skip("Tansu-specific behaviour; the broker under test is Apache Kafka")
    return broker[0]


async def _topic(bootstrap: str, partitions: int = 1) -> str:
    name = "q" + uuid.uuid4().hex[:10]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, partitions, 1)])
    await admin.close()
    return name


async def test_list_offsets_is_low_for_multi_record_batches_and_fetch_watermark_fixes_it(
    tansu_only: str,
) -> None:
    topic = await _topic(tansu_only)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=tansu_only, linger_ms=50)
    await producer.start()
    futures = [await producer.send(topic, b"v%d" % i) for i in range(10)]  # one batch
    await asyncio.gather(*futures)
    await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=tansu_only)
    await consumer.start()
    try:
        listed = await consumer.end_offsets([tp])
        # the quirk: base offset of the last batch + 1, not the log end
        assert listed[tp] == 1
        fixed = await tansu.true_end_offsets(tansu_only, listed)
        assert fixed[tp] == 10
    finally:
        await consumer.stop()


async def test_true_end_offsets_on_empty_and_single_record_batches(tansu_only: str) -> None:
    topic = await _topic(tansu_only, partitions=2)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=tansu_only)
    await producer.start()
    for i in range(3):
        await producer.send_and_wait(topic, b"x%d" % i, partition=1)  # one record per batch
    await producer.stop()
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=tansu_only)
    await consumer.start()
    try:
        fixed = await tansu.true_end_offsets(tansu_only, await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
    assert fixed == {tps[0]: 0, tps[1]: 3}


async def _members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        desc = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    # DescribeGroupsResponse.groups: (error_code, group_id, state, protocol_type, protocol,
    #                                 members, ...)
    groups = desc[0].groups
    return len(groups[0][5]) if groups else 0


async def _join_and_stop(bootstrap: str, topic: str, group: str, fix: bool) -> int:
    consumer = aiokafka.AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, session_timeout_ms=6000,
        heartbeat_interval_ms=1000, rebalance_timeout_ms=6000,
    )
    if fix:
        tansu.install_leave_group_fix(consumer)
    await consumer.start()
    for _ in range(200):
        if consumer.assignment():
            break
        await asyncio.sleep(0.05)
    assert consumer.assignment(), "consumer never got partitions"
    generation = consumer._coordinator.generation
    await consumer.stop()
    return int(generation)


async def test_first_generation_member_leaves_only_with_the_fix(tansu_only: str) -> None:
    topic = await _topic(tansu_only)
    plain, fixed = "g" + uuid.uuid4().hex[:8], "g" + uuid.uuid4().hex[:8]
    # the quirk: a new group's first generation is 0, so stock aiokafka never sends LeaveGroup
    assert await _join_and_stop(tansu_only, topic, plain, fix=False) == 0
    assert await _members(tansu_only, plain) == 1
    assert await _join_and_stop(tansu_only, topic, fixed, fix=True) == 0
    assert await _members(tansu_only, fixed) == 0


async def test_idempotent_producer_is_rejected_so_ours_is_plain_acks_all(
    tansu_only: str, settings: Settings
) -> None:
    topic = await _topic(tansu_only)
    idem = aiokafka.AIOKafkaProducer(bootstrap_servers=tansu_only, enable_idempotence=True,
                                     request_timeout_ms=3000)
    with pytest.raises((KafkaError, asyncio.TimeoutError)):
        await asyncio.wait_for(idem.start(), 10)
    await idem.stop()
    ours = make_producer(settings)
    await ours.start()
    try:
        meta = await ours.send_and_wait(topic, b"ok")
        assert meta.offset == 0
    finally:
        await ours.stop()


async def test_consumers_get_the_short_fetch_wait_only_on_tansu(settings: Settings) -> None:
    on_tansu = make_consumer(settings.model_copy(update={"kafka_flavor": "tansu"}), group_id=None)
    on_kafka = make_consumer(settings.model_copy(update={"kafka_flavor": "kafka"}), group_id=None)
    assert on_tansu._fetch_max_wait_ms == settings.fetch_max_wait_ms < 1500  # Faust's 1500
    assert on_kafka._fetch_max_wait_ms == 100
    # the operator's trade of latency per hop against idle fetches, and a caller's own wait
    tuned = settings.model_copy(update={"kafka_flavor": "tansu", "fetch_max_wait_ms": 45})
    assert make_consumer(tuned, group_id=None)._fetch_max_wait_ms == 45
    assert make_consumer(tuned, group_id=None, fetch_max_wait_ms=500)._fetch_max_wait_ms == 500
