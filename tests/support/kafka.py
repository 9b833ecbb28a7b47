"""Reading a topic from a test."""

from __future__ import annotations

import asyncio

import aiokafka

from leadstream.config import Settings


async def read_topic(settings: Settings, topic: str, n: int, timeout: float = 10) -> list[bytes]:
    """The first `n` values of `topic` (from the start), or fewer after `timeout`: raises."""
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap,
                                         auto_offset_reset="earliest", fetch_max_wait_ms=20)
    await consumer.start()
    out: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < n:
                for rs in (await consumer.getmany(timeout_ms=100)).values():
                    out += [r.value for r in rs]
    finally:
        await consumer.stop()
    return out
