"""`TrackingProducer` (leadstream.broker.producer): a batch for a topic the client knew but did
not track is delivered, where aiokafka's own producer waits until the batch expires (the
fresh-start stall of issue #30, made deterministic)."""

from __future__ import annotations

import asyncio
import uuid

import aiokafka
import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from leadstream.broker.clients import make_admin
from leadstream.broker.producer import TrackingProducer
from leadstream.config import Settings
from tests.support.fixtures import EXTRA_TAGS

pytestmark = [pytest.mark.integration, pytest.mark.tansu]


async def _untracked_batch(producer: aiokafka.AIOKafkaProducer, known: str, other: str
                           ) -> asyncio.Future[object]:
    """Queue a record for `known` (in the client's view from a fetch-everything refresh, as
    Faust's topic creation leaves it, never tracked), then make the client track only
    `other` before the batch leaves: the refresh drops `known` from the client's view while
    its batch waits for a leader."""
    await producer.start()
    await producer.client.force_metadata_update()  # nothing tracked yet: every topic
    assert producer.client.cluster.partitions_for_topic(known)
    fut: asyncio.Future[object] = await producer.send(known, b"v", key=b"k", partition=0)
    await producer.client.add_topic(other)  # a refresh that asks for `other` alone
    return fut


async def test_a_batch_for_an_untracked_topic_is_delivered(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    EXTRA_TAGS.append(tag)
    known, other = f"known-{tag}", f"other-{tag}"
    admin = make_admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in (known, other)])
    finally:
        await admin.close()
    await asyncio.sleep(0.5)  # leaders elected

    def make(cls: type[aiokafka.AIOKafkaProducer]) -> aiokafka.AIOKafkaProducer:
        # linger keeps the batch in the accumulator until after the refresh
        return cls(bootstrap_servers=settings.bootstrap, linger_ms=1000,
                   request_timeout_ms=6_000)

    # aiokafka's producer (the bug this module answers): the batch waits for a leader of a
    # topic its refreshes never ask about, until it expires (request_timeout_ms)
    plain = make(aiokafka.AIOKafkaProducer)
    try:
        fut = await _untracked_batch(plain, known, other)
        done, _ = await asyncio.wait([fut], timeout=4)
        assert not done, "aiokafka delivered it: the upstream bug may be fixed"
        assert plain.client.cluster.partitions_for_topic(known) is None
        with pytest.raises(KafkaError):  # expired, never sent
            await asyncio.wait_for(fut, 10)
    finally:
        await plain.stop()

    tracking = make(TrackingProducer)
    try:
        fut = await _untracked_batch(tracking, known, other)
        meta = await asyncio.wait_for(fut, 5)
        assert getattr(meta, "topic", None) == known
    finally:
        await tracking.stop()
