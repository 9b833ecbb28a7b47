"""Kapso's list-messages API, read page by page as a good citizen: cursor paging at 100,
`Retry-After` honoured on 429 (and 503), exponential back-off with jitter on 5xx and network
errors, and a bounded number of tries before the number is reported unreadable (its
watermark then stays where it was)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from leadstream.ingest.kapso_api import FIELDS
from leadstream.retry import Backoff, retry_after

log = logging.getLogger(__name__)

#: the largest page the API gives
PAGE = 100


class ApiError(Exception):
    """A number could not be read; `kind` is what went wrong, for the metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class ApiStats:
    """What the client did, for the metrics and the CLI's report."""

    pages: int = 0
    throttled: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _after_cursor(page: dict[str, Any]) -> str | None:
    paging = page.get("paging")
    cursors = paging.get("cursors") if isinstance(paging, dict) else None
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return str(after) if after else None


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class KapsoApi:
    """One client for all numbers (one connection pool); each call names its key."""

    def __init__(self, base_url: str, *, tries: int = 6, timeout: float = 30.0,
                 backoff_first: float = 0.5, backoff_cap: float = 30.0,
                 stop: asyncio.Event | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.tries = tries
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.backoff = (backoff_first, backoff_cap)
        self.stop = stop
        self.stats = ApiStats()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, phone_number_id: str) -> str:
        return f"{self.base_url}/meta/whatsapp/v24.0/{phone_number_id}/messages"

    async def messages(self, phone_number_id: str, api_key: str, since: datetime,
                       until: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Every message of the number created in [since, until], a page at a time (newest
        first, as the API orders them). Raises ApiError when a page cannot be had."""
        params = {"since": iso(since), "until": iso(until), "limit": str(PAGE),
                  "fields": FIELDS}
        after: str | None = None
        while True:
            page = await self._page(phone_number_id, api_key,
                                    {**params, **({"after": after} if after else {})})
            data = page.get("data")
            if not isinstance(data, list):
                raise ApiError("bad_response", "the answer has no `data` list")
            self.stats.pages += 1
            if data:
                yield [m for m in data if isinstance(m, dict)]
            nxt = _after_cursor(page)
            # a short page is the last one (it may still name a cursor)
            if len(data) < PAGE or not nxt or nxt == after:
                return
            after = str(nxt)

    async def _page(self, phone_number_id: str, api_key: str, params: dict[str, str]
                    ) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        backoff = Backoff(*self.backoff)
        last = ""
        for _ in range(self.tries):
            try:
                async with self._session.get(self._url(phone_number_id), params=params,
                                             headers={"X-API-Key": api_key}) as resp:
                    if resp.status == 200:
                        body = await resp.json(content_type=None)
                        if not isinstance(body, dict):
                            raise ApiError("bad_response", "the answer is not an object")
                        return body
                    text = (await resp.text())[:200]
                    if resp.status in (401, 403, 404):  # not worth a retry: say why
                        self.stats.error(f"http_{resp.status}")
                        raise ApiError(f"http_{resp.status}",
                                       f"Kapso answered {resp.status} for number "
                                       f"{phone_number_id}: {text}")
                    if resp.status in (429, 503) and resp.headers.get("Retry-After"):
                        self.stats.throttled += 1
                        self.stats.error(f"http_{resp.status}")
                        wait = retry_after(resp.headers.get("Retry-After"), backoff.next())
                        last = f"{resp.status} (retry after {wait:.1f} s)"
                        if not await self._sleep(wait):
                            break
                        continue
                    self.stats.error(f"http_{resp.status}")
                    last = f"{resp.status}: {text}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                self.stats.error("network" if not isinstance(exc, ValueError)
                                 else "bad_response")
                last = repr(exc)
            log.info("Kapso API %s for number %s; retrying", last, phone_number_id)
            if not await backoff.wait(self.stop):
                break
        raise ApiError("unavailable", f"Kapso's API did not answer for number "
                                      f"{phone_number_id} after {self.tries} tries: {last}")

    async def _sleep(self, seconds: float) -> bool:
        if self.stop is None:
            await asyncio.sleep(seconds)
            return True
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return True
        return False
