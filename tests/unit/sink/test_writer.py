"""The replica writer is idempotent: replays and duplicates never move a row backwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from leadstream.db.migrate import migrate
from leadstream.domain.identity import lead_id_for
from leadstream.sink.writer import Batch, newest_by, write_batch

pytestmark = pytest.mark.integration
T = datetime(2026, 11, 1, tzinfo=UTC).isoformat()
LID = lead_id_for("ws1:+6281312345678")


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(database)
    await migrate(c)
    yield c
    await c.close()


def lead(version: int, **kw: Any) -> dict[str, Any]:
    return {"lead_id": LID, "workspace_id": "ws1", "lead_key": "ws1:+6281312345678",
            "phone_e164": "+6281312345678", "name": f"v{version}", "pain_points": ["a", "b"],
            "lead_status": "new", "message_count": version, "created_at": T, "updated_at": T,
            "last_activity_at": T, "version": version, "internal_field": "ignored", **kw}


def message(version: int, status: str) -> dict[str, Any]:
    return {"message_id": "wamid.1", "lead_id": LID, "workspace_id": "ws1",
            "direction": "outbound", "type": "text", "text": "hi", "status": status,
            "sent_at": T, "version": version}


async def test_newer_version_wins_older_replay_is_ignored(conn: asyncpg.Connection) -> None:
    await write_batch(conn, Batch(leads=[lead(2)]))
    await write_batch(conn, Batch(leads=[lead(1)]))          # replayed older snapshot
    await write_batch(conn, Batch(leads=[lead(2, name="dup")]))  # same version again
    row = await conn.fetchrow("SELECT name, version, pain_points FROM leads")
    assert (row["name"], row["version"], row["pain_points"]) == ("v2", 2, ["a", "b"])
    await write_batch(conn, Batch(leads=[lead(3)]))
    assert await conn.fetchval("SELECT version FROM leads") == 3


async def test_one_batch_with_many_versions_of_a_row(conn: asyncpg.Connection) -> None:
    await write_batch(conn, Batch(leads=[lead(3), lead(5), lead(4)],
                                  messages=[message(1, "sent"), message(3, "read"),
                                            message(2, "delivered")]))
    assert await conn.fetchval("SELECT version FROM leads") == 5
    assert await conn.fetchval("SELECT status FROM messages") == "read"
    assert await conn.fetchval("SELECT count(*) FROM messages") == 1


async def test_history_and_notes_are_insert_once(conn: asyncpg.Connection) -> None:
    h = {"event_id": "e1", "lead_id": LID, "workspace_id": "ws1", "from_status": "new",
         "to_status": "qualified", "changed_by": "human", "changed_at": T}
    n = {"note_id": "n1", "lead_id": LID, "workspace_id": "ws1", "author": "Ani",
         "author_type": "human", "content": "first", "created_at": T}
    await write_batch(conn, Batch(history=[h, h], notes=[n]))
    await write_batch(conn, Batch(history=[h], notes=[{**n, "content": "rewritten"}]))
    assert await conn.fetchval("SELECT count(*) FROM lead_status_history") == 1
    assert await conn.fetchval("SELECT content FROM lead_notes") == "first"


def test_newest_by_keeps_highest_version() -> None:
    rows = [{"k": 1, "version": 1}, {"k": 1, "version": 3}, {"k": 2, "version": 1},
            {"k": 1, "version": 2}]
    assert sorted((r["k"], r["version"]) for r in newest_by(rows, "k")) == [(1, 3), (2, 1)]


async def test_raw_records_are_deduplicated_and_scoped_in_postgres(conn: asyncpg.Connection
                                                                   ) -> None:
    """`write_json(from_log=True)` (replay): topic records as they are, keys repeating in any order, other
    workspaces mixed in: one row per key, the newest, of the asked workspace only."""
    import orjson

    from leadstream.sink.writer import write_json

    other = lead(9, lead_id=lead_id_for("ws2:+6281300000000"), workspace_id="ws2",
                 lead_key="ws2:+6281300000000")
    rows = {"leads": [orjson.dumps(r) for r in (lead(3), lead(5), other, lead(4))],
            "messages": [orjson.dumps(m) for m in (message(1, "sent"), message(3, "read"),
                                                   message(2, "delivered"))]}
    async with conn.transaction():
        assert await write_json(conn, rows, from_log=True, workspace="ws1") == 7
    assert [tuple(r) for r in await conn.fetch("SELECT workspace_id, version FROM leads")] == [
        ("ws1", 5)]
    assert await conn.fetchval("SELECT status FROM messages") == "read"
    async with conn.transaction():
        await write_json(conn, rows, from_log=True)  # all workspaces
    assert await conn.fetchval("SELECT count(*) FROM leads") == 2
    with pytest.raises((asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)):
        async with conn.transaction():  # not a row: the caller falls back to decoding
            await write_json(conn, {"leads": [b'{"lead_id": "x"}']}, from_log=True)


async def test_every_kind_in_one_statement_all_or_nothing(conn: asyncpg.Connection) -> None:
    """`write_json`: leads, messages and history of a flush in one statement, with no
    transaction around it: a row Postgres refuses leaves none of the others written, and
    the same rows written whole go in together, the live push trigger firing as before."""
    import orjson

    from leadstream.sink.writer import one_statement, write_json

    h = {"event_id": "e1", "lead_id": LID, "workspace_id": "ws1", "from_status": "new",
         "to_status": "qualified", "changed_by": "human", "changed_at": T}
    good = {"leads": [orjson.dumps(lead(1))], "messages": [orjson.dumps(message(1, "sent"))],
            "history": [orjson.dumps(h)]}
    bad = {**good, "messages": [orjson.dumps({**message(1, "sent"), "sent_at": "not a time"})]}
    assert one_statement(("history", "leads", "messages")).startswith("WITH ")
    with pytest.raises(asyncpg.DataError):
        await write_json(conn, bad)
    assert not conn.is_in_transaction()
    assert [await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("leads", "messages", "lead_status_history")] == [0, 0, 0]

    pushed: list[str] = []
    await conn.add_listener("leadstream_leads", lambda *a: pushed.append(a[3]))
    assert await write_json(conn, good) == 3
    assert [await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("leads", "messages", "lead_status_history")] == [1, 1, 1]
    await conn.execute("SELECT 1")  # a round trip: the notification has arrived
    assert pushed == [f"ws1 {LID}"]
