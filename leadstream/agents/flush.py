"""One flush of the batch hot path as data, with no I/O: the write-back view of each table
and the coalesced outputs (issue #15; Kafka Streams' record cache, Quix Streams' state cache
per checkpoint).

* `WriteBack`: reads see this flush's writes first; a key read or written once is decoded
  once; each written key is encoded once, when the flush is made durable. So a lead that
  gets 20 messages in one flush costs one changelog record, not 20.
* `Decoded`: what earlier flushes decoded or wrote, kept with the stored bytes it stands
  for, so a lead that gets a message a flush (the usual case below ~1,000 events/s) is not
  decoded again each time.
* `Outbox`: one lead snapshot per lead (the newest version), one row per message and per
  task (the newest version), every status change and note by its id (they are events: all
  are kept, a repeat of the same id once), and the rest (dead letters, late daily windows)
  in order.

`agents.batch.BatchRunner` turns a `Flush` into produce requests, a replica write and store
writes; `agents.processor.LeadProcessor` fills it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from leadstream.domain.daily import DayState
from leadstream.domain.model import LeadState, MessageState, Note, StatusChange, Task
from leadstream.streams.records import decode_day, decode_lead, decode_message, encode

V = TypeVar("V")


class Decoded(Generic[V]):
    """A table's values as decoded in earlier flushes, by key, each with the stored bytes it
    was decoded from or encoded to (Kafka Streams' record cache, holding objects): a read
    whose stored bytes are those bytes takes the object and skips the decode (a lead's JSON
    and its validation: 6.6% of the worker's CPU at 1,000 events/s, BENCHMARKS.md session 16).

    Sound because a hit needs the very bytes in the store: whatever changed the store since
    (another flush, a changelog recovery, a flush that never became durable, a partition
    revoked) is a miss. And because nobody changes a decoded value in place: the rules work
    on `working_copy`s and the daily fold returns new dicts, as a flush's own `WriteBack`
    already relies on. Bounded to `size` keys, the least recently stored going first."""

    def __init__(self, decode: Callable[[bytes], V], size: int) -> None:
        self.decode = decode
        self.size = size
        self.entries: dict[bytes, tuple[bytes, V]] = {}
        self.hits = 0

    def get(self, key: bytes, raw: bytes) -> V:
        hit = self.entries.get(key)
        if hit is not None and hit[0] == raw:  # the same object compares equal at once
            self.hits += 1
            return hit[1]
        value = self.decode(raw)
        self.put(key, raw, value)
        return value

    def put(self, key: bytes, raw: bytes, value: V) -> None:
        """`raw` is `value` as the store holds it (or will, once its flush is durable)."""
        if self.size <= 0:
            return
        entries = self.entries
        if entries.pop(key, None) is None and len(entries) >= self.size:
            del entries[next(iter(entries))]
        entries[key] = (raw, value)


class WriteBack(Generic[V]):
    """A table seen through this flush: decoded values, and the keys to write back."""

    def __init__(self, table: Any, decoded: Decoded[V],
                 parent: WriteBack[V] | None = None) -> None:
        self.table = table
        #: decodes what this flush reads from the store, through earlier flushes' objects
        self.decoded = decoded
        #: the view of the flush still in flight when this one began: its writes are newer
        #: than the store until it completes (then they are the store's)
        self.parent = parent
        self.values: dict[bytes, V | None] = {}
        #: written keys -> the partition whose changelog and store they go to
        self.dirty: dict[bytes, int] = {}

    def get(self, key: bytes) -> V | None:
        try:
            return self.values[key]
        except KeyError:
            parent = self.parent
            if parent is not None and key in parent.dirty:
                value = parent.values[key]
                self.values[key] = value
                return value
            raw = self.table.get(key)
            value = self.decoded.get(key, raw) if raw else None
            self.values[key] = value
            return value

    def put(self, key: bytes, partition: int, value: V) -> None:
        self.values[key] = value
        self.dirty[key] = partition

    def rewrite(self, key: bytes, partition: int) -> None:
        """Write a key back unchanged: after a crash or a cancelled flush the store may hold
        a value its changelog lacks (the record is then reprocessed and changes nothing)."""
        if self.get(key) is not None:
            self.dirty[key] = partition

    def written(self) -> Iterator[tuple[int, bytes, V]]:
        for key, partition in self.dirty.items():
            value = self.values[key]
            assert value is not None
            yield partition, key, value


@dataclass
class LeadEntry:
    """The `lead-state` table's value: the lead, the ids of its recent Sarah updates and
    commands (applied at most once), its last status change (re-emitted with the lead) and
    the time of the newest Sarah update applied. Stored as JSON, the same as before."""

    lead: LeadState | None = None
    recent: list[str] = field(default_factory=list)
    last_status: dict[str, Any] | None = None
    sarah_at: str | None = None
    #: an identity that was never a lead of its own but belongs to one (`domain.merge`):
    #: that lead's key; a merged lead has it in `lead.merged_into_key`
    alias: str | None = None

    @property
    def forward_to(self) -> str | None:
        """Where records for this key go instead (merged, or an alias), if anywhere."""
        if self.lead is not None and self.lead.merged_into_key:
            return self.lead.merged_into_key
        return self.alias

    @classmethod
    def decode(cls, raw: bytes) -> LeadEntry:
        d = orjson.loads(raw)
        lead = d.get("lead")
        return cls(lead=decode_lead.python(raw, lead) if lead else None,
                   recent=list(d.get("recent") or []), last_status=d.get("last_status"),
                   sarah_at=d.get("sarah_at"), alias=d.get("alias"))

    def encode(self, lead_json: bytes | None = None) -> bytes:
        """`lead_json`: the lead already encoded (the snapshot sent with it), if at hand."""
        if lead_json is None:
            lead_json = encode(self.lead) if self.lead is not None else b"null"
        return b"".join((b'{"lead":', lead_json, b',"recent":', orjson.dumps(self.recent),
                         b',"last_status":', orjson.dumps(self.last_status),
                         b',"sarah_at":', orjson.dumps(self.sarah_at),
                         b',"alias":', orjson.dumps(self.alias), b"}"))


@dataclass
class Outbox:
    """The derived records of one flush, coalesced where the contract allows it (§3: the
    lead snapshot and message topics carry versions; history and notes are events)."""

    #: lead key -> (partition, newest snapshot)
    leads: dict[bytes, tuple[int, LeadState]] = field(default_factory=dict)
    #: (workspace, message id) -> (partition, lead key, newest row)
    messages: dict[tuple[str, str], tuple[int, bytes, MessageState]] = field(
        default_factory=dict)
    history: dict[str, tuple[int, bytes, StatusChange]] = field(default_factory=dict)
    notes: dict[str, tuple[int, bytes, Note]] = field(default_factory=dict)
    #: task id -> (partition, lead key, newest version)
    tasks: dict[str, tuple[int, bytes, Task]] = field(default_factory=dict)
    #: (topic, key, value): dead letters and late daily windows, in order
    other: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def lead(self, partition: int, key: bytes, lead: LeadState) -> None:
        cur = self.leads.get(key)
        if cur is None or lead.version >= cur[1].version:
            self.leads[key] = (partition, lead)

    def message(self, partition: int, key: bytes, m: MessageState) -> None:
        k = (m.workspace_id, m.message_id)
        cur = self.messages.get(k)
        if cur is None or m.version >= cur[2].version:
            self.messages[k] = (partition, key, m)

    def status_change(self, partition: int, key: bytes, ch: StatusChange) -> None:
        self.history.setdefault(ch.event_id, (partition, key, ch))

    def note(self, partition: int, key: bytes, n: Note) -> None:
        cur = self.notes.get(n.note_id)
        if cur is None or n.version >= cur[2].version:
            self.notes[n.note_id] = (partition, key, n)

    def task(self, partition: int, key: bytes, t: Task) -> None:
        cur = self.tasks.get(t.task_id)
        if cur is None or t.version >= cur[2].version:
            self.tasks[t.task_id] = (partition, key, t)


class Caches:
    """One `Decoded` per table, kept by the worker across its flushes."""

    def __init__(self, size: int) -> None:
        self.leads: Decoded[LeadEntry] = Decoded(LeadEntry.decode, size)
        self.messages: Decoded[MessageState] = Decoded(decode_message, size)
        self.daily: Decoded[DayState] = Decoded(decode_day, size)


class Flush:
    """Everything one flush holds: the tables' write-back views, the outbox, and the source
    offsets it covers (acked only once all of it is durable)."""

    def __init__(self, leads: Any, messages: Any, daily: Any, *, after: Flush | None = None,
                 generation: int = 0, decoded: Caches | None = None) -> None:
        """`after`: the flush in flight, whose writes this one must read (see WriteBack);
        `decoded`: the worker's objects from earlier flushes (none kept: a fresh set)."""
        caches = decoded if decoded is not None else Caches(0)
        self.leads: WriteBack[LeadEntry] = WriteBack(
            leads, caches.leads, after.leads if after else None)
        self.messages: WriteBack[MessageState] = WriteBack(
            messages, caches.messages, after.messages if after else None)
        self.daily: WriteBack[DayState] = WriteBack(
            daily, caches.daily, after.daily if after else None)
        #: the consumer generation its records were fetched in (acks from another are void)
        self.generation = generation
        self.out = Outbox()
        #: (topic, partition) -> source offsets processed
        self.offsets: dict[tuple[str, int], list[int]] = {}
        self.events = 0
        self.started = time.monotonic()
        #: the broker timestamp (ms) of its oldest source record: the webhook's durable
        #: write of the event that has waited longest (the freshness metric)
        self.oldest_ms: int | None = None

    def done(self, topic: str, partition: int, offset: int) -> None:
        self.offsets.setdefault((topic, partition), []).append(offset)
        self.events += 1

    def detach(self) -> None:
        """Stop reading through the flush before this one (it is durable now)."""
        self.leads.parent = self.messages.parent = self.daily.parent = None

    def age_ms(self) -> float:
        return (time.monotonic() - self.started) * 1000
