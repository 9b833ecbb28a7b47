"""A fix for Faust's consumer (broker-agnostic): source partitions start at the committed offset.

faust-streaming 0.15.3 marks newly assigned partitions active at once, and its recovery
resumes the flow (to read changelogs) before `perform_seek()` moves the source partitions to
their committed offsets. Records fetched in between come from wherever the client's position
is (the earliest offset on a fresh consumer), are processed, and are then processed again
after the seek; the partition's read-offset/ack bookkeeping is left inconsistent (we saw a
partition stop being processed after a restart until the next one). This is
faust-streaming #596 / robinhood/faust #625.

`SeekFirstConsumerThread` seeks every assigned source partition to its committed offset in
the consumer thread as soon as it is assigned, before Faust's callbacks run, so whatever is
fetched early starts where the seek would have put it. Duplicates that remain are harmless:
the agents are idempotent by content.
"""

from __future__ import annotations

import logging

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

SCHEME = "lskafka"


class SeekFirstConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        consumer = self._ensure_consumer()
        for tp in assigned:
            if self.consumer._is_changelog_tp(tp):
                continue
            ktp = TopicPartition(tp.topic, tp.partition)
            committed = await consumer.committed(ktp)
            if committed is not None and committed >= 0:
                consumer.seek(ktp, committed)
        await super().on_partitions_assigned(assigned, generation_id)


class SeekFirstConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return SeekFirstConsumerThread(self, loop=self.loop, beacon=self.beacon)


class SeekFirstTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with `SeekFirstConsumer`; URL scheme `lskafka://`."""

    Consumer = SeekFirstConsumer


def register_transport() -> None:
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:SeekFirstTransport")
