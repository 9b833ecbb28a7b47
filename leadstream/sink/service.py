"""The Postgres sink: derived topics -> replica, batch by batch, commit after the flush.

A plain aiokafka consumer in its own group (Quix's model): poll up to `sink_batch_max`
records, decode, write them in one transaction, then commit the offsets. So a crash replays
at most one batch, and the version-guarded writes make that harmless.

* Postgres down: the same batch is retried with backoff; the consumer position does not
  move and nothing is committed, so lag grows and catches up once Postgres is back.
* A record that cannot be decoded or that the database rejects as data (`sink.replica`)
  goes to the dead-letter topic and `sync_failures`; the rest of its batch is written. Any
  other error is retried in place, never blamed on a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiokafka
import asyncpg
import orjson
from aiokafka.structs import ConsumerRecord, TopicPartition
from mode import Service

from leadstream.broker.clients import make_consumer, make_producer
from leadstream.config import Settings
from leadstream.db.failures import prune_failures
from leadstream.db.registry import clear_expired_secrets
from leadstream.sink.replica import CONNECTION_ERRORS, Decoded, Replica
from leadstream.sink.writer import Batch, write_json
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

REQUIRED = {
    "leads": ("lead_id", "workspace_id", "version"),
    "messages": ("message_id", "lead_id", "workspace_id", "version"),
    "history": ("event_id", "lead_id", "to_status"),
    "notes": ("note_id", "lead_id", "content"),
    "daily": ("lead_id", "day", "version"),
    "tasks": ("task_id", "lead_id", "workspace_id", "version"),
    "failures": ("event_id", "stage", "reason", "failed_at"),
}
class Poison(Exception):
    def __init__(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


def route(names: TopicNames) -> dict[str, str]:
    return {names.leads: "leads", names.messages: "messages",
            names.status_history: "history", names.notes: "notes", names.daily: "daily",
            names.tasks: "tasks", names.dlq: "failures"}


def decode_records(
    records: Sequence[ConsumerRecord[Any, Any]], routes: Mapping[str, str]
) -> tuple[Batch, list[Decoded], list[Poison]]:
    """The batch, each record with its table and row (to isolate a bad one), and the
    undecodable records."""
    batch = Batch()
    decoded: list[Decoded] = []
    poison: list[Poison] = []
    for rec in records:
        kind = routes.get(rec.topic)
        if kind is None:
            continue
        try:
            row = orjson.loads(rec.value)
            if not isinstance(row, dict):
                raise ValueError("record is not a JSON object")
            missing = [k for k in REQUIRED[kind] if row.get(k) is None]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
        except ValueError as exc:
            if kind == "failures":  # never dead-letter a dead letter
                log.error("undecodable dead letter %s@%s: %s", rec.partition, rec.offset, exc)
                continue
            poison.append(Poison(rec, f"undecodable {kind} record: {exc}"))
            continue
        getattr(batch, kind).append(row)
        decoded.append((rec, kind, row))
    return batch, decoded, poison


class PostgresSink(Service):
    """Long-lived sink service; one per worker process."""

    def __init__(self, settings: Settings, *, group_id: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        self.routes = route(self.names)
        self.group_id = group_id or settings.sink_group
        self.replica: Replica | None = None
        self.consumer: aiokafka.AIOKafkaConsumer | None = None
        self.producer: aiokafka.AIOKafkaProducer | None = None
        self.batches = 0
        self.dead_letters = 0

    @property
    def rows_written(self) -> int:
        return self.replica.rows_written if self.replica is not None else 0

    def topics(self) -> list[str]:
        """What this sink writes: everything derived, or, where the workers write their own
        rows (`LEADSTREAM_REPLICA_WRITER=worker`), what only others produce: the daily rows
        and summary notes (summarizer) and the dead letters (every stage)."""
        if self.settings.replica_writer == "worker":
            return [self.names.daily, self.names.notes, self.names.dlq]
        return [*self.names.derived(), self.names.dlq]

    async def on_start(self) -> None:
        self.replica = Replica(self.settings, self._poisoned, name="sink",
                               stopping=lambda: self.should_stop)
        await self.replica.connect()
        self.consumer = make_consumer(
            self.settings, *self.topics(), group_id=self.group_id,
            max_poll_records=self.settings.sink_batch_max,
        )
        self.producer = make_producer(self.settings)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.replica is not None:
            await self.replica.close()

    @Service.task
    async def _run(self) -> None:
        assert self.consumer is not None
        # joined here, not in on_start: a join can take seconds (a killed predecessor's
        # session must expire) and the worker's other services start meanwhile
        await self.consumer.start()
        while not self.should_stop:
            polled = await self.consumer.getmany(
                timeout_ms=self.settings.sink_linger_ms * 20,
                max_records=self.settings.sink_batch_max,
            )
            records = [r for rs in polled.values() for r in rs]
            if not records:
                continue
            await self.flush(records)
            offsets = {tp: rs[-1].offset + 1 for tp, rs in polled.items()}
            await self._commit(offsets)

    #: how often the dead letters past their retention are pruned
    PRUNE_EVERY = 600.0

    @Service.task
    async def _prune(self) -> None:
        """`sync_failures` kept by age and count (db.failures) and expired webhook secrets
        cleared, every 10 minutes."""
        s = self.settings
        while not self.should_stop:
            pool = self.replica.pool if self.replica is not None else None
            if pool is not None:
                try:
                    async with pool.acquire() as conn:
                        gone = await prune_failures(conn, keep_days=s.dlq_retention_days,
                                                    keep_count=s.dlq_retention_count)
                        # and webhook secrets past their rotation overlap (the API's
                        # directory may read a standby: the sink writes the primary)
                        await clear_expired_secrets(conn)
                    if gone:
                        log.info("sink: %d dead letters past their retention removed from"
                                 " sync_failures", gone)
                except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
                    log.warning("sink: could not prune sync_failures: %r", exc)
            await self.sleep(self.PRUNE_EVERY)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.commit(offsets)
        except aiokafka.errors.CommitFailedError as exc:
            # a rebalance took the partitions; the next owner rewrites (idempotently)
            log.warning("sink: commit failed after rebalance: %s", exc)

    async def flush(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Write the records; returns only when they are in Postgres (or dead-lettered)."""
        batch, decoded, poison = decode_records(records, self.routes)
        for p in poison:
            await self.dead_letter(p)
        if not len(batch):
            return
        assert self.replica is not None
        await self.replica.write(decoded)
        self.batches += 1

    async def _poisoned(self, origin: Any, reason: str) -> None:
        await self.dead_letter(Poison(origin, reason))

    async def dead_letter(self, p: Poison) -> None:
        rec = p.record
        dl = DeadLetter.of(stage="sink", reason=p.reason, original=rec.value or b"",
                           topic=rec.topic, partition=rec.partition, offset=rec.offset,
                           key=rec.key)
        assert self.producer is not None
        await self.producer.send_and_wait(self.names.dlq, encode(dl), key=rec.key)
        await record_failure(self.replica.pool if self.replica is not None else None, dl)
        self.dead_letters += 1
        log.error("sink: dead-lettered %s:%s@%s: %s", rec.topic, rec.partition, rec.offset,
                  p.reason)


async def record_failure(pool: asyncpg.Pool | None, dl: DeadLetter) -> None:
    if pool is None:
        return
    try:
        async with pool.acquire() as conn:  # the dead-letter record is a sync_failures row
            await write_json(conn, {"failures": [encode(dl)]})
    except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
        log.warning("could not record the failure in sync_failures: %s", exc)
