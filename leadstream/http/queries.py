"""The replica queries behind the lead list, its export and its counts, and the one shape a
lead row is answered in (list, detail, CSV and the live stream alike)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from leadstream.db.leads import ACTIVE, NEEDS_REPLY
from leadstream.domain.phone import phone_fragment
from leadstream.http.inbox import inbox_link
from leadstream.http.models import LeadQuery

#: sort name -> (SQL expression, its type, descending); each has an index led by workspace_id
LIST_SORTS: dict[str, tuple[str, str, bool]] = {
    "last_activity_at": ("last_activity_at", "timestamptz", True),
    "lead_score": ("coalesce(lead_score, -1)", "integer", True),  # no score sorts last
    "created_at": ("created_at", "timestamptz", True),
    # longest waiting first: the oldest unanswered inbound message (needs_reply only)
    "waiting": ("last_inbound_at", "timestamptz", False),
}
#: `q` searches these (one trigram index, 010_search_contact_phone.sql)
SEARCH_EXPR = ("(coalesce(name, '') || ' ' || coalesce(phone_e164, '') || ' ' "
               "|| coalesce(contact_phone, '') || ' ' "
               "|| coalesce(business_type, '') || ' ' || coalesce(domisili, '') || ' ' "
               "|| coalesce(interest_motivation, '') || ' ' || coalesce(objection_raised, ''))")


def lead_list_sql(workspace_id: str, lq: LeadQuery, *, paged: bool = True, region: str = "ID"
                  ) -> tuple[str, list[Any]]:
    """The list query: filters, then keyset pagination on (sort key, lead_id).

    A page walk never repeats a lead; a lead that gets new activity meanwhile moves to the
    top (the next refresh shows it), and new leads appear at the top, not in later pages.
    `paged=False` is the whole filtered list (the CSV export), in the same order.
    """
    where = ["workspace_id = $1", ACTIVE]  # a merged lead shows as its survivor
    args: list[Any] = [workspace_id]

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    if lq.status:
        where.append(f"lead_status = ANY({arg(list(lq.status))}::text[])")
    if lq.temperature:
        where.append(f"lead_temperature = ANY({arg(list(lq.temperature))}::text[])")
    if lq.urgency:
        where.append(f"urgency_level = ANY({arg(lq.urgency)}::text[])")
    for col, text in (("domisili", lq.domisili), ("business_type", lq.business_type),
                      ("language", lq.language)):
        if text:
            where.append(f"lower({col}) = lower({arg(text)})")
    if lq.owner:
        where.append(f"owner = {arg(lq.owner)}")
    if lq.tag:
        where.append(f"tags @> ARRAY[{arg(lq.tag)}]::text[]")
    if lq.min_score is not None:
        where.append(f"lead_score >= {arg(lq.min_score)}")
    if lq.max_score is not None:
        where.append(f"lead_score <= {arg(lq.max_score)}")
    for col, op, v in (("created_at", ">=", lq.created_from), ("created_at", "<", lq.created_to),
                       ("last_activity_at", ">=", lq.active_from),
                       ("last_activity_at", "<", lq.active_to)):
        if v is not None:
            where.append(f"{col} {op} {arg(v)}")
    if lq.q:
        # a phone number however it is typed (0813..., 62813..., +62 813-...) is looked for
        # as the digits of the E.164 numbers; anything else as text
        text = phone_fragment(lq.q, region) or lq.q
        pat = "%" + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        where.append(f"{SEARCH_EXPR} ILIKE {arg(pat)}")
    sort = lq.sort_key()
    if lq.needs_reply or sort == "waiting":
        where.append(NEEDS_REPLY)
    elif lq.needs_reply is False:
        where.append(f"NOT coalesce({NEEDS_REPLY}, false)")
    col, typ, desc = LIST_SORTS[sort]
    if lq.cursor and paged:
        cur = orjson.loads(bytes.fromhex(lq.cursor))
        if not isinstance(cur, list) or len(cur) != 2 or not isinstance(cur[1], str):
            raise ValueError("bad cursor")
        if typ == "timestamptz":
            value: Any = datetime.fromisoformat(cur[0])
            if value.tzinfo is None:
                raise ValueError("bad cursor")
        else:
            value = int(cur[0])
            if not -2**31 <= value < 2**31:
                raise ValueError("bad cursor")
        where.append(f"({col}, lead_id) {'<' if desc else '>'} "
                     f"({arg(value)}::{typ}, {arg(uuid.UUID(cur[1]))})")
    order = "DESC" if desc else "ASC"
    sql = (f"SELECT *, {col} AS _sort FROM leads WHERE {' AND '.join(where)}"
           f" ORDER BY {col} {order}, lead_id {order}")
    return (sql + f" LIMIT {lq.limit + 1}" if paged else sql), args


def next_cursor(last: dict[str, Any]) -> str:
    v = last["_sort"]
    return orjson.dumps([v.isoformat() if hasattr(v, "isoformat") else v,
                         str(last["lead_id"])]).hex()


def row_out(row: Any) -> dict[str, Any]:
    """A replica row as JSON-ready values (uuids as strings)."""
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(row).items()}


def lead_out(row: Any, inbox_pattern: str | None) -> dict[str, Any]:
    """A `leads` row as the API answers it (`http.models.Lead`): ids as strings, plus the
    "Open in Inbox" link and since when the lead waits for a reply."""
    r = row_out(row)
    r.pop("_sort", None)
    if isinstance(r.get("sarah_extra"), str):  # jsonb arrives as text without a codec
        r["sarah_extra"] = orjson.loads(r["sarah_extra"])
    r["inbox_url"] = inbox_link(inbox_pattern, r.get("kapso_conversation_id"),
                                r.get("phone_e164"))
    inbound, outbound = r.get("last_inbound_at"), r.get("last_outbound_at")
    r["waiting_since"] = inbound if inbound and (outbound is None or inbound > outbound) else None
    return r


#: the CSV export's columns: what a sales team opens in a spreadsheet
CSV_COLUMNS = (
    "lead_id", "name", "phone_e164", "lead_status", "lead_temperature", "lead_score",
    "business_type", "domisili", "business_duration", "pain_points", "priority",
    "urgency_level", "next_step", "story", "language", "interest_motivation",
    "closing_technique_used", "objection_raised", "chat_phase", "message_count",
    "status_updated_at", "status_updated_by", "created_at", "last_inbound_at",
    "last_outbound_at", "last_activity_at", "waiting_since", "inbox_url",
    # the phone a person typed, then the team's owner and tags (at the end: the columns
    # before keep their places)
    "contact_phone", "owner", "tags",
)


def csv_cell(v: Any) -> str:
    """One CSV value: lists joined with "; ", times in ISO 8601, and a text that a
    spreadsheet would run as a formula (= + - @ at its start) prefixed with a quote."""
    if v is None:
        return ""
    if isinstance(v, list):
        v = "; ".join(str(x) for x in v)
    elif isinstance(v, datetime):
        return v.isoformat()
    s = str(v)
    if s[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(s):
        return "'" + s
    return s


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


#: a lead and every lead merged into it, down its merge chains: their rows are its rows
FAMILY_SQL = (
    "WITH RECURSIVE fam AS (SELECT $1::uuid AS lead_id, 0 AS depth UNION ALL"
    " SELECT l.lead_id, f.depth + 1 FROM leads l JOIN fam f ON l.merged_into = f.lead_id"
    " WHERE l.workspace_id = $2 AND f.depth < 16)"
    " SELECT l.* FROM fam JOIN leads l USING (lead_id) WHERE l.lead_id <> $1")

#: a lead's messages, notes and status moves as one time line, newest first, keyset-paged
#: on (time, kind, id) so a page walk neither repeats nor skips an item of equal time
TIMELINE_SQL = (
    "SELECT kind, at, id, row FROM ("
    " SELECT 'message' AS kind, sent_at AS at, message_id AS id, to_jsonb(m) AS row"
    " FROM messages m WHERE lead_id = ANY($1::uuid[])"
    " UNION ALL SELECT 'note', created_at, note_id, to_jsonb(n) FROM lead_notes n"
    " WHERE lead_id = ANY($1::uuid[])"
    " UNION ALL SELECT 'status', changed_at, event_id, to_jsonb(h) FROM lead_status_history h"
    " WHERE lead_id = ANY($1::uuid[])) t"
    " WHERE $2::timestamptz IS NULL OR (at, kind, id) < ($2::timestamptz, $3::text, $4::text)"
    " ORDER BY at DESC, kind DESC, id DESC LIMIT $5")


def timeline_cursor(item: Any) -> str:
    """The cursor after this item (opaque: hex of JSON)."""
    return orjson.dumps([item["at"].isoformat(), item["kind"], item["id"]]).hex()


def timeline_args(cursor: str | None) -> tuple[Any, str | None, str | None]:
    """(time, kind, id) to continue after, from a cursor (ValueError if it is not one)."""
    if not cursor:
        return None, None, None
    try:
        at, kind, item_id = orjson.loads(bytes.fromhex(cursor))
        return datetime.fromisoformat(at), str(kind), str(item_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a timeline cursor") from exc


def timeline_item(r: Any) -> dict[str, Any]:
    row = r["row"]
    return {"kind": r["kind"], "at": r["at"], "id": r["id"],
            **(orjson.loads(row) if isinstance(row, str) else dict(row))}


# --------------------------------------------------------------------------- tasks (#29)

#: a task with the lead it follows up (the lists show whom to call)
TASK_SELECT = ("SELECT t.task_id, t.lead_id, t.text, t.due_at, t.owner, t.created_by,"
               " t.created_at, t.done_at, t.done_by, l.name AS lead_name, l.lead_status,"
               " l.phone_e164 FROM lead_tasks t JOIN leads l ON l.lead_id = t.lead_id")


def task_list_sql(workspace_id: str, *, owner: str | None, done: bool | None,
                  due_before: datetime | None, lead_ids: Sequence[uuid.UUID] | None,
                  limit: int) -> tuple[str, list[Any]]:
    """`GET /api/tasks` (and a lead's tasks): open ones first, soonest due first (no due
    time last), then done ones, newest done first."""
    args: list[Any] = [workspace_id]

    def arg(v: Any) -> str:
        args.append(v)
        return f"${len(args)}"

    where = ["t.workspace_id = $1"]
    if owner is not None:
        where.append(f"t.owner = {arg(owner)}")
    if done is not None:
        where.append("t.done_at IS NOT NULL" if done else "t.done_at IS NULL")
    if due_before is not None:
        where.append(f"t.due_at < {arg(due_before)}")
    if lead_ids is not None:
        where.append(f"t.lead_id = ANY({arg(list(lead_ids))}::uuid[])")
    sql = (f"{TASK_SELECT} WHERE {' AND '.join(where)}"
           " ORDER BY (t.done_at IS NOT NULL), t.due_at ASC NULLS LAST, t.done_at DESC,"
           f" t.created_at, t.task_id LIMIT {arg(limit)}")
    return sql, args


def task_out(row: Any, now: datetime) -> dict[str, Any]:
    r = row_out(row)
    r["overdue"] = bool(r["done_at"] is None and r["due_at"] is not None and r["due_at"] < now)
    return r
