"""The processor that applies the domain rules to one source record: state in, derived
records out. No Faust here: the tables are mappings and `send` is a coroutine, so the
processor is tested on plain dicts (tests/agents/test_processor.py) and wired to Faust in
`agents/__init__.py`. Why it is idempotent in any order: see that module's docstring.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from leadstream.agents.daily import DailyWindows
from leadstream.domain.model import (
    Command,
    InboundEvent,
    LeadState,
    MessageState,
    SarahUpdate,
    StatusChange,
)
from leadstream.domain.rules import Applied, apply_command, apply_inbound, apply_sarah
from leadstream.streams.records import DeadLetter, encode
from leadstream.streams.topics import TopicNames

log = logging.getLogger(__name__)

#: Sarah updates and commands remembered per lead, to apply each at most once
RECENT_IDS = 64

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
