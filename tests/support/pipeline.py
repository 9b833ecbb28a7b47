"""Test harness: the real pipeline for one test (worker subprocess, webhook server, pool)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import asyncpg
import orjson
from aiohttp.test_utils import TestServer

from leadstream.broker.clients import ensure_topics
from leadstream.config import Settings
from leadstream.db.migrate import migrate_url
from leadstream.db.registry import add_workspace
from leadstream.embedded.procs import die_with_parent
from leadstream.http.server import make_app
from leadstream.simulate import kapso_message, post_kapso

T = TypeVar("T")
PNID = "pnid-1"
SECRET = "s3cret"
TOKEN = "tok-human"


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0,
                     every: float = 0.05) -> T:
    """Poll until `check` returns a truthy value (so never None: typed so), and return it;
    fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


class Worker:
    def __init__(self, settings: Settings, log_path: str) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115  # the child writes it for its life
        self.proc = subprocess.Popen([sys.executable, "-m", "leadstream", "worker"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, n: int = 60) -> str:
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


class Pipeline:
    def __init__(self, settings: Settings, tmp: str) -> None:
        self.settings = settings
        self.worker = Worker(settings, f"{tmp}/worker.log")
        self.server: TestServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pool: asyncpg.Pool | None = None

    async def start(self, worker: bool = True) -> Pipeline:
        await ensure_topics(self.settings)
        await migrate_url(self.settings.dsn)
        self.pool = await asyncpg.create_pool(self.settings.dsn, min_size=1, max_size=4)
        async with self.pool.acquire() as conn:
            await add_workspace(conn, workspace_id="ws1", phone_number_id=PNID,
                                webhook_secret=SECRET, api_token=TOKEN, role="human")
        if worker:
            self.worker.start()
        self.server = TestServer(make_app(self.settings))
        await self.server.start_server()
        self.session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        """Idempotent: the `pipelines` fixture stops every pipeline a test started."""
        self.worker.stop()
        session, server, pool = self.session, self.server, self.pool
        self.session = self.server = self.pool = None
        if session:
            await session.close()
        if server:
            await server.close()
        if pool:
            await pool.close()

    @property
    def base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def kapso(self, event: str, body: dict[str, Any], secret: str = SECRET) -> int:
        assert self.session is not None
        return await post_kapso(self.session, self.base, secret, event, body)

    async def message(self, wa_id: str, wamid: str, text: str = "halo", ts: int = 1_760_000_000,
                      direction: str = "inbound", name: str | None = "Budi") -> int:
        body = kapso_message(PNID, wa_id=wa_id, wamid=wamid, text=text, ts=ts,
                             direction=direction, name=name)
        event = "whatsapp.message.received" if direction == "inbound" else "whatsapp.message.sent"
        return await self.kapso(event, body)

    async def api(self, method: str, path: str, token: str | None = TOKEN,
                  body: Any = None) -> tuple[int, Any]:
        """One API call: (status, the JSON answer or the text)."""
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base + path, headers=headers,
                                        data=None if body is None else orjson.dumps(body)) as r:
            raw = await r.read()
            return r.status, (orjson.loads(raw) if r.content_type == "application/json"
                              else raw.decode("utf-8-sig"))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        assert self.pool is not None
        return await self.pool.fetchrow(sql, *args)

    async def fetchval_or_none(self, sql: str, *args: Any) -> Any:
        assert self.pool is not None
        return await self.pool.fetchval(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        assert self.pool is not None
        return list(await self.pool.fetch(sql, *args))


async def table_checksums(p: Pipeline) -> dict[str, str]:
    """Row count and a checksum per replica table: two replicas equal iff these are."""
    out = {}
    for table, order in (("leads", "lead_id"), ("messages", "message_id"),
                         ("lead_status_history", "event_id"), ("lead_notes", "note_id"),
                         ("lead_tasks", "task_id")):
        row = await p.fetchrow(f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|'"
                               f" ORDER BY {order}), '')) AS h FROM {table} t")
        assert row is not None
        out[table] = f"{row['n']}:{row['h']}"
    return out
