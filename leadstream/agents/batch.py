"""The worker's batch hot path (issue #15): the lead agent's source records, one list per
partition per fetch, applied into one `Flush`, then made durable together and acked.

The consumer (`broker.faust_consumer.SafeOffsetsConsumer._drain_messages`) hands us the
records and asks when to flush; Faust keeps the app, assignment, table recovery, timers and
the offset commit. A flush, in this order (Quix Streams' checkpoint, Kafka Streams' record
cache flushed on commit):

1. encode each written table key once and each coalesced output once;
2. produce the changelog records and the outputs, one produce batch per topic-partition;
3. meanwhile write the lead, message, history and note rows to the replica (same
   version-guarded statements as the sink), unless the sink is configured to write them;
4. wait until the broker has every record;
5. write the table stores (one write per key) and their persisted changelog offsets;
6. hand the source offsets back to be acked; Faust's commit loop commits them.

A crash anywhere before 6 leaves the offsets unacked: the records are processed again and,
the rules being idempotent, they re-emit what they derived (and write their state back,
`WriteBack.rewrite`), so nothing is lost and the replica counts nothing twice. A cancel
(rebalance) before 5 leaves the stores as they were. A broker that refuses the produce is
retried with backoff: the partition waits, nothing moves past it.

The daily close (`DailyWindows.on_tick`) takes `lock` too, so it never sees the stores
between steps 1 and 5, nor a batch half-applied.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)
from faust.types import TP

from leadstream.agents.flush import Flush, WriteBack
from leadstream.agents.processor import LeadProcessor
from leadstream.broker.clients import produce_batches
from leadstream.broker.faust_internals import CURRENT_EVENT, set_persisted_offset
from leadstream.ops.logs import record_context
from leadstream.retry import Backoff
from leadstream.sink.replica import Encoded, Replica
from leadstream.streams.records import DeadLetter, encode, encode_day
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)


#: records applied between two yields to the event loop (~20 ms of rules)
YIELD_EVERY = 256
#: broker errors no retry can mend: the record is dead-lettered, the partition goes on
NEVER_SUCCEEDS: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)
#: how much of a refused record a dead letter keeps (the record itself was too large)
DEAD_LETTER_KEEP = 256 * 1024


class Origin(NamedTuple):
    """Where a row the replica refused came from: an output of this worker, not yet read
    back from its topic (offset -1)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


class _InPartition:
    """Stands for Faust's current event, so that a RocksDB-backed table reads and writes
    the store of the lead's partition (Faust finds it through `current_event()`)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


#: freshness histogram bounds, seconds (the promise is 1 s)
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Buckets:
    """A cumulative histogram kept as plain counts: the metrics endpoint reads it when it is
    scraped, nothing is done per event (`ops.metrics.WorkerCollector`)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, count at or below it), `+Inf` last: Prometheus' form."""
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class BatchRunner:
    """Implements `broker.faust_consumer.BatchSource` for the lead agent."""

    def __init__(self, processor: LeadProcessor, names: TopicNames, *, tables: Mapping[str, Any],
                 producer: Callable[[], Any], replica: Replica | None,
                 max_events: int, max_ms: float,
                 assigned: Callable[[], set[Any]] | None = None) -> None:
        self.processor = processor
        self.names = names
        self.topics = frozenset(names.sources())
        #: "leads" / "messages" / "daily" -> the Faust table behind the flush's view
        self.tables = tables
        self.producer = producer
        self.replica = replica
        self.max_events = max_events
        self.max_ms = max_ms
        self.assigned = assigned
        #: held while a flush is filled or in flight; the daily close takes it in between
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.current: Flush | None = None
        self.inflight: tuple[Flush, asyncio.Future[None]] | None = None
        self.completed: list[tuple[int, dict[TP, list[int]]]] = []
        self._contexts: dict[int, _InPartition] = {}
        #: the last source offset applied per partition, and when the flush in flight was
        #: sealed (what a stalled worker's log line shows: ops.stall)
        self.applied: dict[TP, int] = {}
        self.inflight_since: float | None = None
        # figures (exported as metrics by the worker)
        self.flushes = 0
        self.events = 0
        self.records_out = 0
        self.rows_out = 0
        self.produce_retries = 0
        #: records the broker refused for good (dead-lettered)
        self.refused = 0
        self.settle_wait_s = 0.0
        #: per flush that wrote replica rows: from its oldest event's durable write (the
        #: record's broker timestamp) to those rows committed: the product's promise, "on
        #: the dashboard within a second", as a distribution
        self.freshness = Buckets(FRESHNESS_BUCKETS)
        self._logged = (time.monotonic(), 0, 0, 0.0)

    # ------------------------------------------------------------------ BatchSource

    def pending(self) -> bool:
        return self.current is not None and self.current.events > 0

    def busy(self) -> bool:
        return self.pending() or self.inflight is not None

    def due(self, fetched: int) -> bool:
        f = self.current
        return f is not None and (fetched == 0 or f.events >= self.max_events
                                  or f.age_ms() >= self.max_ms)

    async def process(self, records: Mapping[TP, Sequence[Any]], generation: int = 0
                      ) -> dict[TP, Sequence[Any]]:
        if self.current is None:
            if self.inflight is not None and self.waiting:
                await self.settle()  # the daily close is waiting: let it in between flushes
            if self.inflight is None:
                await self.lock.acquire()
            self.current = self.processor.begin(
                after=self.inflight[0] if self.inflight is not None else None,
                generation=generation)
        flush = self.current
        handle = self.processor.handle
        room = self.max_events - flush.events
        left: dict[TP, Sequence[Any]] = {}
        for tp, recs in records.items():
            if room <= 0:
                left[tp] = recs
                continue
            take = recs if len(recs) <= room else recs[:room]
            if len(take) < len(recs):
                left[tp] = recs[len(take):]
            room -= len(take)
            if take:
                self.applied[tp] = take[-1].offset
                first = take[0].timestamp
                if first is not None and first > 0 and (
                        flush.oldest_ms is None or first < flush.oldest_ms):
                    flush.oldest_ms = first
            for i in range(0, len(take), YIELD_EVERY):
                # let the flush in flight send its produce requests and replica rows now:
                # the broker and Postgres work on the other core while we compute
                await asyncio.sleep(0)
                token = self._enter(tp.partition)
                try:
                    for r in take[i:i + YIELD_EVERY]:
                        handle(flush, tp.topic, tp.partition, r.offset, r.key, r.value)
                finally:
                    CURRENT_EVENT.reset(token)
        return left

    async def flush(self) -> None:
        """Seal the current flush and start making it durable; the one before it must be
        durable first (at most one in flight, so a flush reads through one parent only)."""
        await self.settle()
        flush = self.current
        assert flush is not None
        flush.detach()
        self.current = None
        self.inflight = (flush, asyncio.ensure_future(self._durable(flush)))
        self.inflight_since = time.monotonic()

    async def settle(self) -> None:
        """Wait for the flush in flight; its offsets join `acks()`."""
        if self.inflight is None:
            return
        flush, task = self.inflight
        t0 = time.monotonic()
        try:
            await asyncio.shield(task)
        finally:
            self.settle_wait_s += time.monotonic() - t0
            if task.done():
                self.inflight = None
                if self.current is None:
                    self.lock.release()
        self.completed.append(
            (flush.generation, {TP(t, p): offsets for (t, p), offsets in flush.offsets.items()}))

    def state(self) -> dict[str, Any]:
        """For a stalled worker's log line: what is pending, in flight and since when."""
        inflight = self.inflight
        return {
            "pending_events": self.current.events if self.current is not None else 0,
            "inflight_events": inflight[0].events if inflight is not None else 0,
            "inflight_s": (round(time.monotonic() - self.inflight_since, 1)
                           if inflight is not None and self.inflight_since else None),
            "flushes": self.flushes, "events": self.events,
            "produce_retries": self.produce_retries,
            "applied": {f"{tp.topic}:{tp.partition}": o for tp, o in sorted(self.applied.items())},
        }

    def acks(self) -> list[tuple[int, dict[TP, list[int]]]]:
        done, self.completed = self.completed, []
        return done

    def discard(self) -> None:
        held = self.current is not None or self.inflight is not None
        if self.inflight is not None:
            self.inflight[1].cancel()
        self.current = None
        self.inflight = None
        self.completed = []
        if held and self.lock.locked():
            self.lock.release()

    async def close_daily(self, close: Callable[[], Awaitable[Any]],
                          patience: float = 2.0) -> Any:
        """Run the daily close between flushes, never while one is being filled or is in
        flight (it reads the stores). If no gap comes within `patience` seconds the close is
        skipped (the next tick tries again): a tick must never hold up its own ack, which a
        rebalance waits for while the batch path waits for the rebalance."""
        self.waiting += 1
        try:
            try:
                await asyncio.wait_for(self.lock.acquire(), patience)
            except TimeoutError:
                log.debug("daily close skipped: the lead agent is busy (next tick retries)")
                return None
            try:
                return await close()
            finally:
                self.lock.release()
        finally:
            self.waiting -= 1

    async def one(self, topic: str, partition: int, offset: int, key: bytes | None,
                  value: bytes | None) -> None:
        """One record as its own flush (the per-record path, inside Faust's event context;
        Faust acks it when the agent takes the next one)."""
        async with self.lock:
            flush = self.processor.begin()
            self.processor.handle(flush, topic, partition, offset, key, value)
            await self._durable(flush)

    # ------------------------------------------------------------------ the flush

    def _enter(self, partition: int) -> Any:
        """Set the partition's stand-in event; returns the token to reset it with."""
        ctx = self._contexts.get(partition)
        if ctx is None:
            ctx = self._contexts[partition] = _InPartition(self.names.events, partition)
        return CURRENT_EVENT.set(weakref.ref(ctx))

    def records(self, flush: Flush) -> tuple[dict[tuple[str, int], list[tuple[bytes, bytes]]],
                                             dict[str, list[tuple[int, bytes, bytes]]],
                                             list[Encoded]]:
        """What a flush makes durable, encoded: (records per topic-partition, store writes per
        table as (partition, key, value), replica rows). No I/O (tests read it as is)."""
        out = flush.out
        names = self.names
        produce: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        writes: dict[str, list[tuple[int, bytes, bytes]]] = {}
        rows: list[Encoded] = []
        direct = self.replica is not None

        def emit(topic: str, partition: int, key: bytes, value: bytes, kind: str | None
                 ) -> None:
            produce.setdefault((topic, partition), []).append((key, value))
            if direct and kind is not None:
                rows.append((Origin(topic, partition, -1, key, value), kind, value))

        lead_json: dict[int, bytes] = {}
        for key, (p, lead) in out.leads.items():
            value = lead_json[id(lead)] = encode(lead)
            emit(names.leads, p, key, value, "leads")
        message_json: dict[int, bytes] = {}
        for p, key, m in out.messages.values():
            value = message_json[id(m)] = encode(m)
            emit(names.messages, p, key, value, "messages")
        for p, key, ch in out.history.values():
            emit(names.status_history, p, key, encode(ch), "history")
        for p, key, n in out.notes.values():
            emit(names.notes, p, key, encode(n), "notes")
        for p, key, t in out.tasks.values():
            emit(names.tasks, p, key, encode(t), "tasks")

        def write(name: str, view: WriteBack[Any], p: int, key: bytes, decoded: Any,
                  value: bytes) -> None:
            # kept with its bytes: the next flush that reads the key finds them in the store
            # (once this one is durable) and skips the decode
            view.decoded.put(key, value, decoded)
            table = self.tables.get(name)
            if table is None:
                return
            writes.setdefault(name, []).append((p, key, value))
            produce.setdefault((table.changelog_topic.get_topic_name(), p), []).append(
                (key, value))

        for p, key, entry in flush.leads.written():
            write("leads", flush.leads, p, key, entry, entry.encode(lead_json.get(id(entry.lead))))
        for p, key, m in flush.messages.written():
            write("messages", flush.messages, p, key, m, message_json.get(id(m)) or encode(m))
        for p, key, agg in flush.daily.written():
            write("daily", flush.daily, p, key, agg, encode_day(agg))
        return produce, writes, rows

    async def _durable(self, flush: Flush) -> None:
        produce, writes, rows = self.records(flush)
        others = flush.out.other
        replica = (asyncio.ensure_future(self.replica.write_encoded(rows))
                   if self.replica is not None and rows else None)
        dropped: set[tuple[str, int, bytes]] = set()
        try:
            try:
                sent, metas = await self._produce_until_acked(produce, others)
            except NEVER_SUCCEEDS as exc:
                sent, metas, dropped = await self._produce_each(produce, others, exc)
            if replica is not None:
                await replica
        finally:
            if replica is not None and not replica.done():
                replica.cancel()
        self._write_stores(writes, sent, metas, dropped)
        if replica is not None and flush.oldest_ms is not None:
            self.freshness.observe(time.time() - flush.oldest_ms / 1000)
        if not self.flushes:
            log.info("lead agent: batch path on; first flush: %d events, %d records produced,"
                     " %d replica rows", flush.events, sum(len(v) for v in produce.values()),
                     len(rows))
        self.flushes += 1
        self.events += flush.events
        self._log_figures()
        self.records_out += sum(len(v) for v in produce.values()) + len(others)
        self.rows_out += len(rows)

    def _log_figures(self, every: float = 30.0) -> None:
        """One line per `every` seconds while busy: what an operator asks first."""
        at, flushes, events, waited = self._logged
        now = time.monotonic()
        if now - at < every:
            return
        n, e = self.flushes - flushes, self.events - events
        log.info("lead agent: %d events in %d flushes (%.0f per flush) in %.0f s, %.0f%% of it"
                 " waiting for a flush to be durable", e, n, e / max(n, 1), now - at,
                 (self.settle_wait_s - waited) / (now - at) * 100)
        self._logged = (now, self.flushes, self.events, self.settle_wait_s)

    async def _produce_until_acked(
        self, produce: Mapping[tuple[str, int], Sequence[tuple[bytes, bytes]]],
        others: Sequence[tuple[str, bytes, bytes]],
    ) -> tuple[list[tuple[tuple[str, int, int], asyncio.Future[Any]]], list[Any]]:
        """Produce everything and wait for the broker's acks; a broker that is away is
        retried with backoff (repeats are harmless downstream), nothing acked meanwhile.
        An error that no retry can mend (`NEVER_SUCCEEDS`) is raised to the caller."""
        backoff = Backoff(0.1)
        while True:
            try:
                sent = await self._produce(produce, others)
                return sent, list(await asyncio.gather(*(f for _, f in sent)))
            except NEVER_SUCCEEDS:
                raise
            except KafkaError as exc:
                self.produce_retries += 1
                log.warning("worker: produce failed (%r); producing the flush again in"
                            " %.1fs", exc, backoff.delay)
                await backoff.wait()

    async def _produce_each(
        self, produce: Mapping[tuple[str, int], Sequence[tuple[bytes, bytes]]],
        others: Sequence[tuple[str, bytes, bytes]], cause: BaseException,
    ) -> tuple[list[tuple[tuple[str, int, int], asyncio.Future[Any]]], list[Any],
               set[tuple[str, int, bytes]]]:
        """The flush again, one record at a time, after the broker refused a batch for good
        (a record over its size limit): each record it refuses is dead-lettered with the
        reason (the flush's other records, and so the partition, go on); a changelog record
        refused is not written to the store either, so the store never holds what its
        changelog lacks. Availability errors are still retried, record by record."""
        log.error("worker: the broker refused a flush for good (%r); producing it record by"
                  " record to find what it refuses", cause)
        sent: list[tuple[tuple[str, int, int], asyncio.Future[Any]]] = []
        metas: list[Any] = []
        dropped: set[tuple[str, int, bytes]] = set()
        items = [(t, p, k, v) for (t, p), recs in produce.items() for k, v in recs]
        items += [(t, -1, k, v) for t, k, v in others]
        for topic, partition, key, value in items:
            one = {(topic, partition): [(key, value)]} if partition >= 0 else {}
            rest = [(topic, key, value)] if partition < 0 else []
            try:
                s, m = await self._produce_until_acked(one, rest)
            except NEVER_SUCCEEDS as exc:
                self.refused += 1
                dropped.add((topic, partition, key))
                await self.dead_letter(
                    Origin(topic, partition, -1, key, value),
                    f"the broker refuses this {topic} record ({len(value)} bytes): {exc!r}",
                    stage="produce")
                continue
            sent += s
            metas += m
        return sent, metas, dropped

    async def _produce(self, produce: Mapping[tuple[str, int], Sequence[tuple[bytes, bytes]]],
                       others: Sequence[tuple[str, bytes, bytes]]
                       ) -> list[tuple[tuple[str, int, int], asyncio.Future[Any]]]:
        producer = self.producer()
        sent = await produce_batches(producer, produce)
        for topic, key, value in others:
            fut = await producer.send(topic, value, key=key)
            sent.append(((topic, -1, 1), fut))
        return sent

    def _write_stores(self, writes: Mapping[str, Sequence[tuple[int, bytes, bytes]]],
                      sent: Sequence[tuple[tuple[str, int, int], Any]],
                      metas: Sequence[Any],
                      dropped: set[tuple[str, int, bytes]] | None = None) -> None:
        """Step 5: the stores, once the broker has the changelog; partitions revoked
        meanwhile are skipped (their next owner recovers them from the changelog)."""
        assigned = self.assigned() if self.assigned is not None else None
        last: dict[tuple[str, int], int] = {}
        for ((topic, partition, count), _), meta in zip(sent, metas, strict=True):
            if meta is not None and partition >= 0:
                end = meta.offset + count - 1
                if end > last.get((topic, partition), -1):
                    last[(topic, partition)] = end
        for name, items in writes.items():
            table = self.tables[name]
            data = table.data
            changelog = table.changelog_topic.get_topic_name()
            done: set[int] = set()
            for partition, key, value in items:
                if assigned is not None and TP(self.names.events, partition) not in assigned:
                    continue
                if dropped and (changelog, partition, key) in dropped:
                    continue  # the broker refused its changelog record: dead-lettered
                token = self._enter(partition)
                try:
                    data[key] = value
                finally:
                    CURRENT_EVENT.reset(token)
                done.add(partition)
            for partition in done:
                end = last.get((changelog, partition))
                if end is not None:
                    set_persisted_offset(data, TP(changelog, partition), end)

    async def dead_letter(self, origin: Any, reason: str, stage: str = "replica") -> None:
        """A row the replica refused (or, `stage="produce"`, a record the broker refuses): to
        the dead-letter topic (the sink records it in `sync_failures` from there), the rest
        of the flush goes on. The original kept is cut to `DEAD_LETTER_KEEP` bytes: the
        dead-letter topic must take what its source refused."""
        dl = DeadLetter.of(stage=stage, reason=reason, original=origin.value,
                           topic=origin.topic, partition=origin.partition, key=origin.key,
                           keep=DEAD_LETTER_KEEP)
        log.error("%s refused a %s record of %r: %s", stage, origin.topic, origin.key, reason,
                  extra=record_context(origin.topic, origin.partition, key=origin.key,
                                       stage=stage))
        fut = await self.producer().send(self.names.dlq, encode(dl), key=origin.key)
        await fut
