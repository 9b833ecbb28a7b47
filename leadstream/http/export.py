"""What a CSV export may hold (issue #24): a slow download must not starve the API.

An export used to keep one of the API pool's connections inside a transaction for as long
as its client took to read; a dozen stalled downloads of a large workspace exhausted the
pool, another workspace's list timed out and `/readyz` went 503. Now an export:

- reads on a connection of its own (not the pool's), opened for it and closed after, with
  Postgres' `idle_in_transaction_session_timeout` and `statement_timeout` set, so even a
  process that hangs cannot hold a snapshot for long;
- may run `per_workspace` at a time per workspace and `total` at a time in the process
  (`429` with `Retry-After` past either);
- gives its client `write_timeout` seconds to take each chunk, then the connection is cut
  (the download fails visibly rather than ending like a short, complete file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


class TooManyExports(Exception):
    """The workspace (or the process) runs as many exports as it may: retry later."""


class ExportGate:
    def __init__(self, dsn: str, *, per_workspace: int = 2, total: int = 6,
                 write_timeout: float = 30.0, idle_in_transaction_ms: int = 60_000,
                 statement_timeout_ms: int = 600_000) -> None:
        self.dsn = dsn
        self.per_workspace = per_workspace
        self.total = total
        self.write_timeout = write_timeout
        self.server_settings = {
            "idle_in_transaction_session_timeout": str(idle_in_transaction_ms),
            "statement_timeout": str(statement_timeout_ms),
            "application_name": "leadstream-export"}
        self.running: dict[str, int] = {}
        self.refused = 0

    @asynccontextmanager
    async def connection(self, workspace_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the export's own, within the caps (`TooManyExports` past them)."""
        if (self.running.get(workspace_id, 0) >= self.per_workspace
                or sum(self.running.values()) >= self.total):
            self.refused += 1
            raise TooManyExports(workspace_id)
        self.running[workspace_id] = self.running.get(workspace_id, 0) + 1
        try:
            conn = await asyncpg.connect(self.dsn, timeout=10,
                                         server_settings=self.server_settings)
            try:
                yield conn
            finally:
                await conn.close(timeout=5)
        finally:
            left = self.running[workspace_id] - 1
            if left:
                self.running[workspace_id] = left
            else:
                del self.running[workspace_id]
