"""Fixes for Faust's consumer offset handling (broker-agnostic; used with Kafka and Tansu).

faust-streaming 0.15.3 can lose a source record after a restart. We reproduced it under
SIGKILL + restart (about one run in three of 5 kill cycles): the record at the committed
offset was never processed, yet the group committed past it, so no later restart brought it
back. Two defects combine:

1. **Early processing** (faust-streaming #596 / robinhood/faust #625): Faust resumes the
   source partitions before `perform_seek()` moves them to the committed offsets, so records
   are fetched, processed and acked, then the seek and flow-control suspension drop some that
   were already in flight (a record can be dropped without being processed and without being
   redelivered).
2. **Off by one in `Consumer._new_offset`**: the committed offset is the *next* offset to
   read, yet Faust only refuses to commit when the first acked offset is more than one past
   it (`min(acked) - committed > 1`), and treats a committed offset of 0 as "none". With
   acked = [9, 10, 11] and committed 8, it commits 12: offset 8 is skipped for good.

What we do, in one place:
* `SeekFirstConsumerThread` seeks every newly assigned source partition to its committed
  offset (or the log start) in the consumer "thread" (on the worker's loop: `in_loop`),
  before Faust's callbacks run, so early fetches start where the seek would have put them;
  it records that position as the partition's floor.
* `SafeOffsetsConsumer._new_offset` commits only a run of acked offsets that starts exactly
  at the committed offset (or the floor); see `committable_offset`.
* When a hole is found (a later record acked, an earlier one never: processing is in order
  per partition, so the earlier one was dropped), the partition is sought back to the hole
  and reprocessed. The agents are idempotent by content, so the repeats are harmless.
* Faust's read-offset filter is switched off (`_NoReadOffsets`): it races with seeks.

The batch hot path (issue #15) starts here too: when a `BatchSource` is installed, the
records of its topics reach it as one list per partition per fetch (`_drain_messages`),
instead of one asyncio round trip per record through Faust's conductor and streams; it
acks their offsets itself once its flush is durable. The tables' changelogs (recovery and
standby replicas) go to their stores one fetch at a time too (`faust_internals.
apply_changelog`). Every other topic (the daily ticks) keeps Faust's per-record path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from time import monotonic
from typing import Any, Protocol, cast

from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.utils.functional import consecutive_numbers
from mode import Service

from leadstream.broker.faust_internals import apply_changelog
from leadstream.broker.in_loop import InLoopConsumerThread

log = logging.getLogger(__name__)


def committable_offset(acked: list[int], start: int | None) -> tuple[int | None, int | None]:
    """(offset to commit, hole) for one partition from its acked offsets (any order, repeats
    allowed).

    `start` is the next offset that must be processed (the committed offset, or where the
    partition started); None means unknown, and then the first acked run is trusted, as Faust
    does. Offsets below `start` are already done. Returns the end of the acked run that
    begins at `start` (None: nothing new to commit) and, when the first acked offset lies
    beyond `start`, `start` as a hole: never acked although later records were.
    """
    pending = sorted({o for o in acked if start is None or o >= start})
    if not pending:
        return None, None
    if start is not None and pending[0] > start:
        return None, start
    run = next(consecutive_numbers(pending))
    return run[-1] + 1, None


class BatchSource(Protocol):
    """What the consumer hands a batch of source records to (agents.batch.BatchRunner).

    One flush is filled while the one before it is made durable (produce, replica); the
    consumer acks a flush's offsets once it is, and only if the generation it was fetched
    in is still the current one."""

    #: the topics whose records go to `process` instead of Faust's per-record path
    topics: frozenset[str]

    def pending(self) -> bool:
        """Records processed into the current flush, not yet sealed?"""

    def busy(self) -> bool:
        """Pending, or a flush in flight?"""

    def due(self, fetched: int) -> bool:
        """Seal the current flush now, after a fetch that brought `fetched` of our records?"""

    async def process(self, records: Mapping[TP, Sequence[Any]], generation: int
                      ) -> Mapping[TP, Sequence[Any]]:
        """Apply these records (aiokafka ConsumerRecords, offset order per partition) until
        the flush is full; returns the records not taken (to process after a flush)."""

    async def flush(self) -> None:
        """Seal the current flush and start making it durable."""

    async def settle(self) -> None:
        """Wait until the flush in flight is durable."""

    def acks(self) -> list[tuple[int, dict[TP, list[int]]]]:
        """(generation, offsets) of the flushes made durable since the last call."""

    def discard(self) -> None:
        """Forget what was processed and not made durable (a rebalance or a stop): those
        records are not acked, so they are read and processed again."""


_SOURCES: dict[int, BatchSource] = {}


def install_batch_source(app: Any, source: BatchSource) -> None:
    """Make `app`'s consumer take `source.topics` per batch (agents.agent.build_topology)."""
    _SOURCES[id(app)] = source


class _NoReadOffsets(dict[TP, int | None]):
    """Stands in for Faust's per-partition read offsets, which drop every fetched record
    below the last one read. Faust's drain loop keeps raising that mark for the rest of a
    batch already fetched while a seek moves the partition back, so the records the seek
    was meant to bring back are dropped (we saw a hole re-seek lose 7 records that way).
    Without it every fetched record is delivered; repeats are harmless (idempotent agents,
    acks of an offset counted once). Faust also derives offset gaps from it (compacted or
    transactional topics); our source topics are neither, so their offsets are contiguous.
    """

    def __getitem__(self, tp: TP) -> int | None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


class SeekFirstConsumerThread(InLoopConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        """Faust's consumer, with our fetch timing on Apache Kafka (Tansu's thread sets its
        own: broker.tansu).

        Faust fixes `fetch_max_wait_ms` at 1,500 and leaves `fetch_min_bytes` at 1. aiokafka
        keeps one fetch in flight per broker, for the partitions with nothing buffered; a
        partition whose records were just taken waits for that fetch to come back, up to
        1.5 s when the others are quiet. At 200 and 1,000 single deliveries a second that
        made the p99 from webhook to replica 1.6-2.4 s. With the fetch held until
        LEADSTREAM_FETCH_MIN_BYTES (64 KiB) or LEADSTREAM_FETCH_MAX_WAIT_MS (60 ms), it was
        111-262 ms, and the worker used half the CPU at 200/s: fewer, fuller fetches and
        flushes (BENCHMARKS.md, session 9)."""
        from leadstream.config import get_settings

        consumer = super()._create_worker_consumer(transport)
        settings = get_settings()
        if settings.kafka_flavor != "tansu":
            consumer._fetch_min_bytes = settings.fetch_min_bytes
            consumer._fetch_max_wait_ms = settings.fetch_max_wait_ms
        return consumer

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        consumer = self._ensure_consumer()
        owner = cast(SafeOffsetsConsumer, self.consumer)
        floors = owner.floors
        fresh: list[TopicPartition] = []
        for tp in assigned:
            if owner._is_changelog_tp(tp):
                continue
            ktp = TopicPartition(tp.topic, tp.partition)
            committed = await consumer.committed(ktp)
            if committed is not None and committed >= 0:
                consumer.seek(ktp, committed)
                floors[tp] = committed
            else:
                fresh.append(ktp)
        if fresh:
            for ktp, start in (await consumer.beginning_offsets(fresh)).items():
                floors[TP(ktp.topic, ktp.partition)] = start
        await super().on_partitions_assigned(assigned, generation_id)


class SafeOffsetsConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer that never commits past a record it did not process."""

    floors: dict[TP, int]
    holes: dict[TP, int]
    drain_loops: int
    last_fetched: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.floors = {}  # tp -> where this assignment started (committed offset or log start)
        self.holes = {}  # tp -> offset never processed although later ones were
        self.drain_loops = 0  # fetch loop turns (a stalled worker's log line: ops.stall)
        self.last_fetched = 0
        super().__init__(*args, **kwargs)
        self._read_offset = _NoReadOffsets()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return SeekFirstConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _start_of(self, tp: TP) -> int | None:
        committed = self._committed_offset[tp]
        if committed is not None:
            return int(committed)
        return self.floors.get(tp)

    def position_of(self, tp: TP) -> int | None:
        """The next offset of `tp` this group must process: its committed offset, else where
        the assignment started (the stall watch's position: ops.stall)."""
        return self._start_of(tp)

    def progress_state(self) -> dict[str, Any]:
        """For a stalled worker's log line: flow, generation, and per source partition the
        committed offset, the floor, an open hole and the acked offsets not yet committed."""
        source = _SOURCES.get(id(self.app))
        tps = sorted(tp for tp in self.assignment()
                     if source is None or tp.topic in source.topics)
        positions: dict[str, Any] = {}
        try:  # aiokafka's private state, read for the log only: never fail the watch on it
            sub = self._thread._ensure_consumer()._subscription.subscription
            assignment = sub.assignment if sub is not None else None
            for tp in tps:
                st = assignment.state_value(TopicPartition(tp.topic, tp.partition)) \
                    if assignment is not None else None
                if st is not None:
                    positions[f"{tp.topic}:{tp.partition}"] = (
                        st.position if st.has_valid_position else None, st.paused)
        except Exception as exc:  # noqa: BLE001  # a diagnostic must never fail the watch
            positions = {"unavailable": repr(exc)}
        active = self._active_partitions
        return {
            "flow_active": self.flow_active, "generation": self.app.consumer_generation_id,
            "rebalancing": self.app.rebalancing,
            "in_recovery": getattr(self.app, "in_recovery", False),
            "fetcher": getattr(getattr(self.app, "_fetcher", None), "state", None),
            "drain_loops": self.drain_loops, "last_fetched": self.last_fetched,
            "active": None if active is None else len([tp for tp in active if tp in tps]),
            "paused": len([tp for tp in self._paused_partitions if tp in tps]),
            "positions_paused": positions,
            "partitions": {f"{tp.topic}:{tp.partition}": {
                "committed": self._committed_offset.get(tp), "floor": self.floors.get(tp),
                "hole": self.holes.get(tp), "acked_uncommitted": len(self._acked.get(tp, ())),
            } for tp in tps},
        }

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, then every partition that has none back to
        where its assignment started (its floor).

        aiokafka's `seek_to_committed` (0.14) skips a partition whose committed offset is
        None or 0, and Faust seeks only through it. So the records of a fetch that our
        drain loop drops while the flow is stopped (a rebalance) were never fetched again on
        a partition this group had not committed yet: a worker restarted right after a
        SIGKILL, before the first commit, sat at the log end processing nothing while
        saying "Ready" (the stall watch logged it: positions at the log ends, committed
        None, no flush). Seeking back to the floor reprocesses what the dropped fetch held;
        the rules are idempotent, so a repeat is harmless."""
        await super().perform_seek()
        for tp in list(self.assignment()):
            if self._is_changelog_tp(tp) or self._committed_offset.get(tp):
                continue
            floor = self.floors.get(tp)
            if floor is not None:
                await self.seek(tp, floor)

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        offset, hole = committable_offset(acked, self._start_of(tp))
        if hole is not None:
            self.holes[tp] = hole
            return None
        if offset is not None:
            # what is below the new offset is done (or was acked before a seek moved back)
            done = {o for o in acked if o < offset}
            acked[:] = sorted(o for o in acked if o >= offset)
            self._acked_index[tp].difference_update(done)
        return offset

    # ------------------------------------------------------------------ the batch path

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop, with the batch source's topics taken per batch.

        Kept from Faust's loop: fetch only active (recovered, resumed) partitions, drop a
        fetch that arrives while flow is stopped or after the generation changed, per-record
        delivery of other topics. The batch is processed, then flushed when the source says
        it is due (its buffer is empty, or the count or age limit is reached); while records
        are pending the next fetch does not wait, so a busy worker batches more and an idle
        one flushes at once. A cancel (rebalance, stop) discards what was not flushed.
        """
        source = _SOURCES.get(id(self.app))
        if source is None:
            await super()._drain_messages(fetcher)
            return
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        callback = self.callback
        to_message = self._to_message
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if not self.flow_active and source.busy():
                    # a rebalance stopped the flow: let go of what is not durable before
                    # waiting for it to resume, so nothing the rebalance waits for (an
                    # agent's unacked tick, the producer flush) waits on us in turn
                    source.discard()
                self.drain_loops += 1
                records, active = await self._wait_next_records(
                    0.0 if source.busy() else 1.0)
                generation = self.app.consumer_generation_id
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    source.discard()
                    try:
                        await self.perform_seek()
                    except Exception as exc:  # noqa: BLE001  # as Faust's getmany: the next fetch retries
                        log.warning("seek while flow stopped failed: %r", exc)
                    continue
                ours: dict[TP, Sequence[Any]] = {}
                others: list[tuple[TP, Any]] = []
                for tp, recs in records.items():
                    if not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    if tp.topic in source.topics:
                        ours[tp] = recs
                    elif not apply_changelog(self.app, tp, recs):
                        others.extend((tp, r) for r in recs)
                fetched = sum(len(r) for r in ours.values())
                self.last_fetched = fetched
                if ours:
                    # what Faust's streams record when they take an event: its stall
                    # detector ("Stream has not started processing") reads it per partition
                    inbound = self.app.monitor.stream_inbound_time
                    now = monotonic()
                    for tp in ours:
                        inbound[tp] = now
                while ours:
                    ours = dict(await source.process(ours, generation))
                    if ours:  # the flush is full: seal it, then take the rest
                        await source.flush()
                    self._ack_durable(source)
                for tp, rec in others:
                    await self.wait_first(callback(to_message(tp, rec)),
                                          self.suspend_flow.wait())
                if source.pending() and source.due(fetched):
                    await source.flush()
                elif fetched == 0:
                    await source.settle()  # idle: finish the flush in flight
                self._ack_durable(source)
        except BaseException:
            source.discard()
            if self.transport.app.should_stop:
                return
            raise

    def _ack_durable(self, source: BatchSource) -> None:
        current = self.app.consumer_generation_id
        for generation, acks in source.acks():
            if generation == current and self.flow_active:
                self._ack_offsets(acks)

    def _ack_offsets(self, acks: Mapping[TP, Sequence[int]]) -> None:
        """`Consumer.ack` for offsets of records that never became Faust messages."""
        assignment = self.assignment()
        for tp, offsets in acks.items():
            if tp not in assignment:
                continue  # revoked: the next owner processes them again
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            acked = self._acked[tp]
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    self._n_acked += 1

    async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
        did_commit = await super()._commit_tps(tps, start_new_transaction)
        await self._reseek_holes()
        return bool(did_commit)

    async def _reseek_holes(self) -> None:
        holes, self.holes = self.holes, {}
        assignment = self.assignment()
        for tp, offset in holes.items():
            if tp not in assignment:
                continue
            log.warning("offset %s of %s was never processed but later ones were: "
                        "seeking back to it (the records after it are reprocessed)",
                        offset, tp)
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: the next
                await self.seek(tp, offset)  # owner starts there
