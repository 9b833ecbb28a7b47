"""The data the rules work on: inbound events, Sarah updates, commands, and the state they build.

These are also the payloads of the topics (`streams.records` wraps them), so they are the
log's contract: add fields freely, never rename or drop one.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadstream.domain.limits import (
    MAX_LIST,
    FieldText,
    Id,
    LongId,
    Name,
    NoteText,
    SarahExtra,
    Text,
)

LeadStatus = Literal["new", "qualified", "contacted", "converted", "archived"]
LEAD_STATUSES: tuple[LeadStatus, ...] = ("new", "qualified", "contacted", "converted", "archived")
Temperature = Literal["hot", "warm", "lukewarm", "cold"]
Role = Literal["human", "brain-bot", "sarah-bot"]
AuthorType = Literal["human", "bot", "system"]
Direction = Literal["inbound", "outbound"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)

    def __setattr__(self, name: str, value: Any) -> None:
        """A field set as pydantic's own handler does it for this config (no assignment
        validation, no extras, no frozen fields): the value in `__dict__`, the name in the
        fields set; without its Python-level dispatch, which was ~10% of the rules' CPU (a
        lead's rule sets some 18 fields; bench/agent_cpu.py). Anything else (a private
        attribute, a property) goes the usual way."""
        d = self.__dict__
        if name in d:
            d[name] = value
            self.__pydantic_fields_set__.add(name)
        else:
            super().__setattr__(name, value)


M = TypeVar("M", bound=BaseModel)


def working_copy(m: M) -> M:
    """A copy the rules may change: new list and dict containers, shared elements.

    The rules replace or append elements, never change one in place, so this is as safe as
    `model_copy(deep=True)` for them, at a fraction of the cost (the deep copy was over half
    of the agent's CPU per event; bench/agent_cpu.py). Built as pydantic's `__copy__` does
    (our models have no extras and no private attributes): the field dict copied in C, then
    only the fields that can hold a container copied again (1.2 µs for a lead against 4.0
    for a pass over its 52 fields).
    """
    cls = type(m)
    c = cls.__new__(cls)
    d = m.__dict__.copy()
    for k in _container_fields(cls):
        v = d[k]
        if type(v) is list or type(v) is dict:
            d[k] = v.copy()
    _set = object.__setattr__
    _set(c, "__dict__", d)
    _set(c, "__pydantic_extra__", None)
    _set(c, "__pydantic_fields_set__", set(m.__pydantic_fields_set__))
    _set(c, "__pydantic_private__", None)
    return c


_CONTAINER_FIELDS: dict[type, tuple[str, ...]] = {}


def _container_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `cls` whose type can hold a list or a dict (once per class)."""
    names = _CONTAINER_FIELDS.get(cls)
    if names is None:
        names = tuple(n for n, f in cls.model_fields.items() if _can_hold_container(f.annotation))
        _CONTAINER_FIELDS[cls] = names
    return names


def _can_hold_container(tp: Any) -> bool:
    origin = get_origin(tp)
    if tp in (list, dict) or origin in (list, dict):
        return True
    if origin is Annotated:
        return _can_hold_container(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return any(_can_hold_container(a) for a in get_args(tp))
    return tp is Any or tp is object  # could be anything: copy when it is a container


def same_fields(a: BaseModel, b: BaseModel, *, but: str | None = None) -> bool:
    """Field-by-field equality (optionally ignoring one field) without dumping either model.

    Equal to comparing `model_dump()`s for the flat models here (values are scalars,
    datetimes, and lists/dicts of those or of models, which compare by value).
    """
    da, db = a.__dict__, b.__dict__
    if but is None or da.get(but) == db.get(but):
        return da == db
    da, db = dict(da), dict(db)
    da.pop(but, None)
    db.pop(but, None)
    return da == db


class MessageInfo(Model):
    """One WhatsApp message as seen in a Kapso/Meta event (message or status)."""

    wamid: Id
    direction: Direction
    type: Name = "text"
    text: Text | None = None
    origin: Name | None = None
    status: Name | None = None
    error: FieldText | None = None
    timestamp: datetime


class InboundEvent(Model):
    """A validated inbound event on `leadstream.events`, one per Kapso/Meta item."""

    event_id: LongId
    kind: Literal["message", "status", "conversation", "identity"]
    event_type: Name
    workspace_id: Id
    lead_key: LongId
    identity: Id
    phone_e164: Name | None = None
    wa_id: Name | None = None
    bsuid: Id | None = None
    contact_name: Name | None = None
    conversation_id: Id | None = None
    conversation_state: Name | None = None
    occurred_at: datetime
    received_at: datetime
    message: MessageInfo | None = None
    #: the full identity Kapso/Meta give (stored on the lead)
    parent_bsuid: Id | None = None
    username: Name | None = None
    #: an identity change (kind "identity"): the contact's new number and/or new
    #: business-scoped id; the lead follows them (`domain.merge`)
    new_phone_e164: Name | None = None
    new_bsuid: Id | None = None
    #: times this record was forwarded from a merged lead to its survivor
    hops: int = 0


class SarahFields(Model):
    """What Sarah extracted; every field optional, only non-null ones are merged.

    A field Sarah sends that has no name here is kept in `sarah_extra` (bounded: see
    `limits.SarahExtra`), never dropped; a key literally called `sarah_extra` is merged into it.
    """

    name: Name | None = None
    business_type: FieldText | None = None
    domisili: FieldText | None = None
    business_duration: FieldText | None = None
    pain_points: list[FieldText] | None = Field(default=None, max_length=MAX_LIST)
    priority: FieldText | None = None
    urgency_level: FieldText | None = None
    next_step: FieldText | None = None
    story: NoteText | None = None
    language: Name | None = None
    interest_motivation: FieldText | None = None
    closing_technique_used: FieldText | None = None
    objection_raised: FieldText | None = None
    sarah_extra: SarahExtra = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = {k: v for k, v in data.items() if k not in cls.model_fields}
        if not unknown:
            return data
        known = {k: v for k, v in data.items() if k in cls.model_fields}
        given = known.get("sarah_extra")
        known["sarah_extra"] = {**given, **unknown} if isinstance(given, dict) else unknown
        return known


#: Sarah's text fields merged as they are (non-null wins); `name` and `pain_points` have rules
SARAH_TEXT_FIELDS = ("business_type", "domisili", "business_duration", "priority",
                     "urgency_level", "next_step", "story", "language", "interest_motivation",
                     "closing_technique_used", "objection_raised")


class SarahUpdate(Model):
    """Sarah's extraction for one lead, on `leadstream.sarah`."""

    event_id: str
    workspace_id: str
    lead_key: str
    identity: str
    phone_e164: str | None = None
    occurred_at: datetime
    chat_phase: Name | None = None
    extracted: SarahFields = Field(default_factory=SarahFields)
    lead_score: int | None = Field(default=None, ge=0, le=100)
    lead_temperature: Temperature | None = None
    hops: int = 0


class Command(Model):
    """A human or Brain-bot change, on `leadstream.commands`."""

    event_id: str
    workspace_id: str
    lead_key: str
    occurred_at: datetime
    #: merge: fold this lead into `target_key` (sent to the duplicate);
    #: absorb: take in `absorbed` (sent by the duplicate to the survivor);
    #: claim: this identity belongs to the lead `target_key` (sent by a lead that learned it)
    kind: Literal["edit", "note", "status", "merge", "absorb", "claim", "assign", "tags",
                  "task", "task_done", "task_undone"]
    actor_role: Role
    author: Name
    #: the person behind a personal `human` token (`workspace add --user`), else None
    actor: Name | None = None
    # edit: only the fields present in `edit_fields` are applied (null clears the override)
    edit_fields: list[Literal["name", "phone"]] = Field(default_factory=list)
    name: Name | None = None
    phone: Name | None = None
    # note
    content: NoteText | None = None
    # status
    status: LeadStatus | None = None
    reason: FieldText | None = None
    # assign: the person the lead goes to (None: unassigned)
    owner: Name | None = None
    # tags: labels to add and to remove (domain.team spells and bounds them)
    tags_add: list[Name] = Field(default_factory=list, max_length=MAX_LIST)
    tags_remove: list[Name] = Field(default_factory=list, max_length=MAX_LIST)
    # task: a new follow-up (`task_id`, text in `content`, `due_at`, its person in `owner`);
    # task_done, task_undone: the task `task_id` of this lead
    task_id: Id | None = None
    due_at: datetime | None = None
    # merge, claim: the surviving lead's key; absorb: the duplicate as it was when merged
    target_key: LongId | None = None
    absorbed: LeadState | None = None
    hops: int = 0


class LeadState(Model):
    """Per-lead state kept in the Faust table and published as the snapshot on `leadstream.leads`.

    Fields prefixed with `src_`/`_at` bookkeeping are internal ordering aids; the sink ignores
    what the replica has no column for.
    """

    lead_id: str
    lead_key: str
    workspace_id: str
    identity: str
    phone_e164: str | None = None
    wa_id: str | None = None
    bsuid: str | None = None
    name: str | None = None
    kapso_name: str | None = None
    sarah_name: str | None = None
    human_name: str | None = None
    contact_phone: str | None = None
    business_type: str | None = None
    domisili: str | None = None
    business_duration: str | None = None
    pain_points: list[str] = Field(default_factory=list)
    priority: str | None = None
    urgency_level: str | None = None
    next_step: str | None = None
    story: str | None = None
    language: str | None = None
    interest_motivation: str | None = None
    closing_technique_used: str | None = None
    objection_raised: str | None = None
    #: Sarah's fields that have no column of their own
    sarah_extra: dict[str, Any] = Field(default_factory=dict)
    lead_score: int | None = None
    lead_temperature: Temperature | None = None
    lead_status: LeadStatus = "new"
    chat_phase: str | None = None
    status_updated_at: datetime | None = None
    status_updated_by: str | None = None
    status_updated_by_role: Role | None = None
    kapso_conversation_id: str | None = None
    conversation_state: str | None = None
    message_count: int = 0
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None = None
    last_inbound_at: datetime | None = None
    last_outbound_at: datetime | None = None
    last_contact_at: datetime | None = None
    last_activity_at: datetime
    version: int = 0
    # ordering aids: event time of the value currently held
    kapso_name_at: datetime | None = None
    conversation_at: datetime | None = None
    #: created by a delivery receipt only: its timestamps are replaced by the first activity
    placeholder: bool = False
    #: the last wamids counted in message_count (see rules.apply_inbound: crash consistency)
    recent_counted: list[str] = Field(default_factory=list)
    parent_bsuid: str | None = None
    username: str | None = None
    #: merged into another lead (its lead_id; the replica's `merged_into`) and that lead's
    #: key, where every later record for this one is forwarded
    merged_into: str | None = None
    merged_into_key: str | None = None
    #: keys of the leads merged into this one (a merge back into one of them is a no-op)
    merged_from: list[str] = Field(default_factory=list)
    #: the team's workflow (issue #29): the person the lead is assigned to, and its labels
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    #: its follow-up tasks: every open one and the newest done ones (`domain.tasks` bounds
    #: them; a task that leaves the state keeps its row, and the tasks topic has it)
    tasks: list[Task] = Field(default_factory=list)


class MessageState(Model):
    """One message row as the replica shows it; `version` guards the sink's upsert."""

    message_id: str
    lead_id: str
    lead_key: str
    workspace_id: str
    conversation_id: str | None = None
    direction: Direction
    type: str = "text"
    text: str | None = None
    origin: str | None = None
    status: str | None = None
    status_rank: int = 0
    error: str | None = None
    sent_at: datetime
    #: True once the message itself (not only a status about it) has been seen.
    seen: bool = False
    #: the lead version whose message_count first included this message
    counted_in: int = 0
    version: int = 0


class Task(Model):
    """A follow-up task on a lead (issue #29), in the lead's state and, each version of it,
    on `leadstream.tasks` (the replica's `lead_tasks`). Never changed in place: a change is
    a new copy with the next `version`."""

    task_id: str
    lead_id: str
    lead_key: str
    workspace_id: str
    text: str
    due_at: datetime | None = None
    owner: str | None = None
    created_by: str
    created_at: datetime
    done_at: datetime | None = None
    done_by: str | None = None
    version: int = 1


class StatusChange(Model):
    """One effective status change, on `leadstream.status-history`."""

    event_id: str
    lead_id: str
    lead_key: str
    workspace_id: str
    from_status: LeadStatus | None
    to_status: LeadStatus
    changed_by: str
    changed_by_role: Role
    #: who made the change: the person of a personal token, else the role or bot
    actor: str | None = None
    reason: str | None = None
    changed_at: datetime


class Note(Model):
    """One timeline note, on `leadstream.notes`; notes are append-only."""

    note_id: str
    lead_id: str
    lead_key: str
    workspace_id: str
    author: str
    author_type: AuthorType
    content: str
    created_at: datetime
    #: 0 for human/bot notes (never rewritten); the daily summary note counts up
    version: int = 0


LeadState.model_rebuild()
Command.model_rebuild()
