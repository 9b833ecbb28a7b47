"""The lead rules as pure functions: (state, input) -> (new state, derived records).

Idempotence is part of every rule: applying the same input twice gives the same state and
no second derived record. Out-of-order inputs resolve by event time (timestamps take the
max, "latest" values keep the event time they came with), so a stream and any reordering of
it within a lead end in the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadstream.domain.identity import lead_id_for, split_key, stable_id
from leadstream.domain.limits import MAX_EXTRA_KEYS, MAX_LIST
from leadstream.domain.model import (
    SARAH_TEXT_FIELDS,
    AuthorType,
    Command,
    InboundEvent,
    LeadState,
    LeadStatus,
    MessageState,
    Note,
    Role,
    SarahUpdate,
    StatusChange,
    Task,
    same_fields,
    working_copy,
)
from leadstream.domain.tasks import (
    CLOSING_STATUSES,
    add_task,
    close_open,
    closed_note,
    mark,
    task_note,
)
from leadstream.domain.team import apply_tags, assignment_note, normalize_tag, tag_note

# --------------------------------------------------------------------------- status policy

#: Sarah's chat phases and what status each implies (None: keep the phase, move nothing).
PHASE_STATUS: dict[str, LeadStatus] = {
    "greeting": "new",
    "collect_name": "new",
    "salam_kenal": "new",
    "collect_domisili": "new",
    "listening": "qualified",
    "summarize": "qualified",
    "validate_pain_points": "qualified",
    "discover_interest": "qualified",
    "qualifying": "qualified",
    "scoring": "qualified",
    "solution_match": "contacted",
    "close_attempt": "contacted",
    "handoff": "contacted",
    "completed": "converted",
    "a": "new",
    "b": "new",
    "c": "qualified",
    "d": "contacted",
}


def phase_to_status(phase: str | None) -> LeadStatus | None:
    """Status implied by a chat phase; phase letters may come as `A`, `phase_a`, `B (phase 1)`."""
    if not phase:
        return None
    p = phase.strip().lower().replace("-", "_").replace(" ", "_")
    if p in PHASE_STATUS:
        return PHASE_STATUS[p]
    if p.startswith("phase_") and p[6:] in PHASE_STATUS and len(p) == 7:
        return PHASE_STATUS[p[6:]]
    head = p.split("_", 1)[0].split("(", 1)[0]
    if len(head) == 1 and head in PHASE_STATUS:
        return PHASE_STATUS[head]
    return None


def may_change_status(actor: Role, last_changed_by: Role | None) -> bool:
    """Humans and the Brain bot always may; Sarah only while the last change was hers (or none).

    Sarah never overrides a human or Brain decision.
    """
    if actor in ("human", "brain-bot"):
        return True
    return last_changed_by in (None, "sarah-bot")


def author_type_of(role: Role) -> AuthorType:
    return "human" if role == "human" else "bot"


# --------------------------------------------------------------------------- helpers

STATUS_RANK: dict[str, int] = {
    "pending": 0,
    "received": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "played": 3,
    "failed": 4,
    "deleted": 5,
}

#: how many recently counted wamids a lead remembers (see `_counts_now`)
RECENT_COUNTED = 32

#: Outbound origins that mean a person typed the message (WhatsApp Business app, Kapso inbox).
HUMAN_ORIGINS = frozenset({"business_app", "inbox", "kapso_inbox", "human", "agent"})


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _clean(s: str | None) -> str | None:
    if s is None:
        return None
    s = " ".join(str(s).split())
    return s or None


def merge_pain_points(existing: list[str], new: list[str] | None) -> list[str]:
    """Accumulate pain points; duplicates compare case- and whitespace-insensitively.

    Bounded (issue #24): a lead keeps its `MAX_LIST` (50) newest distinct pain points; older
    ones make room, so no update, however often repeated, grows a lead without end."""
    out = list(existing)
    seen = {" ".join(p.split()).casefold() for p in out}
    for p in new or []:
        c = _clean(p)
        if c is None:
            continue
        k = c.casefold()
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out[-MAX_LIST:]


def merge_extra(existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Sarah's extra fields: a non-null value replaces the held one; null keeps it.

    Bounded (issue #24): a lead keeps the `MAX_EXTRA_KEYS` (50) fields set most recently (a
    field set again counts as new); each value is already at most 4,000 bytes of JSON, so the
    extra fields of a lead stay under about 200 kB whatever is sent."""
    out = {k: v for k, v in existing.items() if new.get(k) is None}
    out.update({k: v for k, v in new.items() if v is not None})
    if len(out) <= MAX_EXTRA_KEYS:
        return out
    return dict(list(out.items())[-MAX_EXTRA_KEYS:])


def display_name(lead: LeadState) -> str | None:
    """A human edit wins forever, otherwise Sarah's, otherwise the WhatsApp profile name."""
    return lead.human_name or lead.sarah_name or lead.kapso_name


def new_lead(
    lead_key: str,
    at: datetime,
    *,
    phone_e164: str | None = None,
    bsuid: str | None = None,
) -> LeadState:
    workspace_id, identity = split_key(lead_key)
    return LeadState(
        lead_id=lead_id_for(lead_key),
        lead_key=lead_key,
        workspace_id=workspace_id,
        identity=identity,
        phone_e164=phone_e164 if phone_e164 else (identity if identity.startswith("+") else None),
        bsuid=bsuid,
        created_at=at,
        updated_at=at,
        last_activity_at=at,
        version=0,
    )


def _touch(lead: LeadState, at: datetime) -> None:
    """Record activity at `at` (delivery receipts are not activity and never touch)."""
    if lead.placeholder:
        lead.placeholder = False
        lead.created_at = lead.updated_at = lead.last_activity_at = at
        return
    lead.created_at = min(lead.created_at, at)
    lead.updated_at = max(lead.updated_at, at)
    lead.last_activity_at = max(lead.last_activity_at, at)


def _finish(before: LeadState | None, after: LeadState) -> bool:
    """Recompute derived fields, bump the version if anything changed; True if it did."""
    after.name = display_name(after)
    if before is not None and same_fields(before, after, but="version"):
        after.version = before.version
        return False
    after.version = (before.version if before is not None else 0) + 1
    return True


def _change_status(
    lead: LeadState,
    to: LeadStatus,
    *,
    actor: Role,
    author: str,
    reason: str | None,
    at: datetime,
    source_event_id: str,
    person: str | None = None,
) -> StatusChange | None:
    if to == lead.lead_status or not may_change_status(actor, lead.status_updated_by_role):
        return None
    change = StatusChange(
        event_id=stable_id("status", source_event_id),
        lead_id=lead.lead_id,
        lead_key=lead.lead_key,
        workspace_id=lead.workspace_id,
        from_status=lead.lead_status,
        to_status=to,
        changed_by=author,
        changed_by_role=actor,
        actor=person or author,
        reason=reason,
        changed_at=at,
    )
    lead.lead_status = to
    lead.status_updated_at = at
    lead.status_updated_by = person or author  # the person of a personal token (#25)
    lead.status_updated_by_role = actor
    return change


# --------------------------------------------------------------------------- results


@dataclass
class Applied:
    """What one input did: the new state and the records to publish."""

    lead: LeadState
    lead_changed: bool
    message: MessageState | None = None
    message_changed: bool = False
    #: the message itself was seen for the first time (what message_count counts)
    new_message: bool = False
    status_changes: list[StatusChange] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: tasks made or changed (each a new version), for the tasks topic (issue #29)
    tasks: list[Task] = field(default_factory=list)


# --------------------------------------------------------------------------- inbound events


def apply_message(
    message: MessageState | None, lead: LeadState, ev: InboundEvent
) -> tuple[MessageState | None, bool, bool]:
    """Fold a message or status event into the message row.

    Returns (message, changed, first_seen): `first_seen` is True only the first time the
    message itself is seen, which is what `message_count` counts.
    """
    info = ev.message
    if info is None:
        return message, False, False
    is_message = ev.kind == "message"
    rank = STATUS_RANK.get((info.status or "").lower(), 0)
    if message is None:
        msg = MessageState(
            message_id=info.wamid,
            lead_id=lead.lead_id,
            lead_key=lead.lead_key,
            workspace_id=lead.workspace_id,
            conversation_id=ev.conversation_id,
            direction=info.direction,
            type=info.type,
            text=info.text,
            origin=info.origin,
            status=info.status,
            status_rank=rank,
            error=info.error,
            sent_at=info.timestamp,
            seen=is_message,
            version=1,
        )
        return msg, True, is_message
    msg = working_copy(message)
    first_seen = is_message and not msg.seen
    if is_message:
        msg.seen = True
    # content: fill what is missing; a message event is authoritative for type/text/direction
    if is_message or msg.text is None:
        msg.text = info.text if info.text is not None else msg.text
    if is_message:
        msg.type = info.type
        msg.direction = info.direction
        msg.origin = info.origin or msg.origin
        msg.sent_at = min(msg.sent_at, info.timestamp)
    msg.conversation_id = msg.conversation_id or ev.conversation_id
    if info.status and (rank > msg.status_rank or msg.status is None):
        msg.status = info.status
        msg.status_rank = rank
        if info.error:
            msg.error = info.error
    changed = not same_fields(msg, message)
    if changed:
        msg.version = message.version + 1
    return msg, changed, first_seen


def _counts_now(lead: LeadState | None, message: MessageState | None, wamid: str) -> bool:
    """Is this message not yet in `message_count`?

    The lead and its messages are stored as separate records (two Faust tables), so after a
    crash one may hold a write the other lost. The lead remembers the last wamids it counted
    and each message the lead version that counted it, so either loss is recognised: a
    message counted by a lead version that is gone is counted again, and a message whose own
    record is gone but that the lead remembers is not.
    """
    if lead is not None and wamid in lead.recent_counted:
        return False
    if message is None or not message.seen:
        return True
    return message.counted_in > (lead.version if lead is not None else 0)


def apply_inbound(
    lead: LeadState | None, message: MessageState | None, ev: InboundEvent
) -> Applied:
    """Apply one inbound event (message, status, conversation, identity) to a lead."""
    before = lead
    cur = (
        working_copy(lead)
        if lead is not None
        else new_lead(ev.lead_key, ev.occurred_at, phone_e164=ev.phone_e164, bsuid=ev.bsuid)
    )
    if ev.phone_e164 and not cur.phone_e164:
        cur.phone_e164 = ev.phone_e164
    if ev.wa_id and not cur.wa_id:
        cur.wa_id = ev.wa_id
    if ev.bsuid and not cur.bsuid:
        cur.bsuid = ev.bsuid
    if ev.parent_bsuid:
        cur.parent_bsuid = ev.parent_bsuid
    if ev.username:
        cur.username = ev.username
    if ev.kind == "identity":  # the contact changed number or id: the lead follows
        if ev.new_phone_e164:
            cur.phone_e164 = ev.new_phone_e164
            cur.wa_id = ev.new_phone_e164.lstrip("+")
        if ev.new_bsuid:
            cur.bsuid = ev.new_bsuid
    name = _clean(ev.contact_name)
    if name and (cur.kapso_name_at is None or ev.occurred_at >= cur.kapso_name_at):
        cur.kapso_name = name
        cur.kapso_name_at = ev.occurred_at
    if ev.conversation_id and (cur.conversation_at is None or ev.occurred_at >= cur.conversation_at):
        cur.kapso_conversation_id = ev.conversation_id
        cur.conversation_at = ev.occurred_at
        if ev.kind == "conversation" and ev.conversation_state:
            cur.conversation_state = ev.conversation_state

    counts = ev.kind == "message" and ev.message is not None and _counts_now(
        lead, message, ev.message.wamid)
    new_msg, msg_changed, _ = apply_message(message, cur, ev)
    first_seen = bool(counts)
    if ev.kind == "message" and ev.message is not None:
        ts = ev.message.timestamp
        if first_seen:
            cur.message_count += 1
            cur.recent_counted = [*cur.recent_counted[-(RECENT_COUNTED - 1):],
                                  ev.message.wamid]
        cur.last_message_at = _max(cur.last_message_at, ts)
        if ev.message.direction == "inbound":
            cur.last_inbound_at = _max(cur.last_inbound_at, ts)
        else:
            cur.last_outbound_at = _max(cur.last_outbound_at, ts)
            if (ev.message.origin or "").lower() in HUMAN_ORIGINS:
                cur.last_contact_at = _max(cur.last_contact_at, ts)
        _touch(cur, ts)
    elif ev.kind in ("conversation", "identity"):
        _touch(cur, ev.occurred_at)
    elif lead is None:
        cur.placeholder = True
    changed = _finish(before, cur)
    if first_seen and new_msg is not None and new_msg.counted_in != cur.version:
        new_msg = new_msg.model_copy(update={"counted_in": cur.version, "seen": True,
                                             "version": new_msg.version + (0 if msg_changed
                                                                           else 1)})
        msg_changed = True
    return Applied(lead=cur, lead_changed=changed, message=new_msg, message_changed=msg_changed,
                   new_message=first_seen)


# --------------------------------------------------------------------------- Sarah


def apply_sarah(lead: LeadState | None, up: SarahUpdate) -> Applied:
    """Merge Sarah's extraction: only non-null fields; pain points accumulate; phase -> status."""
    before = lead
    cur = (
        working_copy(lead)
        if lead is not None
        else new_lead(up.lead_key, up.occurred_at, phone_e164=up.phone_e164)
    )
    ex = up.extracted
    if _clean(ex.name):
        cur.sarah_name = _clean(ex.name)
    for f in SARAH_TEXT_FIELDS:
        v = _clean(getattr(ex, f))
        if v is not None:
            setattr(cur, f, v)
    if ex.sarah_extra:
        cur.sarah_extra = merge_extra(cur.sarah_extra, ex.sarah_extra)
    cur.pain_points = merge_pain_points(cur.pain_points, ex.pain_points)
    if up.lead_score is not None:
        cur.lead_score = up.lead_score
    if up.lead_temperature is not None:
        cur.lead_temperature = up.lead_temperature
    changes: list[StatusChange] = []
    if up.chat_phase:
        cur.chat_phase = up.chat_phase
        target = phase_to_status(up.chat_phase)
        if target is not None:
            ch = _change_status(cur, target, actor="sarah-bot", author="sarah-bot",
                                reason=f"chat phase {up.chat_phase}", at=up.occurred_at,
                                source_event_id=up.event_id)
            if ch is not None:
                changes.append(ch)
    closed, notes = _close_tasks(cur, changes)
    changed_fields = before is None or not same_fields(before, cur)
    if changed_fields:
        _touch(cur, up.occurred_at)
    changed = _finish(before, cur)
    return Applied(lead=cur, lead_changed=changed, status_changes=changes, notes=notes,
                   tasks=closed)


# --------------------------------------------------------------------------- commands


def note_text(cmd: Command) -> str | None:
    """The timeline note a command leaves: a note's content, or for a name or phone edit what
    was set (who and when are the note's author and time, as for a status move). Derived
    from the command alone, so a re-emitted command yields the same note."""
    if cmd.kind == "note":
        return (cmd.content or "").strip() or None
    if cmd.kind != "edit":
        return None
    said = []
    if "name" in cmd.edit_fields:
        name = _clean(cmd.name)
        said.append(f"Nama diubah menjadi “{name}”" if name
                    else "Nama yang diketik dihapus (kembali ke nama dari Sarah/WhatsApp)")
    if "phone" in cmd.edit_fields:
        said.append(f"Telepon diubah menjadi {cmd.phone}" if cmd.phone
                    else "Telepon yang diketik dihapus")
    return "; ".join(said) + "." if said else None


def _team_note(lead: LeadState, cmd: Command, content: str | None) -> Note:
    """An owner or tag change on the timeline, by whoever made it (issue #29)."""
    return Note(note_id=cmd.event_id, lead_id=lead.lead_id, lead_key=lead.lead_key,
                workspace_id=lead.workspace_id, author=cmd.author,
                author_type=author_type_of(cmd.actor_role), content=content or "",
                created_at=cmd.occurred_at)


def _close_tasks(cur: LeadState, changes: Sequence[StatusChange]) -> tuple[list[Task], list[Note]]:
    """A lead moved to converted or archived closes its open tasks, done by whoever moved it,
    with a system note saying so (domain.tasks)."""
    if not changes or changes[-1].to_status not in CLOSING_STATUSES:
        return [], []
    ch = changes[-1]
    by = ch.actor or ch.changed_by
    cur.tasks, closed = close_open(cur.tasks, at=ch.changed_at, by=by)
    if not closed:
        return [], []
    return closed, [Note(note_id=stable_id("tasks-closed", ch.event_id), lead_id=cur.lead_id,
                         lead_key=cur.lead_key, workspace_id=cur.workspace_id,
                         author=by, author_type="system",
                         content=closed_note(closed, ch.to_status), created_at=ch.changed_at)]


def _task_command(cur: LeadState, cmd: Command) -> tuple[Task | None, str | None]:
    """A task made, done or opened again by `cmd`: (its new version, the timeline's line),
    or (None, None) when nothing changed (a repeat, an unknown task, a full lead)."""
    if cmd.task_id is None:
        return None, None
    if cmd.kind == "task":
        task = Task(task_id=cmd.task_id, lead_id=cur.lead_id, lead_key=cur.lead_key,
                    workspace_id=cur.workspace_id, text=(cmd.content or "").strip(),
                    due_at=cmd.due_at, owner=cmd.owner or cur.owner, created_by=cmd.author,
                    created_at=cmd.occurred_at)
        tasks = add_task(cur.tasks, task)
        if tasks is None:
            return None, None
        cur.tasks = tasks
        return task, task_note("new", task)
    done = cmd.kind == "task_done"
    cur.tasks, changed = mark(cur.tasks, cmd.task_id, done=done, at=cmd.occurred_at,
                              by=cmd.author)
    if changed is None:
        return None, None
    return changed, task_note("done" if done else "undone", changed)


def apply_command(lead: LeadState | None, cmd: Command) -> Applied:
    """Apply a human/Brain edit, note or status change.

    Commands address an existing lead (the API answers 404 otherwise); one that arrives for an
    unknown key still creates the lead so that nothing a user wrote is lost.
    """
    before = lead
    cur = working_copy(lead) if lead is not None else new_lead(cmd.lead_key, cmd.occurred_at)
    notes: list[Note] = []
    changes: list[StatusChange] = []
    if cmd.kind == "edit":
        if "name" in cmd.edit_fields:
            cur.human_name = _clean(cmd.name)
        if "phone" in cmd.edit_fields:
            cur.contact_phone = cmd.phone or None
    content = note_text(cmd)
    if content:
        notes.append(Note(
            note_id=cmd.event_id,
            lead_id=cur.lead_id,
            lead_key=cur.lead_key,
            workspace_id=cur.workspace_id,
            author=cmd.author,
            author_type=author_type_of(cmd.actor_role),
            content=content,
            created_at=cmd.occurred_at,
        ))
    if cmd.kind == "assign" and cur.owner != cmd.owner:
        notes.append(_team_note(cur, cmd, assignment_note(cur.owner, cmd.owner)))
        cur.owner = cmd.owner
    if cmd.kind == "tags":
        tags = apply_tags(cur.tags, [normalize_tag(t) for t in cmd.tags_add],
                          [normalize_tag(t) for t in cmd.tags_remove])
        said = tag_note(cur.tags, tags)
        if said is not None:
            notes.append(_team_note(cur, cmd, said))
            cur.tags = tags
    if cmd.kind == "status" and cmd.status is not None:
        ch = _change_status(cur, cmd.status, actor=cmd.actor_role, author=cmd.actor_role,
                            reason=cmd.reason, at=cmd.occurred_at, source_event_id=cmd.event_id,
                            person=cmd.actor)
        if ch is not None:
            changes.append(ch)
    tasks: list[Task] = []
    if cmd.kind in ("task", "task_done", "task_undone"):
        task, said = _task_command(cur, cmd)
        if task is not None:
            tasks.append(task)
            notes.append(_team_note(cur, cmd, said))
    closed, closing = _close_tasks(cur, changes)
    tasks += closed
    notes += closing
    if notes or (before is None) or not same_fields(before, cur):
        _touch(cur, cmd.occurred_at)
    changed = _finish(before, cur)
    return Applied(lead=cur, lead_changed=changed, status_changes=changes, notes=notes,
                   tasks=tasks)
