"""Every faust-streaming internal the project touches outside the consumer subclass, in one
place (issue #26), each with why. Written against faust-streaming 0.15.3 (pinned in
requirements.lock); an upgrade checks this module and `broker/faust_consumer.py` (which
subclasses Faust's aiokafka consumer and owns the consumer internals) and nothing else.
"""

from __future__ import annotations

import contextvars
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
