"""Merging leads and following identity changes: the pure rules (no I/O).

A lead is one person, but a person can reach the team under several identities: a
business-scoped id before a number, a new number after `user_changed_number`, a new id after
`user_changed_user_id`, or simply two leads a person on the team sees are the same customer.
Identities are Kafka keys and keys never change, so the rules work with aliases: a merged lead
(or an identity that was never a lead) keeps `merged_into_key`, and every later record for it
is forwarded to the survivor. The merge happens in the log, in three records:

1. `merge` (a command keyed by the duplicate): the duplicate is marked merged, in order with
   its own records; what it counted before is in the state it hands on;
2. `absorb` (keyed by the survivor, carrying the duplicate's state): the survivor folds it in
   (counts added, gaps filled, a system note);
3. anything for the duplicate afterwards is forwarded (`hops` counts, a cycle is cut at
   `MAX_HOPS`), except events about messages the duplicate already holds, which it keeps
   updating (their rows stay its rows; readers see them through `merged_into`).

Two leads merged into each other at the same moment (two people, opposite directions) are
resolved the same way on both sides: the smaller key survives (`crossed`); a merge into a
lead this one has already absorbed is a no-op (`merged_from`).

A lead that learns an identity it did not have (a number, a business-scoped id) sends a
`claim` to that identity's key: an unknown identity becomes an alias of the lead, a known lead
under it is merged into the claimant. Replaying the topics replays the same decisions.
"""

from __future__ import annotations

from datetime import datetime

from leadstream.domain.identity import lead_id_for, lead_key, stable_id
from leadstream.domain.model import (
    SARAH_TEXT_FIELDS,
    Command,
    LeadState,
    Note,
    working_copy,
)
from leadstream.domain.rules import Applied, _finish, _max, _touch, merge_extra, merge_pain_points
from leadstream.domain.tasks import merge_tasks, rehome
from leadstream.domain.team import apply_tags

#: forwards of one record before it is dead-lettered (a merge cycle, e.g. two leads merged
#: into each other at the same time)
MAX_HOPS = 8
MERGE_AUTHOR = "system-merge"
#: how many absorbed leads a lead remembers (for refusing a merge back into one of them)
MAX_MERGED_FROM = 100

#: fields the survivor takes from the duplicate only where it has none
FILL_FIELDS = ("phone_e164", "wa_id", "bsuid", "parent_bsuid", "username", "kapso_name",
               "sarah_name", "human_name", "contact_phone", "lead_score", "lead_temperature",
               "chat_phase", "kapso_conversation_id", "conversation_state", *SARAH_TEXT_FIELDS)


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def identity_keys(lead: LeadState) -> set[str]:
    """The keys of the identities a lead holds (its number, its business-scoped id)."""
    return {lead_key(lead.workspace_id, i) for i in (lead.phone_e164, lead.bsuid) if i}


def learned(before: LeadState | None, after: LeadState) -> list[str]:
    """Keys of identities `after` holds that `before` did not, other than its own key: each
    gets a `claim` so records under it reach this lead."""
    if (before is not None and before.phone_e164 == after.phone_e164
            and before.bsuid == after.bsuid):
        return []  # the common case, on the hot path: nothing new
    had = identity_keys(before) if before is not None else set()
    return sorted(identity_keys(after) - had - {after.lead_key})


def crossed(own_key: str, merged_into_key: str, absorb: Command) -> bool | None:
    """Two leads merged into each other at once (each took its merge before the other's
    absorb arrived): the absorb this lead gets carries the very lead it was merged into.
    The smaller key survives: True here (un-merge and take the absorb), False there (drop
    it: this lead's own state is already on its way into the survivor); None: no cycle."""
    if absorb.kind != "absorb" or absorb.absorbed is None:
        return None
    # sent to this lead itself (not forwarded here) by the lead this one merged into
    if absorb.target_key != own_key or absorb.absorbed.lead_key != merged_into_key:
        return None
    return own_key < merged_into_key


def unmerged(lead: LeadState) -> LeadState:
    cur = working_copy(lead)
    cur.merged_into = None
    cur.merged_into_key = None
    return cur


def mark_merged(lead: LeadState, survivor_key: str, at: datetime) -> Applied:
    """The duplicate's side: it now points at the survivor."""
    cur = working_copy(lead)
    cur.merged_into_key = survivor_key
    cur.merged_into = lead_id_for(survivor_key)
    _touch(cur, at)
    return Applied(lead=cur, lead_changed=_finish(lead, cur))


def absorb(survivor: LeadState, cmd: Command) -> Applied:
    """The survivor's side: fold the duplicate in. The survivor's own values win; the
    duplicate fills what the survivor lacks; messages counted by either are counted once in
    the sum (each was counted by exactly one of them); the timeline's bounds widen."""
    dup = cmd.absorbed
    assert dup is not None
    cur = working_copy(survivor)
    if cur.kapso_name is None and dup.kapso_name is not None:
        cur.kapso_name_at = dup.kapso_name_at  # its own later name still wins
    if cur.kapso_conversation_id is None and dup.kapso_conversation_id is not None:
        cur.conversation_at = dup.conversation_at
    for f in FILL_FIELDS:
        if getattr(cur, f) is None and getattr(dup, f) is not None:
            setattr(cur, f, getattr(dup, f))
    cur.pain_points = merge_pain_points(cur.pain_points, dup.pain_points)
    # the team's: the survivor's owner stays (the duplicate's fills an unassigned one), and
    # it carries both leads' labels
    if cur.owner is None:
        cur.owner = dup.owner
    cur.tags = apply_tags(cur.tags, [t for t in dup.tags if t not in cur.tags], [])
    # and the duplicate's tasks, open and done: they follow up the same person
    moved = rehome([t for t in dup.tasks if all(t.task_id != c.task_id for c in cur.tasks)],
                   lead_id=cur.lead_id, lead_key=cur.lead_key)
    cur.tasks = merge_tasks(cur.tasks, moved)
    cur.sarah_extra = merge_extra(dup.sarah_extra, cur.sarah_extra)
    cur.message_count += dup.message_count
    cur.merged_from = [*cur.merged_from, dup.lead_key][-MAX_MERGED_FROM:]
    cur.created_at = _min(cur.created_at, dup.created_at) or cur.created_at
    for f in ("last_message_at", "last_inbound_at", "last_outbound_at", "last_contact_at"):
        setattr(cur, f, _max(getattr(cur, f), getattr(dup, f)))
    cur.last_activity_at = _max(cur.last_activity_at, dup.last_activity_at) or cur.last_activity_at
    cur.placeholder = cur.placeholder and dup.placeholder
    who = dup.name or dup.phone_e164 or dup.identity
    text = f"Lead {who} ({dup.identity}) digabung ke lead ini / merged into this lead"
    if cmd.actor_role != "sarah-bot" and cmd.author != MERGE_AUTHOR:
        text += f" oleh {cmd.actor or cmd.author}"
    if cmd.reason:
        text += f": {cmd.reason}"
    note = Note(note_id=stable_id("merge-note", cmd.event_id), lead_id=cur.lead_id,
                lead_key=cur.lead_key, workspace_id=cur.workspace_id, author=MERGE_AUTHOR,
                author_type="system", content=text, created_at=cmd.occurred_at)
    _touch(cur, cmd.occurred_at)
    return Applied(lead=cur, lead_changed=_finish(survivor, cur), notes=[note], tasks=moved)


def absorb_command(merge: Command, duplicate: LeadState, survivor_key: str) -> Command:
    """The `absorb` a duplicate sends its survivor for a `merge` (or a `claim`)."""
    return Command(event_id=stable_id("absorb", merge.event_id), workspace_id=merge.workspace_id,
                   lead_key=survivor_key, occurred_at=merge.occurred_at, kind="absorb",
                   actor_role=merge.actor_role, author=merge.author, actor=merge.actor,
                   reason=merge.reason, absorbed=duplicate, target_key=survivor_key)


def merge_command(claim: Command, holder_key: str) -> Command:
    """A `claim` reached an identity that already belongs to another lead (`holder_key`):
    the two leads are one person, so the holder is merged into the claimant."""
    return Command(event_id=stable_id("claim-merge", claim.event_id),
                   workspace_id=claim.workspace_id, lead_key=holder_key,
                   occurred_at=claim.occurred_at, kind="merge", actor_role=claim.actor_role,
                   author=claim.author, reason=claim.reason, target_key=claim.target_key,
                   hops=claim.hops + 1)


def claim_command(claimant: LeadState, alias_key: str, at: datetime, cause: str) -> Command:
    """`alias_key` belongs to `claimant`: sent to the alias's key (its partition decides)."""
    return Command(event_id=stable_id("claim", claimant.lead_key, alias_key, cause),
                   workspace_id=claimant.workspace_id, lead_key=alias_key, occurred_at=at,
                   kind="claim", actor_role="brain-bot", author=MERGE_AUTHOR,
                   reason="identitas yang sama / same identity", target_key=claimant.lead_key)
