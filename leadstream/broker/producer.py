"""The producer every process uses: aiokafka's, tracking the metadata of each topic it
writes to (issue #30, a fresh start that processed nothing while saying "Ready").

aiokafka 0.14 keeps metadata only for the topics in its client's tracked set
(`AIOKafkaClient._topics`). While that set is empty it fetches every topic; once one topic is
in it, every refresh asks for those topics alone and *replaces* the cluster view, so a topic
outside the set disappears from it. A topic enters the set only when a send finds it unknown
(`AIOKafkaClient._wait_on_metadata`): a topic that was already known from an earlier
fetch-everything refresh is sent to without being tracked. If its batch then meets a
partition without a known leader (a topic created a moment ago: its leaders are still being
elected), the sender forces a refresh, which does not ask for that topic, which leaves the
leader unknown, which forces another refresh... until the batch expires after
`request_timeout_ms` (Faust's producer: 1,200 s). Seen on fresh `leadstream up` stacks: the
worker's first flush waited for its changelog batches (created by Faust a second earlier)
for 20 minutes, and the worker, healthy in every other respect, processed nothing.

The Java client adds the topic on every send (`Metadata.add`); so does this producer: a topic
not yet tracked is added before the send, which forces one refresh that includes it. That is
one metadata round trip per topic per producer, once.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class TrackingProducer(aiokafka.AIOKafkaProducer):
    """`AIOKafkaProducer` that tracks the metadata of every topic it sends to."""

    def track(self, topic: str) -> None:
        """Keep `topic` in the client's metadata refreshes (forces one refresh if new)."""
        client = self.client
        if topic not in client._topics:  # aiokafka 0.14: the tracked set
            client.add_topic(topic)

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        self.track(topic)
        return await super().send(topic, *args, **kwargs)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        self.track(topic)
        return await super().send_batch(batch, topic, partition=partition)


class FaustProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer, built on `TrackingProducer` (changelogs, outputs, ticks)."""

    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return TrackingProducer
