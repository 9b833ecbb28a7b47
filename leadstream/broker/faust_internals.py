"""Every faust-streaming internal the project touches outside the consumer subclass, in one
place (issue #26), each with why. Written against faust-streaming 0.15.3 (pinned in
requirements.lock); an upgrade checks this module and `broker/faust_consumer.py` (which
subclasses Faust's aiokafka consumer and owns the consumer internals) and nothing else.
"""

from __future__ import annotations

import contextvars
from collections import Counter
from collections.abc import Sequence
from time import monotonic
from typing import Any

from faust.streams import _current_event

#: The context variable Faust reads to find "the current event" (`faust.streams`). A
#: RocksDB-backed table finds the store of a key's partition through it; the batch path
#: applies records outside Faust's streams, so it sets a stand-in for each partition
#: (agents.batch._InPartition). faust-streaming 0.15.3 has no public way to do this.
CURRENT_EVENT: contextvars.ContextVar[Any] = _current_event


def raw_producer(app: Any) -> Any:
    """The aiokafka producer under Faust's (`Producer._ensure_producer`, private in 0.15.3).
    The batch path produces whole batches per partition with it (`send_batch`), which
    Faust's `send` cannot; the worker's `/readyz` asks its client for metadata."""
    return app.producer._ensure_producer()


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The offset Faust last committed for `tp` (`Consumer._committed_offset`, private in
    0.15.3; Faust keeps it, there is no accessor): the lag metric is log end minus this."""
    value = consumer._committed_offset.get(tp)
    return None if value is None else int(value)


def set_persisted_offset(store: Any, tp: Any, offset: int) -> None:
    """Record that a table's store holds its changelog up to `offset` (the store's
    `set_persisted_offset`, which Faust calls only from its own table writes): the batch
    path writes the stores itself, after the broker took the changelog, and a RocksDB store
    must then read only the changelog after this offset on recovery."""
    store.set_persisted_offset(tp, offset)


def recovery_state(app: Any) -> dict[str, Any]:
    """Whether the worker is rebalancing or restoring its tables, and for how long its last
    table recovery took (`App.rebalancing`, `App.in_recovery` and `Recovery`'s private
    `_recovery_started_at` / `_recovery_ended_at` monotonic times, faust-streaming 0.15.3:
    no public accessor). The worker's `/readyz` and recovery metrics read it."""
    started, ended = _recovery_times(getattr(app.tables, "_recovery", None))
    recovering = bool(getattr(app, "in_recovery", False))
    return {
        "rebalancing": bool(app.rebalancing), "recovering": recovering,
        "rebalances": int(getattr(app, "rebalancing_count", 0) or 0),
        "recovery_started": started,
        "changelog_applied": dict(_APPLIED.get(id(app), {})),
        "last_recovery_s": (ended - started) if started is not None and ended is not None
        and ended >= started else None,
    }


def recovery_progress(app: Any) -> tuple[float | None, float | None, dict[Any, int]]:
    """(started, ended, records left per active changelog partition) of the worker's table
    recovery: `Recovery`'s private monotonic times (as `recovery_state`) and its public
    `active_remaining()` (highwater minus the offset read so far, per partition: 0 when a
    partition is restored or had nothing to restore)."""
    recovery = getattr(app.tables, "_recovery", None)
    if recovery is None:
        return None, None, {}
    return (*_recovery_times(recovery), dict(recovery.active_remaining()))


def _recovery_times(recovery: Any) -> tuple[float | None, float | None]:
    """`Recovery`'s private monotonic start and end of its last recovery (0.15.3)."""
    return (getattr(recovery, "_recovery_started_at", None),
            getattr(recovery, "_recovery_ended_at", None))


#: per app (id): changelog records applied to its stores this way, by (table, "active" for
#: a recovery or "standby" for a warm copy); `recovery_state` reports them
_APPLIED: dict[int, Counter[tuple[str, str]]] = {}


class _ChangelogRecord:
    """One changelog record in the two shapes Faust's stores read from a recovery event:
    `event.key` / `event.value` (the memory store) and `event.message.{tp, offset,
    partition, key, value}` (RocksDB). For a table of bytes to bytes under the raw codec the
    decoded key and value are the record's own bytes, so one object is event and message."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: Any, record: Any) -> None:
        self.tp = tp
        self.offset = record.offset
        self.partition = tp.partition
        self.key = record.key
        self.value = record.value

    @property
    def message(self) -> _ChangelogRecord:
        return self


def _bytes_table(table: Any) -> bool:
    """Is `table` one whose changelog may skip Faust's codecs and callbacks: bytes keys and
    values under the raw codec (tables.define_tables), no changelog-event callback?"""
    topic = table.changelog_topic
    return (table.key_type is bytes and table.value_type is bytes
            and topic.key_serializer in (None, "raw") and topic.value_serializer in (None, "raw")
            and table.app.conf.key_serializer == "raw"
            and table.app.conf.value_serializer == "raw"
            and not getattr(table, "_on_changelog_event", None))


def apply_changelog(app: Any, tp: Any, records: Sequence[Any]) -> bool:
    """Apply one fetch of a table's changelog partition to its store in one batch, with
    `Recovery`'s bookkeeping (faust-streaming 0.15.3, `Recovery._slurp_changelogs`: the
    offsets read per active or standby partition, the end-of-recovery signal, standbys
    ready). False: not a changelog partition we take this way (Faust's path applies it).

    Why: Faust delivers each changelog record as an event through the conductor, a queue
    and a `wait_for` per record, ~55 µs of the worker's loop each, and pauses the fetch
    whenever that queue is three quarters full: a worker without its store restored 1M
    leads' three changelogs in 304 s (bench/scale.py). A standby replica reads the other
    workers' changelogs through the same path all the time.

    A record at or below the partition's offset read so far is skipped, as Faust does. A
    changelog partition that the recovery does not track (neither active nor standby: a
    rebalance moved it) is not applied and says True: Faust would apply it to whichever table
    its last record went to, and the recovery seeks where it needs if the partition comes
    back."""
    recovery = getattr(app.tables, "_recovery", None)
    if recovery is None or tp.topic not in app.tables.changelog_topics:
        return False
    table = recovery.tp_to_table.get(tp)
    if table is not None and not _bytes_table(table):
        return False
    now = monotonic()
    if tp in recovery.active_tps:
        offsets, role = recovery.active_offsets, "active"
        recovery._active_events_received_at[tp] = now
    elif tp in recovery.standby_tps:
        offsets, role = recovery.standby_offsets, "standby"
        recovery._standby_events_received_at[tp] = now
    else:
        return True
    assert table is not None
    seen = offsets.get(tp)
    batch = [_ChangelogRecord(tp, r) for r in records if seen is None or r.offset > seen]
    if batch:
        buffered = recovery.buffers.get(table)
        if buffered:  # older records Faust's path took: they go first
            table.apply_changelog_batch(buffered)
            buffered.clear()
        table.apply_changelog_batch(batch)
        offsets[tp] = batch[-1].offset
        recovery._last_flush_at = now
        _APPLIED.setdefault(id(app), Counter())[(table.name, role)] += len(batch)
    if recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()
    if not app.tables.standbys_ready and not _standbys_behind(recovery):
        app.tables.on_standbys_ready()
    return True


def _standbys_behind(recovery: Any) -> bool:
    """`Recovery.standby_remaining_total() > 0` without its TypeError on a standby
    partition not read yet (offset None), which Faust's loop swallows as "not ready"."""
    for tp, highwater in recovery.standby_highwaters.items():
        offset = recovery.standby_offsets.get(tp)
        if highwater is not None and highwater >= 0 and (offset is None or highwater > offset):
            return True
    return False
