"""Faust's aiokafka transport for Apache Kafka, as we run it: our consumer
(`faust_consumer.SafeOffsetsConsumer`) and an idempotent producer, under the URL scheme
`lskafka://` (`broker.clients.faust_broker_url`). Tansu's transport is `broker.tansu`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

from leadstream.broker.faust_consumer import SafeOffsetsConsumer
from leadstream.broker.producer import FaustProducer

SCHEME = "lskafka"


class IdempotentProducer(FaustProducer):
    """Faust's producer with `enable_idempotence` on Apache Kafka: a send retried after a lost
    answer is not written twice to a changelog or an output topic (Faust turns it on only
    for exactly-once, which needs transactions we do not use)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class SeekFirstTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport for Apache Kafka: `SafeOffsetsConsumer`, the idempotent
    producer; URL scheme `lskafka://`."""

    Consumer = SafeOffsetsConsumer
    Producer = IdempotentProducer


def register_transport() -> None:
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:SeekFirstTransport")
