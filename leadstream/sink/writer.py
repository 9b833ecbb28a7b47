"""Batched, idempotent writes of derived records into the replica.

One statement per table per batch: the batch is sent as one JSON array and expanded with
`json_populate_recordset(NULL::<table>, ...)` so the table's own column types apply (`json`,
not `jsonb`: the array is read once, so building jsonb's binary form first only costs; the
whole flush 9-17% faster in Postgres, bench/flush_sql.py).
Snapshots and messages are upserted only when their `version` is newer than the row's (a
replayed or duplicated record never moves a row backwards); history and notes are
insert-once by their ids (append-only).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

LEAD_COLUMNS = (
    "lead_id", "workspace_id", "lead_key", "phone_e164", "wa_id", "bsuid", "name", "kapso_name",
    "sarah_name", "contact_phone", "business_type", "domisili", "business_duration",
    "pain_points", "priority", "urgency_level", "next_step", "story", "language",
    "interest_motivation", "closing_technique_used", "objection_raised", "sarah_extra",
    "lead_score", "lead_temperature",
    "lead_status", "chat_phase", "status_updated_at", "status_updated_by",
    "kapso_conversation_id", "conversation_state", "message_count", "created_at", "updated_at",
    "last_message_at", "last_inbound_at", "last_outbound_at", "last_contact_at",
    "last_activity_at", "version", "parent_bsuid", "username", "merged_into", "owner", "tags",
)
MESSAGE_COLUMNS = (
    "message_id", "lead_id", "workspace_id", "conversation_id", "direction", "type", "text",
    "origin", "status", "error", "sent_at", "version",
)
HISTORY_COLUMNS = (
    "event_id", "lead_id", "workspace_id", "from_status", "to_status", "changed_by", "actor",
    "reason", "changed_at",
)
NOTE_COLUMNS = (
    "note_id", "lead_id", "workspace_id", "author", "author_type", "content", "created_at",
    "version",
)
DAILY_COLUMNS = (
    "lead_id", "day", "workspace_id", "inbound_count", "outbound_count", "status_changes",
    "first_message_at", "last_message_at", "summary", "summarizer", "version",
)


FAILURE_COLUMNS = (
    "event_id", "stage", "reason", "source_topic", "source_partition", "source_offset",
    "workspace_id", "failed_at", "original_b64",
)


#: NOT NULL columns added after records were first written: a record from before them (on
#: the log, read by a replay) gets the column's default instead of failing the batch
TASK_COLUMNS = (
    "task_id", "lead_id", "workspace_id", "text", "due_at", "owner", "created_by",
    "created_at", "done_at", "done_by", "version",
)

LATER_DEFAULTS = {"sarah_extra": "'{}'::jsonb", "tags": "'{}'::text[]"}


def _upsert_sql(table: str, columns: tuple[str, ...], key: str) -> str:
    cols = ", ".join(columns)
    values = ", ".join(f"coalesce({c}, {LATER_DEFAULTS[c]})" if c in LATER_DEFAULTS else c
                       for c in columns)
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {values} FROM"
        f" json_populate_recordset(NULL::{table}, $1::json)"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
        f" WHERE {table}.version < EXCLUDED.version"
    )


def _insert_once_sql(table: str, columns: tuple[str, ...], key: str) -> str:
    cols = ", ".join(columns)
    return (
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM"
        f" json_populate_recordset(NULL::{table}, $1::json)"
        f" ON CONFLICT ({key}) DO NOTHING"
    )


SQL_LEADS = _upsert_sql("leads", LEAD_COLUMNS, "lead_id")
#: a message id is unique per workspace (006_tenant_safety.sql)
SQL_MESSAGES = _upsert_sql("messages", MESSAGE_COLUMNS, "workspace_id, message_id")
#: every version of a task is on the tasks topic; the newest wins, so a task a merge moved
#: to the survivor, or one done and opened again, ends as the lead's state has it
SQL_TASKS = _upsert_sql("lead_tasks", TASK_COLUMNS, "task_id")
SQL_FAILURES = _insert_once_sql("sync_failures", FAILURE_COLUMNS, "event_id")
SQL_HISTORY = _insert_once_sql("lead_status_history", HISTORY_COLUMNS, "event_id")
# notes are append-only; only the daily summary note (version > 0) is rewritten, by its author
# (records written before notes had a version have none: they are version 0)
SQL_NOTES = (
    "INSERT INTO lead_notes (" + ", ".join(NOTE_COLUMNS) + ") SELECT "
    + ", ".join("coalesce(version, 0)" if c == "version" else c for c in NOTE_COLUMNS)
    + " FROM json_populate_recordset(NULL::lead_notes, $1::json)"
    " ON CONFLICT (note_id) DO UPDATE SET content = EXCLUDED.content,"
    " version = EXCLUDED.version"
    " WHERE lead_notes.author = EXCLUDED.author AND lead_notes.version < EXCLUDED.version"
)
SQL_DAILY = (
    "INSERT INTO lead_daily_activity (" + ", ".join(DAILY_COLUMNS) + ") SELECT "
    + ", ".join(DAILY_COLUMNS)
    + " FROM json_populate_recordset(NULL::lead_daily_activity, $1::json)"
    " ON CONFLICT (lead_id, day) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in DAILY_COLUMNS if c not in ("lead_id", "day"))
    + " WHERE lead_daily_activity.version < EXCLUDED.version"
)


def newest_by(rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One row per key, the highest version (an upsert may not touch a row twice)."""
    best: dict[Any, dict[str, Any]] = {}
    for r in rows:
        k = r[key]
        cur = best.get(k)
        if cur is None or r["version"] > cur["version"]:
            best[k] = r
    return list(best.values())


def first_by(rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: dict[Any, dict[str, Any]] = {}
    for r in rows:
        seen.setdefault(r[key], r)
    return list(seen.values())


@dataclass
class Batch:
    """Decoded derived records of one poll, grouped by table."""

    leads: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    daily: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return (len(self.leads) + len(self.messages) + len(self.history) + len(self.notes)
                + len(self.daily) + len(self.failures) + len(self.tasks))

    def extend(self, other: Batch) -> None:
        self.leads += other.leads
        self.messages += other.messages
        self.history += other.history
        self.notes += other.notes
        self.daily += other.daily
        self.failures += other.failures
        self.tasks += other.tasks


#: the statement for each kind of row (Batch's field names)
SQL_BY_KIND = {"leads": SQL_LEADS, "messages": SQL_MESSAGES, "history": SQL_HISTORY,
               "notes": SQL_NOTES, "daily": SQL_DAILY, "failures": SQL_FAILURES,
               "tasks": SQL_TASKS}


def _deduplicated(sql: str, table: str, key: str, newest: str | None) -> str:
    """`sql` reading one row per key (the newest) of the array, of one workspace ($2) or of
    all ($2 NULL): for rows straight from the topics, where a key repeats."""
    source = f"json_populate_recordset(NULL::{table}, $1::json)"
    assert source in sql
    order = f"{key}, {newest} DESC" if newest else key
    return sql.replace(source, f"(SELECT DISTINCT ON ({key}) * FROM {source} r"
                               f" WHERE $2::text IS NULL OR r.workspace_id = $2"
                               f" ORDER BY {order}) AS r")


#: SQL_BY_KIND for raw topic records (replay): deduplicated in Postgres, workspace-scoped
SQL_RAW_BY_KIND = {
    "leads": _deduplicated(SQL_LEADS, "leads", "lead_id", "version"),
    "messages": _deduplicated(SQL_MESSAGES, "messages", "workspace_id, message_id", "version"),
    "history": _deduplicated(SQL_HISTORY, "lead_status_history", "event_id", None),
    "notes": _deduplicated(SQL_NOTES, "lead_notes", "note_id", "coalesce(version, 0)"),
    "daily": _deduplicated(SQL_DAILY, "lead_daily_activity", "lead_id, day", "version"),
    "tasks": _deduplicated(SQL_TASKS, "lead_tasks", "task_id", "version"),
}


@functools.cache
def one_statement(kinds: tuple[str, ...]) -> str:
    """The statements of `kinds` as one: each a data-modifying CTE reading its own array
    (`$1`, `$2`, ... in `kinds`' order). One statement is atomic without a transaction and
    costs one round trip, where BEGIN, a statement per kind and COMMIT cost four for a
    flush of leads and messages (BENCHMARKS.md, "Session 14"). Built once per set of kinds."""
    if len(kinds) == 1:
        return SQL_BY_KIND[kinds[0]]
    parts = []
    for i, kind in enumerate(kinds, 1):
        sql = SQL_BY_KIND[kind]
        assert sql.count("$1::json") == 1, kind
        parts.append(f"w{i} AS ({sql.replace('$1::json', f'${i}::json')})")
    return "WITH " + ", ".join(parts) + " SELECT 1"


async def write_json(conn: asyncpg.Connection, rows: Mapping[str, Sequence[bytes]], *,
                     from_log: bool = False, workspace: str | None = None) -> int:
    """The one writer: rows of each kind (Batch's field names) as encoded JSON objects; the
    arrays are joined from the encoded rows, so nothing is decoded or encoded again. Returns
    rows submitted.

    The caller guarantees one row per key per kind (an upsert may not touch a row twice),
    and every kind goes in one statement (`one_statement`: atomic as it is). Unless
    `from_log`: records straight from the topics (replay), keys repeating and other
    workspaces mixed in, deduplicated (newest wins) and kept to `workspace` in Postgres, one
    statement per kind in the caller's transaction. A record that is not a valid row fails
    the statement; the caller isolates it."""
    present = {kind: values for kind, values in rows.items() if values}
    if not present:
        return 0
    arrays = {kind: (b"[" + b",".join(values) + b"]").decode()
              for kind, values in present.items()}
    if from_log:
        for kind, array in arrays.items():
            await conn.execute(SQL_RAW_BY_KIND[kind], array, workspace)
    else:
        kinds = tuple(sorted(arrays))
        await conn.execute(one_statement(kinds), *(arrays[k] for k in kinds))
    return sum(len(values) for values in present.values())


async def write_batch(conn: asyncpg.Connection, batch: Batch) -> dict[str, int]:
    """Decoded rows (the sink's, isolating a bad one): one row per key kept (the newest
    version), encoded, and written by `write_json` in one statement. Returns rows
    submitted per kind."""
    plan = {
        "leads": newest_by(batch.leads, "lead_id"),
        "messages": newest_by(
            ({**r, "_k": (r["workspace_id"], r["message_id"])} for r in batch.messages), "_k"),
        "history": first_by(batch.history, "event_id"),
        "notes": newest_by(({"version": 0, **r} for r in batch.notes), "note_id"),
        "daily": newest_by(({**r, "_k": (r["lead_id"], r["day"])} for r in batch.daily), "_k"),
        "failures": first_by(batch.failures, "event_id"),
        "tasks": newest_by(batch.tasks, "task_id"),
    }
    rows = {kind: [orjson.dumps(r) for r in kept] for kind, kept in plan.items() if kept}
    await write_json(conn, rows)
    return {kind: len(values) for kind, values in rows.items()}
