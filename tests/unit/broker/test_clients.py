"""`broker.clients.new_batch`: a producer that compresses sends a batch of a few records as it
is, and a larger one compressed (the codec read from the record batch the producer would
send)."""

from __future__ import annotations

import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from leadstream.broker.clients import COMPRESS_FROM, new_batch
from leadstream.broker.producer import TrackingProducer

ZSTD = 4  # the record batch attributes' codec bits (Kafka's protocol)


def _codec(producer: TrackingProducer, records: int) -> int:
    batch = new_batch(producer, records)
    for i in range(records):
        assert batch.append(key=b"k%d" % i, value=b"v" * 100, timestamp=None) is not None
    return int(DefaultRecordBatch(bytearray(batch._build())).compression_type)


@pytest.mark.parametrize("idempotent", [True, False])
async def test_few_records_go_uncompressed_many_compressed(idempotent: bool) -> None:
    producer = TrackingProducer(bootstrap_servers="localhost:1", compression_type="zstd",
                                enable_idempotence=idempotent)
    try:
        assert _codec(producer, 1) == 0
        assert _codec(producer, COMPRESS_FROM - 1) == 0
        assert _codec(producer, COMPRESS_FROM) == ZSTD
        assert _codec(producer, 50) == ZSTD
    finally:
        await producer.stop()


async def test_an_uncompressing_producer_never_compresses() -> None:
    producer = TrackingProducer(bootstrap_servers="localhost:1")
    try:
        assert _codec(producer, 1) == 0
        assert _codec(producer, 50) == 0
    finally:
        await producer.stop()
