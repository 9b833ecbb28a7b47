"""Workspaces, numbers and token hashes, cached in memory from Postgres.

The cache is refreshed in the background and on a miss (at most every `min_refresh`
seconds), so a `leadstream workspace add` takes effect within a second and a Postgres outage
does not stop webhooks of known workspaces.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from leadstream.db.registry import (
    NumberEntry,
    TokenEntry,
    load_inbox_urls,
    load_numbers,
    load_tokens,
    token_hash,
)

log = logging.getLogger(__name__)


class Directory:
    def __init__(self, pool: asyncpg.Pool, min_refresh: float = 0.5,
                 negative_ttl: float = 5.0) -> None:
        self.pool = pool
        self.min_refresh = min_refresh
        #: an id a reload did not find is not looked for again for this long (the background
        #: reload every 5 s still picks it up once it is added)
        self.negative_ttl = negative_ttl
        self._missed: dict[str, float] = {}
        self.reloads = 0
        self.numbers: dict[str, NumberEntry] = {}
        self.tokens: dict[str, TokenEntry] = {}
        #: workspace -> its "Open in Inbox" URL pattern
        self.inbox_urls: dict[str, str] = {}
        self._loaded_at = 0.0
        self._started_at = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> None:
        """Reload; a caller whose miss happened before the last reload started is served by it.

        Without `force`, reloads are at least `min_refresh` apart (a flood of unknown ids
        costs Postgres two queries per interval), but a miss always sees a reload that
        started after it.
        """
        asked = time.monotonic()
        async with self._lock:
            if self._started_at >= asked:
                return
            if not force:
                wait = self._loaded_at + self.min_refresh - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._started_at = time.monotonic()
            self.reloads += 1
            try:
                async with self.pool.acquire() as conn:
                    self.numbers = await load_numbers(conn)
                    self.tokens = await load_tokens(conn)
                    self.inbox_urls = await load_inbox_urls(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not refresh workspaces: %s", exc)
            self._loaded_at = time.monotonic()

    async def numbers_for(self, phone_number_ids: set[str]) -> dict[str, NumberEntry | None]:
        """Each id's number, with at most one reload for all of them, and none for an id a
        reload already missed in the last `negative_ttl` seconds (a body naming many unknown
        ids, or a flood of them, costs one reload, not one per id)."""
        now = time.monotonic()
        unknown = [p for p in phone_number_ids if p not in self.numbers
                   and now - self._missed.get(p, -1e9) > self.negative_ttl]
        if unknown:
            await self.refresh()
            for p in unknown:
                if p not in self.numbers:
                    self._remember_miss(p)
        return {p: self.numbers.get(p) for p in phone_number_ids}

    async def token(self, token: str) -> TokenEntry | None:
        """The token's entry; an unknown one costs at most one reload per `negative_ttl`
        (a flood of bad tokens would otherwise queue every request behind reloads)."""
        h = token_hash(token)
        if h not in self.tokens and (time.monotonic() - self._missed.get(h, -1e9)
                                     > self.negative_ttl):
            await self.refresh()
            if h not in self.tokens:
                self._remember_miss(h)
        return self.tokens.get(h)

    def people(self, workspace_id: str) -> list[str]:
        """The workspace's people: the persons of its personal tokens (`workspace add
        --user`) that stand now; a lead may be assigned to them."""
        return sorted({t.user for t in self.tokens.values()
                       if t.workspace_id == workspace_id and t.user})

    def _remember_miss(self, key: str) -> None:
        if len(self._missed) > 10_000:
            self._missed.clear()
        self._missed[key] = time.monotonic()

    async def run(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            await self.refresh(force=True)
