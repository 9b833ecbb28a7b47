"""Connection hygiene (leadstream.http.guard, issue #24) on the real server: connections that
never finish their headers or bodies are closed by the server while `/healthz` keeps
answering; past the connection cap or the in-flight body budget a client gets 503 with
Retry-After; accept errors are logged once a minute."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from leadstream.config import Settings
from leadstream.http.guard import quiet_accept_errors
from leadstream.http.server import make_app, start_site

pytestmark = pytest.mark.integration


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[Settings, Any, int]]:
    from leadstream.broker.clients import ensure_topics
    from leadstream.db.migrate import migrate_url

    await ensure_topics(settings)
    await migrate_url(settings.dsn)
    s = settings.model_copy(update={"http_idle_timeout": 1.5, "http_body_timeout": 1.5,
                                            "http_max_connections": 400,
                                            "http_max_inflight_bytes": 10_000})
    runner, site = await start_site(s, make_app(s), port=0)
    try:
        assert isinstance(site._server, asyncio.Server)
        yield s, site, site._server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()


async def _open(port: int, first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(first)
    await writer.drain()
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), seconds)


async def _healthz(port: int) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status


async def test_connections_that_never_finish_are_closed_and_health_answers(
        served: tuple[Settings, Any, int]) -> None:
    s, _, port = served
    headers = [await _open(port, b"POST /webhooks/kapso HTTP/1.1\r\nHost: x\r\nX-A: ")
               for _ in range(250)]
    bodies = [await _open(port, b"POST /webhooks/kapso HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 400\r\nContent-Type: application/json\r\n\r\n{\"a\"")
              for _ in range(20)]
    started = time.monotonic()
    # the server answers throughout
    for _ in range(5):
        assert await _healthz(port) == 200
        await asyncio.sleep(0.1)
    bound = s.http_idle_timeout + s.http_body_timeout + 5
    for reader, writer in headers:
        assert await _closed_within(reader, bound) == b""  # closed, nothing answered
        writer.close()
    for reader, writer in bodies:
        # either answered 408 (the body timeout) or closed as idle: never left open
        sent = await _closed_within(reader, bound)
        assert sent == b"" or sent.startswith(b"HTTP/1.1 408"), sent[:80]
        writer.close()
    assert time.monotonic() - started < bound + 2
    assert await _healthz(port) == 200


async def test_past_the_connection_cap_a_new_connection_gets_503(
        served: tuple[Settings, Any, int]) -> None:
    s, site, port = served
    held = [await _open(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
            for _ in range(s.http_max_connections)]
    await asyncio.sleep(0.2)
    reader, writer = await _open(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await _closed_within(reader, 5)
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
    assert site.refused >= 1
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.3)  # once they are gone, connections are served again
    assert await _healthz(port) == 200


async def test_past_the_body_budget_a_body_waits_for_none_and_gets_503(
        served: tuple[Settings, Any, int]) -> None:
    """Unauthenticated bodies cannot hold memory: while 8 kB are declared by a stalled
    upload, another 8 kB body is refused before a byte of it is read."""
    _, _, port = served
    stalled = await _open(port, b"POST /webhooks/kapso HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 8000\r\nX-Webhook-Signature: x\r\n\r\n{")
    await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/webhooks/kapso", data=b"x" * 8000,
            headers={"X-Webhook-Signature": "x"}) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "1"
    # a small body fits beside it (and is judged on its signature as usual)
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/webhooks/kapso", data=b"{}",
            headers={"X-Webhook-Signature": "x"}) as r:
        assert r.status == 401
    stalled[1].close()


def test_accept_errors_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    now = [0.0]
    others: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda lp, ctx: others.append(ctx))
    try:
        quiet_accept_errors(loop, every=60, clock=lambda: now[0])
        with caplog.at_level(logging.ERROR, logger="leadstream.http.guard"):
            for i in range(1000):
                now[0] = i * 0.1  # 100 s of EMFILE
                loop.call_exception_handler({"message": "socket.accept() out of system "
                                             "resource", "exception": OSError(24, "EMFILE")})
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    lines = [r for r in caplog.records if "accepting connections fails" in r.getMessage()]
    assert len(lines) == 2  # at 0 s and at 60 s
    assert "600 time(s)" in lines[1].getMessage()
    assert others == [{"message": "something else"}]
