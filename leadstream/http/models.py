"""The API's request and response models: what the handlers validate with and what the
OpenAPI document is generated from (`http.openapi`), kept apart from the handlers so both
import them and neither imports the other."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from leadstream.domain.limits import MAX_FIELD, MAX_NAME, MAX_NOTE, Name
from leadstream.domain.model import LeadStatus, SarahFields, Temperature
from leadstream.domain.tasks import MAX_TASK_TEXT, DueFilter
from leadstream.domain.team import MAX_TAGS, normalize_tag

#: top-level keys of a Sarah state save that are ignored: at most this many named back
IGNORED_NAMED = 50


class SarahStateIn(BaseModel):
    """`POST /api/sarah/state`, as the existing Sarah state save sends it (issue #25): the
    phase may come as `state` (`chat_phase` wins when both come); any other top-level key is
    accepted and ignored (the body limit bounds them) and named in the answer's `ignored`,
    so an integrator sees what leadstream does not use."""

    model_config = ConfigDict(extra="allow")
    contact_phone: str = Field(max_length=MAX_NAME)
    chat_phase: Name | None = None
    state: Any = Field(default=None, description="the old state save's name for chat_phase")
    extracted_data: SarahFields = Field(
        default_factory=SarahFields,
        description="named fields have columns; any other field is kept in `sarah_extra`")
    lead_score: int | None = Field(default=None, ge=0, le=100)
    lead_temperature: Temperature | None = None

    @field_validator("lead_temperature", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("extracted_data", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return {} if v is None else v  # a state save before any extraction

    @property
    def phase(self) -> str | None:
        """`chat_phase`, else `state` when it is a phase name (a string within the bound)."""
        if self.chat_phase is not None:
            return self.chat_phase
        return self.state if self._state_is_phase() else None

    def _state_is_phase(self) -> bool:
        return isinstance(self.state, str) and 0 < len(self.state) <= MAX_NAME

    @property
    def ignored(self) -> list[str]:
        """The top-level keys leadstream does not use (a `state` that is no phase name, or
        one `chat_phase` overrides, included), sorted, each cut to 64 characters."""
        keys = set(self.model_extra or {})
        if self.state is not None and (self.chat_phase is not None
                                       or not self._state_is_phase()):
            keys.add("state")
        return sorted(k[:64] for k in keys)[:IGNORED_NAMED]


class LeadEditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=MAX_NOTE)
    author: str | None = Field(default=None, max_length=MAX_NAME)

    @field_validator("content")
    @classmethod
    def not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("content must not be blank")
        return v


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: LeadStatus
    reason: str | None = Field(default=None, max_length=MAX_FIELD)  # the domain's bound


class AssignIn(BaseModel):
    """`POST /api/leads/{id}/assign`: a person of the workspace (`workspace add --user`), or
    null to unassign."""

    model_config = ConfigDict(extra="forbid")
    owner: str | None = Field(max_length=MAX_NAME)


class TaskIn(BaseModel):
    """`POST /api/leads/{id}/tasks`: a follow-up; `owner` a person of the workspace (`me`:
    the token's person; default: the lead's owner when it has one, else nobody)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TASK_TEXT)
    due_at: AwareDatetime | None = None
    owner: str | None = Field(default=None, max_length=MAX_NAME)

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        v = v.replace("\x00", "").strip()
        if not v:
            raise ValueError("a task needs a text")
        return v


class TaskQuery(BaseModel):
    """`GET /api/tasks`: `due` overdue (open, due before now), today (open, due before the end
    of today in the workspace's timezone: overdue ones too) or all; `done` false (default:
    open only), true, or absent with `due=all` for both."""

    model_config = ConfigDict(extra="forbid")
    due: DueFilter = "all"
    owner: str | None = Field(default=None, max_length=MAX_NAME,
                              description="tasks of this person; `me`: the token's person")
    done: bool | None = None
    lead_id: UUID | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class TeamReportQuery(BaseModel):
    """`GET /api/reports/team`: days from `from` to `to` inclusive, in the workspace's
    timezone (default: the last 14 days)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")


class TeamReport(BaseModel):
    """`GET /api/reports/team` (definitions: `domain.reports`). Each cell: `new_leads`,
    `conversions`, `first_response` {answered, unanswered, median_seconds, p90_seconds}."""

    model_config = ConfigDict(populate_by_name=True)
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    timezone: str
    days: list[dict[str, Any]] = Field(description="each day: `owners` (one cell each) and "
                                                   "`total`")
    owners: list[dict[str, Any]] = Field(description="each owner's cell over the range")
    total: dict[str, Any]
    cohorts: list[dict[str, Any]] = Field(description="by week of first contact: leads, "
                                                      "converted, rate")


def _tags(v: Any) -> Any:
    if not isinstance(v, list):
        return v
    return [normalize_tag(t) if isinstance(t, str) else t for t in v]


class TagsIn(BaseModel):
    """`POST /api/leads/{id}/tags`: labels to add and to remove (each trimmed, lower case)."""

    model_config = ConfigDict(extra="forbid")
    add: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    remove: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    _normal = field_validator("add", "remove", mode="before")(_tags)


def _csv(v: Any) -> Any:
    return [x for x in v.split(",") if x] if isinstance(v, str) else v


class LeadQuery(BaseModel):
    """`GET /api/leads` (and `/api/leads.csv`) query parameters (lists are comma-separated)."""

    model_config = ConfigDict(extra="forbid")
    status: list[LeadStatus] | None = None
    temperature: list[Temperature] | None = None
    urgency: list[str] | None = Field(default=None, description="urgency_level values")
    domisili: str | None = Field(default=None, max_length=200,
                                 description="exact, case-insensitive")
    business_type: str | None = Field(default=None, max_length=200,
                                      description="exact, case-insensitive")
    language: str | None = Field(default=None, max_length=200,
                                 description="Sarah's `language`, exact, case-insensitive")
    min_score: int | None = Field(default=None, ge=0, le=100)
    max_score: int | None = Field(default=None, ge=0, le=100)
    created_from: datetime | None = None
    created_to: datetime | None = None
    active_from: datetime | None = Field(default=None, description="last activity at or after")
    active_to: datetime | None = Field(default=None, description="last activity before")
    q: str | None = Field(default=None, min_length=1, max_length=200,
                          description="substring of name, phone, business type, domisili, "
                                      "interest motivation or objection raised")
    needs_reply: bool | None = Field(
        default=None, description="true: leads whose last inbound message is newer than their "
                                  "last outbound one; sorted longest waiting first unless "
                                  "`sort` is given")
    sort: Literal["last_activity_at", "lead_score", "created_at", "waiting"] | None = Field(
        default=None, description="default last_activity_at (newest first); `waiting`: "
                                  "oldest unanswered inbound message first")
    owner: str | None = Field(default=None, max_length=MAX_NAME,
                              description="leads of this person; `me`: the token's person")
    tag: str | None = Field(default=None, max_length=200, description="leads with this tag")
    cursor: str | None = Field(default=None, description="next_cursor of the previous page")
    limit: int = Field(default=50, ge=1, le=200)

    _split = field_validator("status", "temperature", "urgency", mode="before")(_csv)

    @field_validator("tag")
    @classmethod
    def _one_spelling(cls, v: str | None) -> str | None:
        return None if v is None else normalize_tag(v)

    def sort_key(self) -> str:
        if self.sort is not None:
            return self.sort
        return "waiting" if self.needs_reply else "last_activity_at"


class Lead(BaseModel):
    """A lead as the list, the detail, the CSV export and the live stream show it: the
    replica's `leads` row (contract §4) plus the derived `inbox_url` and `waiting_since`."""

    lead_id: UUID
    workspace_id: str
    lead_key: str
    phone_e164: str | None
    wa_id: str | None
    bsuid: str | None
    name: str | None
    kapso_name: str | None
    sarah_name: str | None
    contact_phone: str | None = Field(description="the phone a human typed in")
    business_type: str | None
    domisili: str | None
    business_duration: str | None
    pain_points: list[str]
    priority: str | None
    urgency_level: str | None
    next_step: str | None
    story: str | None
    language: str | None
    interest_motivation: str | None
    closing_technique_used: str | None
    objection_raised: str | None
    sarah_extra: dict[str, Any] = Field(description="Sarah's fields that have no column")
    lead_score: int | None = Field(ge=0, le=100)
    lead_temperature: Temperature | None
    lead_status: LeadStatus
    chat_phase: str | None
    status_updated_at: datetime | None
    status_updated_by: str | None
    kapso_conversation_id: str | None
    conversation_state: str | None
    message_count: int
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    last_contact_at: datetime | None
    last_activity_at: datetime
    version: int
    parent_bsuid: str | None
    username: str | None
    merged_into: UUID | None = Field(description="the lead this one was merged into")
    owner: str | None = Field(default=None, description="the person the lead is assigned to")
    tags: list[str] = Field(default_factory=list, description="the team's labels")
    inbox_url: str | None = Field(description="the Kapso conversation in the workspace's inbox")
    waiting_since: datetime | None = Field(
        description="the unanswered inbound message's time, when the lead waits for a reply")


class LeadPage(BaseModel):
    leads: list[Lead]
    next_cursor: str | None


class StatusCounts(BaseModel):
    counts: dict[str, int]
    total: int
    needs_reply: int = Field(description="leads waiting for a reply")


class Accepted(BaseModel):
    accepted: bool
    event_id: str
    lead_key: str | None = Field(default=None, description="POST /api/sarah/state only")
    task_id: str | None = Field(default=None, description="POST /api/leads/{id}/tasks only")


class TaskOut(BaseModel):
    task_id: str
    lead_id: UUID
    text: str
    due_at: datetime | None
    owner: str | None
    created_by: str
    created_at: datetime
    done_at: datetime | None
    done_by: str | None
    overdue: bool
    lead_name: str | None = None
    lead_status: LeadStatus | None = None
    phone_e164: str | None = None


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    counts: dict[str, int] = Field(description="open tasks `overdue` and `today` (due before "
                                               "the day's end) for the same owner filter")


class MergeIn(BaseModel):
    """`POST /api/leads/{lead_id}/merge`: fold the duplicate into the lead in the path."""

    model_config = ConfigDict(extra="forbid")
    duplicate_lead_id: UUID
    reason: str | None = Field(default=None, max_length=MAX_FIELD)  # the domain's bound


class LeadDetail(BaseModel):
    lead: Lead
    notes: list[dict[str, Any]] = Field(description="newest first")
    status_history: list[dict[str, Any]] = Field(description="newest first")
    daily_summaries: list[dict[str, Any]] = Field(description="newest day first")
    messages: list[dict[str, Any]] = Field(description="the 50 newest")
    tasks: list[TaskOut] = Field(default_factory=list,
                                 description="open first (soonest due first), then done")
    merged: list[Lead] = Field(default_factory=list,
                               description="the leads merged into this one (their messages, "
                                           "notes, history and days are listed above)")


class Me(BaseModel):
    """Who the token is: the page shows the person signed in."""

    workspace_id: str
    role: str
    user: str | None
    inbox_url_pattern: str | None
    timezone: str = Field(description="LEADSTREAM_TIMEZONE: the page shows times in it")


class SyncFailure(BaseModel):
    id: int
    event_id: str
    stage: str
    reason: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    failed_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    original_preview: str = Field(description="the first 500 bytes of the original, as text")


class SyncFailureQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolved: bool | None = Field(default=False, description="false: open ones (default); "
                                                             "true: handled ones")
    limit: int = Field(default=100, ge=1, le=500)


class ReconcileState(BaseModel):
    """A number of the workspace whose reconciliation from Kapso's API keeps failing."""

    phone_number_id: str
    complete_until: datetime | None = Field(description="everything before is in the log")
    failures: int = Field(description="failed runs in a row")
    last_error: str | None


class SyncFailurePage(BaseModel):
    failures: list[SyncFailure]
    open: int = Field(description="unresolved dead letters of the workspace")
    reconcile_failing: list[ReconcileState] = Field(
        default_factory=list, description="numbers whose reconciliation from Kapso's API "
                                          "failed 3 times or more in a row")


class Digest(BaseModel):
    """The manager's digest of one workspace day."""

    workspace_id: str
    day: date
    final: bool = Field(description="false: computed now, not written yet")
    content: str
    facts: dict[str, Any]
    writer: str = Field(description="`builtin`, `llm:<model>` or `builtin (llm failed: ...)`")
    created_at: datetime


class TimelineItem(BaseModel):
    """A message, note or status move: `kind`, `at`, `id`, and its row's columns."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["message", "note", "status"]
    at: datetime
    id: str


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None
