"""The Postgres sink: derived topics -> replica, batch by batch, commit after the flush.

A plain aiokafka consumer in its own group (Quix's model): poll up to `sink_batch_max`
records, decode, write them in one transaction, then commit the offsets. So a crash replays
at most one batch, and the version-guarded writes make that harmless.

* Postgres down: the same batch is retried with backoff; the consumer position does not
  move and nothing is committed, so lag grows and catches up once Postgres is back.
* A record that cannot be decoded or that the database rejects as data (SQLSTATE class 22
  or 23) goes to the dead-letter topic and `sync_failures`; the rest of its batch is
  written. Any other error is retried in place, never blamed on a record.
"""

from __future__ import annotations

import asyncio
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
from leadstream.sink.writer import Batch, write_batch
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

REQUIRED = {
    "leads": ("lead_id", "workspace_id", "version"),
    "messages": ("message_id", "lead_id", "workspace_id", "version"),
    "history": ("event_id", "lead_id", "to_status"),
    "notes": ("note_id", "lead_id", "content"),
    "daily": ("lead_id", "day", "version"),
    "failures": ("event_id", "stage", "reason", "failed_at"),
}
#: What a record can be blamed for: bad data (SQLSTATE class 22) or a constraint (class 23).
#: Everything else (connection loss, shutdown, restart, timeouts, ...) is retried in place.
#: errors caused by a row's data (SQLSTATE classes 22, 23 and 54: e.g. an index row over
#: Postgres' size limit); the row is dead-lettered, the rest of its batch written. Any
#: other error retries the whole batch (availability)
DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncio.TimeoutError,
)


class Poison(Exception):
    def __init__(self, record: ConsumerRecord[Any, Any], reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


def route(names: TopicNames) -> dict[str, str]:
    return {names.leads: "leads", names.messages: "messages",
            names.status_history: "history", names.notes: "notes", names.daily: "daily",
            names.dlq: "failures"}


Decoded = tuple[ConsumerRecord[Any, Any], str, dict[str, Any]]


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
        self.pool: asyncpg.Pool | None = None
        self.consumer: aiokafka.AIOKafkaConsumer | None = None
        self.producer: aiokafka.AIOKafkaProducer | None = None
        self.rows_written = 0
        self.batches = 0
        self.dead_letters = 0
        self.pg_retries = 0

    async def on_start(self) -> None:
        self.pool = await self._connect_pool()
        self.consumer = make_consumer(
            self.settings, *self.names.derived(), self.names.dlq, group_id=self.group_id,
            max_poll_records=self.settings.sink_batch_max,
        )
        self.producer = make_producer(self.settings)
        await self.producer.start()

    async def _connect_pool(self) -> asyncpg.Pool:
        delay = 0.2
        while True:
            try:
                pool: asyncpg.Pool = await asyncpg.create_pool(
                    self.settings.dsn, min_size=1, max_size=2, command_timeout=30
                )
                return pool
            except CONNECTION_ERRORS as exc:
                log.warning("sink: Postgres not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.pool is not None:
            await self.pool.close()

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
        try:
            await self._with_retry(batch)
        except DATA_ERRORS as exc:
            log.warning("sink: batch rejected (%s); isolating the bad records", exc)
            await self._isolate(decoded)
        self.batches += 1

    async def _isolate(self, decoded: Sequence[Decoded]) -> None:
        """Write what Postgres accepts, dead-letter what it refuses: halves are retried
        until the refused rows stand alone (log2(n) rounds for one bad row in n)."""
        if len(decoded) == 1:
            rec, kind, row = decoded[0]
            try:
                await self._with_retry(Batch(**{kind: [row]}))
            except DATA_ERRORS as exc:
                await self.dead_letter(Poison(rec, f"rejected by Postgres: {exc}"))
            return
        mid = len(decoded) // 2
        for half in (decoded[:mid], decoded[mid:]):
            batch = Batch()
            for _, kind, row in half:
                getattr(batch, kind).append(row)
            try:
                await self._with_retry(batch)
            except DATA_ERRORS:
                await self._isolate(half)

    async def _with_retry(self, batch: Batch) -> None:
        assert self.pool is not None
        delay = 0.1
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await write_batch(conn, batch)
                self.rows_written += len(batch)
                return
            except DATA_ERRORS:
                raise
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                if self.should_stop:
                    raise
                self.pg_retries += 1
                log.warning("sink: Postgres unavailable (%s); retry in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self.pool.terminate()
                self.pool = await self._connect_pool()

    async def dead_letter(self, p: Poison) -> None:
        rec = p.record
        dl = DeadLetter(
            event_id=f"sink:{rec.topic}:{rec.partition}:{rec.offset}",
            reason=p.reason, stage="sink", source_topic=rec.topic,
            source_partition=rec.partition, source_offset=rec.offset,
            original_b64=DeadLetter.b64(rec.value or b""),
        )
        assert self.producer is not None
        await self.producer.send_and_wait(self.names.dlq, encode(dl), key=rec.key)
        await record_failure(self.pool, dl)
        self.dead_letters += 1
        log.error("sink: dead-lettered %s:%s@%s: %s", rec.topic, rec.partition, rec.offset,
                  p.reason)


async def record_failure(pool: asyncpg.Pool | None, dl: DeadLetter) -> None:
    if pool is None:
        return
    try:
        await pool.execute(
            "INSERT INTO sync_failures (event_id, stage, reason, source_topic, source_partition,"
            " source_offset, workspace_id, failed_at, original_b64)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (event_id) DO NOTHING",
            dl.event_id, dl.stage, dl.reason, dl.source_topic, dl.source_partition,
            dl.source_offset, dl.workspace_id, dl.failed_at, dl.original_b64,
        )
    except (asyncpg.PostgresError, *CONNECTION_ERRORS) as exc:
        log.warning("could not record the failure in sync_failures: %s", exc)
