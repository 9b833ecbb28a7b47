"""Writes records to the broker and returns only once the broker acknowledged them (acks=all).

If the broker is unreachable at start the server still starts and answers 503 until a
connection is made; a send that is not acknowledged within `publish_timeout_seconds` raises
`BrokerUnavailable`, which the handlers turn into 503 (the sender retries). Never a 200
without a durable write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiokafka
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from leadstream.broker.clients import COMPRESS_FROM, make_producer
from leadstream.config import Settings
from leadstream.retry import Backoff

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    pass


class RecordTooLarge(Exception):
    """The broker (or the producer's request limit) refuses a record for its size: the
    request is too large (413), not something to retry."""


class Publisher:
    """The webhook's and API's producer. Under `LEADSTREAM_PRODUCER_COMPRESSION=auto` it
    keeps two: one uncompressed for single deliveries and commands (the latency path: with
    zstd the p99 from 200 to visible at 1,000/s single was 146-492 ms in five runs against
    113-123 ms without) and a zstd one for requests of `broker.clients.COMPRESS_FROM`
    records or more (batches of 50 uncompressed cost the broker 0.062 ms an event against
    0.012 compressed, and end to end ran at 5,955-6,174 ev/s against 7,248; bench/suite.py,
    BENCHMARKS.md). A request's records go through one producer, so their order holds; two
    concurrent requests had no order to keep."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: aiokafka.AIOKafkaProducer | None = None
        #: the compressing producer for large requests (None: `producer` takes all)
        self.bulk: aiokafka.AIOKafkaProducer | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self.published = 0


    async def start(self) -> None:
        self._connect_task = asyncio.create_task(self._connect_forever())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connect_task), timeout=5)

    async def _connect_forever(self) -> None:
        backoff = Backoff(0.2)
        while True:
            split = (self.settings.producer_compression == "auto"
                     and self.settings.compression_type is not None)
            producer = make_producer(self.settings, **(
                {"compression_type": None} if split else {}))
            bulk = make_producer(self.settings) if split else None
            try:
                await producer.start()
                if bulk is not None:
                    await bulk.start()
            except KafkaError as exc:
                log.warning("broker not reachable (%s); retrying in %.1fs", exc, backoff.delay)
                for p in (producer, bulk):
                    if p is not None:
                        with contextlib.suppress(Exception):
                            await p.stop()
                await backoff.wait()
                continue
            self.bulk = bulk
            self.producer = producer
            log.info("connected to the broker at %s", self.settings.bootstrap)
            return

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
        if self.producer is not None:
            await self.producer.stop()
        if self.bulk is not None:
            await self.bulk.stop()

    @property
    def ready(self) -> bool:
        return self.producer is not None

    async def publish(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        """Send all records; return when every one is acknowledged, else BrokerUnavailable."""
        if self.producer is None:
            raise BrokerUnavailable("not connected to the broker")
        try:
            # one `send` per record, not `send_batch`: aiokafka's add_batch waits until every
            # pending batch of the partition has drained, so concurrent requests queued per
            # partition (one timed out at 5 s under the fuzzer); `send` appends to the open
            # batch, which records of concurrent requests share (README, BENCHMARKS)
            producer = (self.bulk if self.bulk is not None and len(records) >= COMPRESS_FROM
                        else self.producer)
            futures = [await producer.send(topic, value, key=key)
                       for topic, key, value in records]
            await asyncio.wait_for(asyncio.gather(*futures),
                                   timeout=self.settings.publish_timeout_seconds)
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            raise RecordTooLarge(f"record refused for its size: {exc!r}") from exc
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc
        self.published += len(records)
