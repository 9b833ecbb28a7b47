"""The processor that applies the domain rules to source records: state in, derived records
out, one `Flush` at a time. No Faust and no I/O here: the tables are mappings read through the
flush's write-back views, and the outputs go to its outbox, so the processor is tested on
plain dicts (tests/unit/agents/test_processor.py); `agents.batch` makes a flush durable and
`agents.agent` wires it to Faust. Why it is idempotent in any order: see `agents.agent`.

Processing a record is synchronous on purpose: no per-record tasks or awaits (the per-record
cost that issue #15 measured). The runner yields between slices of a batch, holding a lock
the daily close also takes, so the close never sees a half-applied batch.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from leadstream.agents.daily import DailyWindows
from leadstream.agents.flush import Caches, Flush, LeadEntry
from leadstream.domain.merge import (
    MAX_HOPS,
    absorb,
    absorb_command,
    claim_command,
    crossed,
    learned,
    mark_merged,
    merge_command,
    unmerged,
)
from leadstream.domain.model import (
    Command,
    InboundEvent,
    SarahUpdate,
    StatusChange,
)
from leadstream.domain.rules import (
    Applied,
    apply_command,
    apply_inbound,
    apply_sarah,
    new_lead,
)
from leadstream.ops.logs import record_context
from leadstream.streams.records import (
    DeadLetter,
    decode_command,
    decode_inbound,
    decode_sarah,
    encode,
)
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

#: Sarah updates and commands remembered per lead, to apply each at most once
RECENT_IDS = 64


class LeadProcessor:
    """Applies source records to a flush's view of the tables and fills its outbox."""

    def __init__(self, leads: Any, messages: Any, names: TopicNames,
                 daily: DailyWindows | None = None, cache_size: int = 5_000) -> None:
        self.leads = leads
        self.messages = messages
        self.daily = daily
        self.names = names
        #: the objects earlier flushes decoded or wrote (`flush.Decoded`), per table
        self.decoded = Caches(cache_size)
        self.processed = 0
        self.skipped = 0
        self.dead = 0

    def begin(self, after: Flush | None = None, generation: int = 0) -> Flush:
        """A new flush; `after` is the one still in flight (its writes are read first)."""
        return Flush(self.leads, self.messages,
                     self.daily.table if self.daily is not None else {}, after=after,
                     generation=generation, decoded=self.decoded)

    def _decode(self, topic: str, value: bytes) -> BaseModel:
        if topic == self.names.events:
            return decode_inbound(value)
        if topic == self.names.sarah:
            return decode_sarah(value)
        if topic == self.names.commands:
            return decode_command(value)
        raise ValueError(f"unexpected topic {topic}")

    def handle(self, flush: Flush, topic: str, partition: int, offset: int,
               key: bytes | None, value: bytes | None) -> None:
        """Apply one record; a record that cannot be decoded or applied is dead-lettered,
        and nothing it computed reaches the flush."""
        try:
            if value is None:
                raise ValueError("empty record")
            record = self._decode(topic, value)
            lead_key = record.lead_key  # type: ignore[attr-defined]
            if key is not None and key.decode() != lead_key:
                raise ValueError(f"record key {key!r} is not its lead_key {lead_key!r}")
            self._apply(flush, partition, lead_key.encode(), record)
            self.processed += 1
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            self._dead_letter(flush, topic, partition, offset, key, value,
                              f"invalid record: {exc}")
        except Exception as exc:  # a bug must not stop the partition; the DLQ keeps the record
            log.exception("failed to apply %s:%s@%s", topic, partition, offset,
                          extra=record_context(topic, partition, offset, key))
            self._dead_letter(flush, topic, partition, offset, key, value,
                              f"apply failed: {type(exc).__name__}: {exc}")
        flush.done(topic, partition, offset)

    def _topic_of(self, record: BaseModel) -> str:
        if isinstance(record, InboundEvent):
            return self.names.events
        if isinstance(record, SarahUpdate):
            return self.names.sarah
        return self.names.commands

    def _send(self, flush: Flush, record: InboundEvent | SarahUpdate | Command) -> None:
        """A record for another lead (a forward, an absorb, a claim): produced with this
        flush, before its offsets are committed, so it is never lost (at worst sent twice,
        and every kind is applied at most once by its event id or its content)."""
        flush.out.other.append((self._topic_of(record), record.lead_key.encode(),
                                encode(record)))

    def _forwarded(self, flush: Flush, partition: int, key: bytes, entry: LeadEntry,
                   target: str, record: BaseModel) -> bool:
        """Records for a merged lead or an alias go to the survivor; True if this one was
        dealt with here (forwarded, or nothing to do), False if the duplicate keeps it (an
        event about a message it already holds: its row stays its row)."""
        own = key.decode()
        if isinstance(record, Command) and record.kind in ("merge", "claim"):
            if record.target_key in (target, own) or record.kind == "merge":
                return True  # merged already: nothing left to merge here
            # the identity is claimed by another lead: the two leads are one person
            self._send(flush, merge_command(record, target))
            return True
        if (isinstance(record, InboundEvent) and record.message is not None
                and flush.messages.get(key + b"|" + record.message.wamid.encode()) is not None):
            return False
        return self._forward(flush, own, target, record)

    def _forward(self, flush: Flush, own: str, target: str, record: BaseModel) -> bool:
        hops: int = record.hops  # type: ignore[attr-defined]
        if hops >= MAX_HOPS:
            raise ValueError(f"forwarded {hops} times (a merge cycle?): {own} -> {target}")
        self._send(flush, record.model_copy(update={"lead_key": target,  # type: ignore[arg-type]
                                                    "hops": hops + 1}))
        return True

    def _merge(self, flush: Flush, partition: int, key: bytes, entry: LeadEntry,
               record: Command) -> None:
        """`merge` (or a `claim` of a lead's identity by another lead): mark this lead merged
        and hand its state to the survivor; an identity with no lead becomes an alias."""
        target = record.target_key
        recent = [*entry.recent[-(RECENT_IDS - 1):], record.event_id]
        if not target or target == key.decode():
            flush.leads.put(key, partition, LeadEntry(entry.lead, recent, entry.last_status,
                                                      entry.sarah_at, entry.alias))
            return
        lead = entry.lead
        if lead is None:
            flush.leads.put(key, partition, LeadEntry(None, recent, None, None, target))
            return
        if target in lead.merged_from:  # that lead is already part of this one
            flush.leads.put(key, partition, LeadEntry(lead, recent, entry.last_status,
                                                      entry.sarah_at))
            return
        applied = mark_merged(lead, target, record.occurred_at)
        self._emit(flush, partition, key, applied)
        flush.leads.put(key, partition, LeadEntry(applied.lead, recent, entry.last_status,
                                                  entry.sarah_at))
        self._send(flush, absorb_command(record, lead, target))

    def _apply(self, flush: Flush, partition: int, key: bytes, record: BaseModel) -> None:
        entry = flush.leads.get(key) or LeadEntry()
        lead = entry.lead
        event_id: str = record.event_id  # type: ignore[attr-defined]
        target = entry.forward_to
        if target is not None and lead is not None and isinstance(record, Command):
            survives = crossed(key.decode(), target, record)
            if survives is False:
                return  # its state is already going into the survivor
            if survives:
                lead = unmerged(lead)  # the smaller key takes the absorb below
                entry = LeadEntry(lead, entry.recent, entry.last_status, entry.sarah_at)
                target = None
        if target is not None and self._forwarded(flush, partition, key, entry, target, record):
            return
        if isinstance(record, Command) and record.kind in ("merge", "claim"):
            if event_id in entry.recent:
                return
            self._merge(flush, partition, key, entry, record)
            return

        # Sarah and commands are not idempotent by content (a status move replayed after a
        # later one would undo it), so they are applied at most once, by event id, and an
        # older Sarah update never overrides a newer one. Inbound events are idempotent by
        # content (wamid, forward-only statuses, max/min timestamps) in any order.
        if not isinstance(record, InboundEvent) and event_id in entry.recent:
            self._reemit(flush, partition, key, entry, record)
            return
        if (isinstance(record, SarahUpdate) and entry.sarah_at
                and record.occurred_at.isoformat() < entry.sarah_at):
            self._reemit(flush, partition, key, entry, record)
            return

        msg_key = None
        message = None
        if isinstance(record, InboundEvent):
            if record.message is not None:
                msg_key = key + b"|" + record.message.wamid.encode()
                message = flush.messages.get(msg_key)
            applied = apply_inbound(lead, message, record)
        elif isinstance(record, SarahUpdate):
            applied = apply_sarah(lead, record)
        elif isinstance(record, Command) and record.kind == "absorb":
            assert record.absorbed is not None
            applied = absorb(lead or new_lead(record.lead_key, record.occurred_at), record)
        else:
            assert isinstance(record, Command)
            applied = apply_command(lead, record)

        recent = entry.recent
        if not isinstance(record, InboundEvent):
            recent = [*recent[-(RECENT_IDS - 1):], event_id]
        sarah_at = (record.occurred_at.isoformat() if isinstance(record, SarahUpdate)
                    else entry.sarah_at)
        if not (applied.lead_changed or applied.message_changed or applied.notes):
            # a duplicate (or a reprocessing after a crash): make sure what it derived is out
            if not isinstance(record, InboundEvent):
                entry = LeadEntry(lead, recent, entry.last_status, sarah_at)
                flush.leads.put(key, partition, entry)
            self._reemit(flush, partition, key, entry, record)
            return
        # everything that can fail is computed before the flush is touched: a record that
        # fails part-way must not leave an emitted lead version that the next event reuses
        planned = (self.daily.plan(lead, applied, flush.daily.get)
                   if self.daily is not None else [])
        if self.daily is not None:
            self.daily.stage(planned, partition, flush.daily.put, flush.out.other)
        self._emit(flush, partition, key, applied)
        if applied.lead_changed and applied.lead.merged_into_key is None:
            # an identity this lead did not have: records under it belong here from now on
            for alias in learned(lead, applied.lead):
                self._send(flush, claim_command(applied.lead, alias, applied.lead.updated_at,
                                                event_id))
        if applied.message_changed and msg_key is not None and applied.message is not None:
            flush.messages.put(msg_key, partition, applied.message)
        last_status = (applied.status_changes[-1].model_dump(mode="json")
                       if applied.status_changes else entry.last_status)
        flush.leads.put(key, partition, LeadEntry(applied.lead, recent, last_status, sarah_at))

    def _emit(self, flush: Flush, partition: int, key: bytes, applied: Applied) -> None:
        out = flush.out
        if applied.lead.placeholder:
            # known only from delivery receipts of messages never seen: kept in state (the
            # message may still come), not a lead anyone sees or counts until it has
            # activity (issue #24); its first message emits both
            return
        if applied.message_changed and applied.message is not None:
            out.message(partition, key, applied.message)
        for ch in applied.status_changes:
            out.status_change(partition, key, ch)
        for note in applied.notes:
            out.note(partition, key, note)
        for task in applied.tasks:
            out.task(partition, key, task)
        if applied.lead_changed:
            out.lead(partition, key, applied.lead)

    def _reemit(self, flush: Flush, partition: int, key: bytes, entry: LeadEntry,
                record: BaseModel) -> None:
        """Outputs of an already-applied record, again (idempotent downstream), and its
        state written back, so a changelog that missed it (crash, cancelled flush) has it."""
        self.skipped += 1
        lead = entry.lead
        if lead is None:
            return
        out = flush.out
        flush.leads.rewrite(key, partition)
        if lead.placeholder:
            return  # nothing of it is out (see _emit)
        if isinstance(record, InboundEvent) and record.message is not None:
            msg_key = key + b"|" + record.message.wamid.encode()
            message = flush.messages.get(msg_key)
            if message is not None:
                out.message(partition, key, message)
                flush.messages.rewrite(msg_key, partition)
            if self.daily is not None:
                self.daily.rewrite(lead, record, partition, flush.daily.rewrite)
        if isinstance(record, Command) and record.kind in ("note", "edit"):
            for note in apply_command(lead, record).notes:
                out.note(partition, key, note)
        if not isinstance(record, InboundEvent):
            # its tasks as the state has them: a task command, or a status move that closed
            # the open ones, may have been applied without its output (bounded: <= 70)
            for task in lead.tasks:
                out.task(partition, key, task)
        if entry.last_status:
            out.status_change(partition, key, StatusChange.model_validate(entry.last_status))
        out.lead(partition, key, lead)

    def _dead_letter(self, flush: Flush, topic: str, partition: int, offset: int,
                     key: bytes | None, value: bytes | None, reason: str) -> None:
        self.dead += 1
        log.error("dead letter %s:%s@%s: %s", topic, partition, offset, reason,
                  extra=record_context(topic, partition, offset, key, stage="worker"))
        dl = DeadLetter.of(stage="worker", reason=reason, original=value or b"", topic=topic,
                           partition=partition, offset=offset, key=key)
        flush.out.other.append((self.names.dlq, key or b"", encode(dl)))
