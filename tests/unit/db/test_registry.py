"""The workspace registry's guards (issue #24) on a real Postgres: a number or token moves
to another workspace only when asked; a rotated-out secret is forgotten after its overlap."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from leadstream.db.migrate import migrate
from leadstream.db.registry import (
    Taken,
    add_workspace,
    clear_expired_secrets,
    load_numbers,
    load_tokens,
    rotate_secret,
    token_hash,
    weak_secret,
)

pytestmark = pytest.mark.integration


async def test_moves_are_explicit_and_old_secrets_are_forgotten(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn)
        await add_workspace(conn, workspace_id="a", phone_number_id="p1", webhook_secret="s" * 16,
                            api_token="t" * 16)
        for kw in ({"phone_number_id": "p1", "webhook_secret": "z" * 16, "api_token": None},
                   {"phone_number_id": None, "webhook_secret": None, "api_token": "t" * 16}):
            with pytest.raises(Taken):
                await add_workspace(conn, workspace_id="b", **kw)  # type: ignore[arg-type]
        assert (await load_numbers(conn))["p1"].workspace_id == "a"
        assert await conn.fetchval("SELECT count(*) FROM workspaces WHERE workspace_id = 'b'") == 0
        # the same workspace again is an update, and an explicit move moves
        await add_workspace(conn, workspace_id="a", phone_number_id="p1", webhook_secret="s" * 17,
                            api_token=None)
        await add_workspace(conn, workspace_id="b", phone_number_id=None, webhook_secret=None,
                            api_token="t" * 16, move=True)
        assert (await load_tokens(conn))[token_hash("t" * 16)].workspace_id == "b"

        assert await rotate_secret(conn, "p1", "n" * 16, timedelta(hours=1))
        assert await clear_expired_secrets(conn) == 0  # within the overlap: kept
        assert (await load_numbers(conn))["p1"].previous_secret == "s" * 17
        await conn.execute("UPDATE workspace_numbers SET previous_secret_until = now()"
                           " - interval '1 second'")
        assert await clear_expired_secrets(conn) == 1
        entry = (await load_numbers(conn))["p1"]
        assert entry.previous_secret is None and entry.webhook_secret == "n" * 16
    finally:
        await conn.close()


@pytest.mark.parametrize(("value", "weak"), [
    (None, False), ("x" * 16, False), ("x" * 15, True), ("", True), ("  " + "x" * 14 + "  ", True)])
def test_weak_secret(value: str | None, weak: bool) -> None:
    assert (weak_secret(value, "a secret") is not None) == weak
