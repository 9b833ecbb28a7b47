"""Faust agents: apply the domain rules to the source topics, keep state, emit derived records.

One agent reads the three source topics (events, sarah, commands); all are keyed by lead_key
with the same partition count, so one lead's inputs are handled by one worker, in order per
topic.

Exactly-once effects on an at-least-once broker (Tansu has no transactions), whatever the
order records are (re)processed in. Faust reprocesses from the last commit after a restart,
and faust #596 even processes records *ahead* of the committed offset before seeking back,
so a replay is not in offset order; nothing here depends on that order:
* Inbound events are idempotent by content: a message is counted once per wamid, delivery
  statuses only move forward, timestamps take max/min.
* Sarah updates and commands are applied at most once per event id (a bounded list of recent
  ids per lead), and a Sarah update older than the last applied one is skipped.
* A record that changes nothing re-emits the current derived records it touched (the lead
  snapshot, its message, its note or status change), so a crash between the table write and
  the output send loses nothing; the sink is idempotent, so the repeat is harmless.
* A record that cannot be decoded or applied goes to the dead-letter topic; the worker goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from leadstream.agents.daily import DailyWindows
from leadstream.app import app, settings
from leadstream.domain.model import (
    Command,
    InboundEvent,
    LeadState,
    MessageState,
    Note,
    SarahUpdate,
    StatusChange,
)
from leadstream.domain.rules import Applied, apply_command, apply_inbound, apply_sarah
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames
from leadstream.tables import daily_windows, lead_state, message_state

log = logging.getLogger(__name__)

RECENT_IDS = 64
names = TopicNames.from_settings(settings)

sources = app.topic(
    *names.sources(), key_type=bytes, value_type=bytes,
    key_serializer="raw", value_serializer="raw",
)
ticks = app.topic(names.ticks, key_type=bytes, value_type=bytes, key_serializer="raw",
                  value_serializer="raw")

Send = Callable[[str, bytes, bytes], Awaitable[Any]]


class LeadProcessor:
    """Applies one source record to the tables and returns when its outputs are queued.

    Kept apart from Faust's agent loop so it reads as one function of (record, state).
    """

    def __init__(self, leads: Any, messages: Any, send: Send, names: TopicNames,
                 daily: DailyWindows | None = None) -> None:
        self.leads = leads
        self.messages = messages
        self.daily = daily
        self.send = send
        self.names = names
        self.processed = 0
        self.skipped = 0
        self.dead = 0

    def _decode(self, topic: str, value: bytes) -> BaseModel:
        if topic == self.names.events:
            return InboundEvent.model_validate_json(value)
        if topic == self.names.sarah:
            return SarahUpdate.model_validate_json(value)
        if topic == self.names.commands:
            return Command.model_validate_json(value)
        raise ValueError(f"unexpected topic {topic}")

    async def handle(self, topic: str, partition: int, offset: int, key: bytes | None,
                     value: bytes | None) -> None:
        try:
            if value is None:
                raise ValueError("empty record")
            record = self._decode(topic, value)
            lead_key = record.lead_key  # type: ignore[attr-defined]
            if key is not None and key.decode() != lead_key:
                raise ValueError(f"record key {key!r} is not its lead_key {lead_key!r}")
            await self._apply(topic, partition, offset, lead_key.encode(), record)
            self.processed += 1
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            await self._dead_letter(topic, partition, offset, key, value, f"invalid record: {exc}")
        except Exception as exc:  # a bug must not stop the partition; the DLQ keeps the record
            log.exception("failed to apply %s:%s@%s", topic, partition, offset)
            await self._dead_letter(topic, partition, offset, key, value,
                                    f"apply failed: {type(exc).__name__}: {exc}")

    async def _apply(self, topic: str, partition: int, offset: int, key: bytes,
                     record: BaseModel) -> None:
        raw = self.leads.get(key)
        state: dict[str, Any] = orjson.loads(raw) if raw else {
            "lead": None, "recent": [], "last_status": None, "sarah_at": None}
        lead = LeadState.model_validate(state["lead"]) if state["lead"] else None
        event_id: str = record.event_id  # type: ignore[attr-defined]

        # Sarah and commands are not idempotent by content (a status move replayed after a
        # later one would undo it), so they are applied at most once, by event id, and an
        # older Sarah update never overrides a newer one. Inbound events are idempotent by
        # content (wamid, forward-only statuses, max/min timestamps) in any order.
        if not isinstance(record, InboundEvent) and event_id in state["recent"]:
            self.skipped += 1
            await self._reemit(key, lead, state, record)
            return
        if (isinstance(record, SarahUpdate) and state.get("sarah_at")
                and record.occurred_at.isoformat() < state["sarah_at"]):
            self.skipped += 1
            await self._reemit(key, lead, state, record)
            return

        msg_key = None
        message = None
        if isinstance(record, InboundEvent):
            if record.message is not None:
                msg_key = key + b"|" + record.message.wamid.encode()
                mraw = self.messages.get(msg_key)
                message = MessageState.model_validate_json(mraw) if mraw else None
            applied = apply_inbound(lead, message, record)
        elif isinstance(record, SarahUpdate):
            applied = apply_sarah(lead, record)
            state["sarah_at"] = record.occurred_at.isoformat()
        else:
            assert isinstance(record, Command)
            applied = apply_command(lead, record)

        if not isinstance(record, InboundEvent):
            state["recent"] = [*state["recent"][-(RECENT_IDS - 1):], event_id]
        if not (applied.lead_changed or applied.message_changed or applied.notes):
            # a duplicate (or a reprocessing after a crash): make sure what it derived is out
            self.skipped += 1
            await self._reemit(key, lead, state, record)
            if not isinstance(record, InboundEvent):
                self.leads[key] = orjson.dumps(state)
            return
        # everything that can fail is computed before the first send: a record that fails
        # part-way must not leave an emitted lead version that the next event reuses
        planned = self.daily.plan(lead, applied) if self.daily is not None else []
        await self._emit(key, applied)
        if self.daily is not None:
            await self.daily.commit(planned, partition)
        if applied.message_changed and msg_key is not None and applied.message is not None:
            self.messages[msg_key] = encode(applied.message)
        state["lead"] = applied.lead.model_dump(mode="json")
        if applied.status_changes:
            state["last_status"] = applied.status_changes[-1].model_dump(mode="json")
        self.leads[key] = orjson.dumps(state)

    async def _emit(self, key: bytes, applied: Applied) -> None:
        if applied.message_changed and applied.message is not None:
            await self.send(self.names.messages, key, encode(applied.message))
        for ch in applied.status_changes:
            await self.send(self.names.status_history, key, encode(ch))
        for note in applied.notes:
            await self.send(self.names.notes, key, encode(note))
        if applied.lead_changed:
            await self.send(self.names.leads, key, encode(applied.lead))

    async def _reemit(self, key: bytes, lead: LeadState | None, state: dict[str, Any],
                      record: BaseModel) -> None:
        """Outputs of an already-applied record, again (idempotent downstream)."""
        if lead is None:
            return
        if isinstance(record, InboundEvent) and record.message is not None:
            mraw = self.messages.get(key + b"|" + record.message.wamid.encode())
            if mraw:
                await self.send(self.names.messages, key, mraw)
        if isinstance(record, Command) and record.kind == "note":
            applied = apply_command(lead, record)
            for note in applied.notes:
                await self.send(self.names.notes, key, encode(note))
        last = state.get("last_status")
        if last:
            await self.send(self.names.status_history, key,
                            encode(StatusChange.model_validate(last)))
        await self.send(self.names.leads, key, encode(lead))

    async def _dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None,
                           value: bytes | None, reason: str) -> None:
        self.dead += 1
        log.error("dead letter %s:%s@%s: %s", topic, partition, offset, reason)
        dl = DeadLetter(
            event_id=f"worker:{topic}:{partition}:{offset}", reason=reason, stage="worker",
            source_topic=topic, source_partition=partition, source_offset=offset,
            original_b64=DeadLetter.b64(value or b""),
        )
        await self.send(self.names.dlq, key or b"", encode(dl))


async def _send(topic: str, key: bytes, value: bytes) -> Any:
    """Straight to the producer Faust owns, skipping the Topic/Channel layers (measured ~5% of
    the worker's CPU, bench/suite.py --profile). At-least-once holds: Faust's commit flushes
    this producer before it commits source offsets (faust Consumer._commit_tps)."""
    return await app.producer.send(topic, key, value, partition=None, timestamp=None,
                                   headers=None)


windows = DailyWindows(
    daily_windows, _send, names.daily_closed, tz=settings.timezone,
    grace_seconds=settings.daily_close_grace_seconds,
    retention_days=settings.daily_retention_days, partitions=settings.topic_partitions,
)
processor = LeadProcessor(lead_state, message_state, _send, names, windows)


@app.on_partitions_assigned.connect
async def _relearn_daily_windows(sender: Any, /, *args: Any, signal: Any, **kwargs: Any
                                 ) -> None:
    """A partition that comes (back) to this worker may have been changed by another one
    (`args[0]` is the set of assigned TopicPartitions)."""
    windows.forget({tp.partition for tp in args[0]})

# re-exported for callers that only want the type
__all__ = ["LeadProcessor", "Note", "processor"]


@app.agent(sources)
async def leads_agent(stream: Any) -> None:
    async for event in stream.events():
        m = event.message
        await processor.handle(m.topic, m.partition, m.offset, m.key, m.value)


@app.agent(ticks)
async def daily_close_agent(stream: Any) -> None:
    """Closes due daily windows of the tick's partition (inside its event context)."""
    async for event in stream.events():
        try:
            await windows.on_tick(event.message.partition, datetime.now(UTC))
        except Exception:  # a bad window must not stop the ticks
            log.exception("daily close failed in partition %s", event.message.partition)


@app.timer(interval=settings.daily_tick_seconds)
async def daily_tick() -> None:
    """One tick per partition; every worker sends them, closing is idempotent."""
    now = datetime.now(UTC).isoformat().encode()
    for p in range(settings.topic_partitions):
        await ticks.send(key=b"tick", value=now, partition=p)
