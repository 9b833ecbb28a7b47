"""Factories for aiokafka clients and topic creation. The only place that knows the flavor."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sized
from typing import Any

import aiokafka
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import ConsumerRecord, TopicPartition

from leadstream.broker import faust_transport, tansu
from leadstream.broker.producer import TrackingProducer
from leadstream.config import Settings
from leadstream.streams import topics as T
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

#: the largest record we produce: a dead letter with a whole webhook body (topic_configs)
DLQ_MAX_RECORD_BYTES = 16 * 1024 * 1024
#: records from which a produce batch is compressed (when the producer compresses at all);
#: a smaller one goes as it is: zstd on a batch of one or two records costs the client
#: ~0.1 ms and saves the broker nothing worth it (BENCHMARKS.md, "Session 14")
COMPRESS_FROM = 10


def is_tansu(settings: Settings) -> bool:
    return settings.kafka_flavor == "tansu"


def faust_broker_url(settings: Settings) -> str:
    """`tansu://` selects the Tansu transport, `lskafka://` Faust's aiokafka transport with
    our consumer fix (`broker.faust_transport`); both are Faust + aiokafka underneath."""
    if is_tansu(settings):
        tansu.register_transport()
        scheme = tansu.SCHEME
    else:
        faust_transport.register_transport()
        scheme = faust_transport.SCHEME
    return ";".join(f"{scheme}://{h.strip()}" for h in settings.bootstrap.split(","))


def make_producer(settings: Settings, **overrides: Any) -> TrackingProducer:
    """acks=all; idempotent on Apache Kafka (a retried send is never written twice), plain on
    Tansu, which rejects InitProducerId (the pipeline is idempotent downstream anyway)."""
    kw: dict[str, Any] = dict(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=DLQ_MAX_RECORD_BYTES,
        request_timeout_ms=int(settings.publish_timeout_seconds * 1000),
        enable_idempotence=not is_tansu(settings),
        compression_type=settings.compression_type,
        **settings.kafka_security(),
    )
    kw.update(overrides)
    return TrackingProducer(**kw)


def make_admin(settings: Settings, **kw: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap,
                               **settings.kafka_security(), **kw)


async def group_offsets(settings: Settings, groups: Iterable[str]
                        ) -> dict[str, dict[TopicPartition, int]]:
    """The offsets each consumer group committed, per partition (empty: an unknown group),
    through one admin connection."""
    admin = make_admin(settings, request_timeout_ms=5000)
    await admin.start()
    try:
        out = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            out[group] = {tp: int(om.offset) for tp, om in offsets.items() if om.offset >= 0}
        return out
    finally:
        await admin.close()


def new_batch(producer: aiokafka.AIOKafkaProducer, records: int) -> BatchBuilder:
    """An empty batch for `records` records: the producer's own (its compression), or, for
    fewer than `COMPRESS_FROM`, the same batch uncompressed. aiokafka compresses per batch
    but takes the codec per producer, so the batch is built here as `create_batch` builds it
    (aiokafka 0.14: the accumulator's size, codec and transaction state)."""
    acc = producer._message_accumulator
    if records >= COMPRESS_FROM or not acc._compression_type:
        return producer.create_batch()
    txn = acc._txn_manager
    return BatchBuilder(acc._batch_size, 0,
                        is_transactional=txn is not None and txn.transactional_id is not None)


async def produce_batches(
    producer: aiokafka.AIOKafkaProducer,
    records: Mapping[tuple[str, int], Iterable[tuple[bytes, bytes]]],
) -> list[tuple[tuple[str, int, int], asyncio.Future[Any]]]:
    """Queue (key, value) records per (topic, partition) as whole produce batches (a new one
    when a batch is full); returns ((topic, partition, records in it), delivery future) per
    batch. A batch costs the client ~5 µs per record against ~14 µs for `send`, and the
    broker pays per batch (BENCHMARKS.md). aiokafka queues one batch per
    partition at a time, so call this from one flush at a time."""
    out: list[tuple[tuple[str, int, int], asyncio.Future[Any]]] = []
    for (topic, partition), recs in records.items():
        batch = new_batch(producer, len(recs) if isinstance(recs, Sized) else COMPRESS_FROM)
        n = 0
        for key, value in recs:
            if batch.append(key=key, value=value, timestamp=None) is None:
                fut = await producer.send_batch(batch, topic, partition=partition)
                out.append(((topic, partition, n), fut))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)  # the first always fits
                n = 0
            n += 1
        if n:
            fut = await producer.send_batch(batch, topic, partition=partition)
            out.append(((topic, partition, n), fut))
    return out


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> aiokafka.AIOKafkaConsumer:
    kw: dict[str, Any] = dict(
        bootstrap_servers=settings.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_seconds * 1000),
        rebalance_timeout_ms=int(settings.rebalance_timeout_seconds * 1000),
        max_poll_records=settings.sink_batch_max,
        fetch_max_wait_ms=100,
        **settings.kafka_security(),
    )
    kw.update(overrides)
    consumer = aiokafka.AIOKafkaConsumer(*topics, **kw)
    if is_tansu(settings):
        # a caller that asks for a longer fetch wait (latency does not matter to it) keeps
        # it: every idle poll costs the broker CPU the pipeline shares
        tansu.tune_consumer(consumer, max_wait_ms=overrides.get("fetch_max_wait_ms",
                                                                settings.fetch_max_wait_ms))
    return consumer


async def end_offsets(
    settings: Settings, consumer: aiokafka.AIOKafkaConsumer, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Log-end offsets that are right on both brokers."""
    listed: Mapping[TopicPartition, int] = await consumer.end_offsets(list(tps))
    if is_tansu(settings):
        return await tansu.true_end_offsets(settings.bootstrap, listed)
    return dict(listed)


async def _partitions(consumer: aiokafka.AIOKafkaConsumer, topics: Iterable[str]
                      ) -> list[TopicPartition]:
    # `consumer.topics()` fetches the metadata but does not keep it in the client's cluster
    # view on Apache Kafka (it did on Tansu, which lists every topic on bootstrap): read the
    # partitions from the fetched metadata itself
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(t, p) for t in topics
            for p in sorted(cluster.partitions_for_topic(t) or [])]


async def log_ends(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Log-end offset of every partition of `topics`, now."""
    return {tp: end for tp, (_, end) in (await log_bounds(settings, topics, starts=False)).items()}


async def log_bounds(settings: Settings, topics: Iterable[str], *, starts: bool = True
                     ) -> dict[TopicPartition, tuple[int, int]]:
    """(log start, log end) of every partition of `topics`, now (start 0 unless `starts`:
    one request fewer for callers that only want the ends)."""
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        ends = await end_offsets(settings, consumer, tps)
        first = await consumer.beginning_offsets(tps) if starts and tps else {}
        return {tp: (int(first.get(tp, 0)), end) for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def read_to_end(
    settings: Settings, topics: Iterable[str], *, max_records: int = 20000,
    start: Mapping[TopicPartition, int] | None = None,
    ends: Mapping[TopicPartition, int] | None = None,
    **consumer_overrides: Any,
) -> AsyncIterator[tuple[list[ConsumerRecord[bytes, bytes]], int]]:
    """Batches of records from the beginning of `topics` (or from `start`) up to their log
    end as of the call, or `ends` (records produced later are not read), with the total
    record count to the end as the goal.

    Outside any consumer group; used by replay and the dead-letter tools.
    """
    consumer = make_consumer(settings, group_id=None, max_poll_records=max_records,
                             **consumer_overrides)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for tp, offset in (start or {}).items():
            if tp in tps:
                consumer.seek(tp, offset)
        if ends is None:
            ends = await end_offsets(settings, consumer, tps)
        else:
            ends = {tp: ends.get(tp, 0) for tp in tps}
        goal = sum(ends.values())
        remaining = {tp for tp in tps if ends[tp] > (start or {}).get(tp, 0)}
        while remaining:
            polled = await consumer.getmany(*remaining, timeout_ms=200, max_records=max_records)
            records: list[ConsumerRecord[bytes, bytes]] = []
            for tp, rs in polled.items():
                records += [r for r in rs if r.offset < ends[tp]]
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if records:
                yield records, goal
    finally:
        await consumer.stop()


#: Every topic's cleanup, chosen per topic (README "Topics"). Compacted only where the key is
#: the record's own entity, so compaction keeps what a replay needs:
#: * sources (events, sarah, commands): kept forever, the truth a reprocessing fleet reads;
#: * leads: compacted; key = lead_key and each record is that lead's whole snapshot;
#: * messages: NOT compacted; keyed by lead (so a lead's records share a partition) while a
#:   record is one message, so compaction would keep one message per lead; kept forever;
#: * status-history, notes, daily, tasks: events/rows keyed by lead (a task record is one
#:   version of one task): kept forever (replay);
#: * dlq: 30 days (sync_failures in Postgres keeps the record for the dashboard); records up
#:   to 16 MiB (a dead letter carries the original body, up to the 3 MiB webhook limit, in
#:   base64; Kafka's default limit of 1 MiB would refuse it and the webhook answered 503);
#: * ticks: 1 hour (timer ticks, worthless once handled); daily-closed: 7 days (the
#:   summarizer's input, re-derivable from the worker's table within the retention);
#: * Faust's table changelogs: compacted (Faust's own choice; key = table key).
RETENTION_MS: dict[str, str] = {
    T.DLQ: str(30 * 24 * 3600 * 1000),
    T.TICKS: str(3600 * 1000),
    T.DAILY_CLOSED: str(7 * 24 * 3600 * 1000),
}


def topic_configs(name: str, settings: Settings | None = None) -> dict[str, str]:
    """The configs a topic is created with (`name` is the short name, e.g. `leads`)."""
    configs: dict[str, str]
    if name in T.COMPACTED:
        configs = {"cleanup.policy": "compact"}
    else:
        configs = {"cleanup.policy": "delete", "retention.ms": RETENTION_MS.get(name, "-1")}
    if name == T.DLQ:
        configs["max.message.bytes"] = str(DLQ_MAX_RECORD_BYTES)
    if settings is not None:
        configs["min.insync.replicas"] = str(settings.min_insync)
    return configs


async def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> list[str]:
    """Create every topic with its final partition count (no CreatePartitions on Tansu).

    Returns the names created. Existing topics are left as they are.
    """
    admin = make_admin(settings, request_timeout_ms=10000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.3)
    try:
        existing = set(await admin.list_topics())
        names = TopicNames.from_settings(settings)
        wanted = []
        for short in T.ALL:  # under the derived prefix where one is set (issue #28)
            full = T.full_name(settings, short)
            if full not in existing:
                wanted.append(NewTopic(full, settings.topic_partitions,
                                       settings.topic_replication,
                                       topic_configs=topic_configs(short, settings)))
        created = []
        for nt in wanted:
            try:
                resp = await admin.create_topics([nt])
            except TopicAlreadyExistsError:
                continue
            # aiokafka returns the per-topic error codes instead of raising them
            for name, code, *rest in getattr(resp, "topic_errors", ()):
                if code == TopicAlreadyExistsError.errno:
                    continue  # another process made it meanwhile, or metadata lagged
                if code:
                    raise for_code(code)(f"creating {name}: {rest[0] if rest else ''}")
                created.append(name)
        assert set(names.all()) <= existing | set(created) | {t.name for t in wanted}
        return created
    finally:
        await admin.close()
