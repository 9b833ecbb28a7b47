"""The lead, message, history and task rows are defined once (`sink.writer.LEAD_COLUMNS`,
`MESSAGE_COLUMNS`, ...): the model, the writer and the migrated tables must agree on them."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import BaseModel

from leadstream.db.migrate import migrate
from leadstream.domain.model import LeadState, MessageState, StatusChange, Task
from leadstream.sink.writer import HISTORY_COLUMNS, LEAD_COLUMNS, MESSAGE_COLUMNS, TASK_COLUMNS

pytestmark = pytest.mark.integration


async def _columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns"
                            " WHERE table_name = $1 AND table_schema = 'public'", table)
    return {r["column_name"] for r in rows}


@pytest.mark.parametrize(("table", "model", "columns"), [
    ("leads", LeadState, LEAD_COLUMNS),
    ("messages", MessageState, MESSAGE_COLUMNS),
    ("lead_status_history", StatusChange, HISTORY_COLUMNS),
    ("lead_tasks", Task, TASK_COLUMNS),
])
async def test_model_writer_and_table_agree(database: str, table: str, model: type[BaseModel],
                                            columns: tuple[str, ...]) -> None:
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn)
        in_table = await _columns(conn, table)
    finally:
        await conn.close()
    fields = set(model.model_fields)
    written = set(columns)
    assert written <= in_table, f"the writer writes columns {table} lacks: {written - in_table}"
    assert written <= fields, f"the writer writes what {model.__name__} lacks: {written - fields}"
    # every model field the table has a column for is written (none silently dropped)
    assert (fields & in_table) <= written, f"not written: {(fields & in_table) - written}"
