"""Record (de)serialization. Records are JSON; every record carries a stable `event_id`."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, Field

from leadstream.domain.daily import DayState
from leadstream.domain.limits import JsonDecoder
from leadstream.domain.model import (
    Command,
    InboundEvent,
    LeadState,
    MessageState,
    Note,
    SarahUpdate,
    StatusChange,
)

__all__ = [
    "Command",
    "DeadLetter",
    "InboundEvent",
    "LeadState",
    "MessageState",
    "Note",
    "SarahUpdate",
    "StatusChange",
    "decode_command",
    "decode_day",
    "decode_inbound",
    "decode_lead",
    "decode_message",
    "decode_sarah",
    "encode",
    "encode_day",
]

#: the worker's decoders of what it reads on its hot path (`limits.JsonDecoder`: the models'
#: own validation, without a Python call per string when the JSON holds no NUL)
decode_inbound = JsonDecoder(InboundEvent)
decode_sarah = JsonDecoder(SarahUpdate)
decode_command = JsonDecoder(Command)
decode_message = JsonDecoder(MessageState)
decode_lead = JsonDecoder(LeadState)


def decode_day(raw: bytes) -> DayState:
    """A stored day aggregate as the worker folds it (`domain.daily.DayState`): its own
    state, written by `encode_day` only, so read without validating it again."""
    state: DayState = orjson.loads(raw)
    return state


def encode_day(state: DayState) -> bytes:
    """A day aggregate as it is stored and published: `DayAggregate`'s JSON."""
    return orjson.dumps(state)


class DeadLetter(BaseModel):
    """What could not be processed, with the reason and the original bytes (base64)."""

    event_id: str
    reason: str
    stage: str
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    workspace_id: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    original_b64: str
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    @staticmethod
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    @classmethod
    def of(cls, *, stage: str, reason: str, original: bytes, topic: str | None,
           partition: int | None = None, offset: int | None = None, key: bytes | None = None,
           workspace_id: str | None = None, headers: dict[str, str] | None = None,
           keep: int | None = None) -> DeadLetter:
        """The one way a dead letter is made, with the one id scheme: a record read from the
        log is `<stage>:<topic>:<partition>:<offset>` (read again after a restart, it is the
        same dead letter); anything else (a webhook body, a row the replica refused, a record
        the broker refused) is `<stage>:<topic>:<hash of its bytes>`. The workspace is the
        lead key's unless given. `keep` cuts the original kept (the id is of all of it)."""
        if offset is not None and partition is not None and partition >= 0:
            event_id = f"{stage}:{topic}:{partition}:{offset}"
        else:
            fingerprint = hashlib.blake2b((topic or "").encode() + b"\0" + original,
                                          digest_size=12)
            event_id = f"{stage}:{topic}:{fingerprint.hexdigest()}"
        return cls(
            event_id=event_id, reason=reason, stage=stage, source_topic=topic,
            source_partition=partition if partition is not None and partition >= 0 else None,
            source_offset=offset, workspace_id=workspace_id or cls.workspace_of(key),
            headers=headers or {},
            original_b64=cls.b64(original if keep is None else original[:keep]),
        )

    @staticmethod
    def workspace_of(key: bytes | None) -> str | None:
        """The workspace a lead key names (every producer of ours keys a record by its
        lead), so the workspace's own dashboard lists the dead letter whatever stage wrote
        it; None for a key that is not one."""
        try:
            workspace_id, sep, identity = (key or b"").decode().partition(":")
        except UnicodeDecodeError:
            return None
        return workspace_id if sep and workspace_id and identity and len(workspace_id) <= 256 \
            else None


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model, exclude_none=False)

