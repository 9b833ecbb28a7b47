"""bench/loadgen.py: the lean load generator counts only what the server accepted.

A load generator that counted a refused or half-read answer as a success would inflate every
closed-loop figure in BENCHMARKS.md; these run it against a real aiohttp server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
from loadgen import FAILURES, RawClient, RawPool, closed_loop_raw, request_bytes


async def ok(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"got": len(body), "sig": request.headers.get("X-Sig")})


async def deny(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"error": "bad signature"}, status=401)


async def close(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True}, headers={"Connection": "close"})


async def chunked(request: web.Request) -> web.StreamResponse:
    await request.read()
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b"{}")
    await resp.write_eof()
    return resp


@pytest.fixture
async def base() -> AsyncIterator[tuple[str, list[int]]]:
    """The server's URL and the client ports its requests came from (one per connection)."""
    peers: list[int] = []

    @web.middleware
    async def note_peer(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peer[1] if peer else -1)
        return await handler(request)

    app = web.Application(middlewares=[note_peer])
    app.router.add_post("/ok", ok)
    app.router.add_post("/deny", deny)
    app.router.add_post("/close", close)
    app.router.add_post("/chunked", chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        await runner.cleanup()


def test_request_bytes_is_a_whole_post() -> None:
    raw = request_bytes("http://h:1/webhooks/kapso", b'{"a":1}', {"X-Sig": "s"})
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"POST /webhooks/kapso HTTP/1.1", b"Host: h:1",
                                   b"Content-Length: 7", b"X-Sig: s"]
    assert body == b'{"a":1}'


async def test_keeps_one_connection_and_reads_each_answer(base: tuple[str, list[int]]) -> None:
    url, peers = base
    c = RawClient(url + "/ok")
    try:
        for n in (1, 10, 1000):
            assert await c.post(request_bytes(url + "/ok", b"x" * n, {"X-Sig": "s"})) == 200
    finally:
        c.close()
    assert len(peers) == 3 and len(set(peers)) == 1


async def test_a_closed_connection_is_opened_again(base: tuple[str, list[int]]) -> None:
    url, peers = base
    c = RawClient(url)
    try:
        assert await c.post(request_bytes(url + "/close", b"{}", {})) == 200
        assert await c.post(request_bytes(url + "/ok", b"{}", {})) == 200
    finally:
        c.close()
    assert len(set(peers)) == 2


async def test_refusals_and_unreadable_answers_are_errors(base: tuple[str, list[int]]) -> None:
    url, _ = base
    r = await closed_loop_raw(url + "/deny", lambda i: (b"{}", "s"), {}, concurrency=2, total=5)
    assert (r["requests"], r["errors"]) == (0, 5)
    r = await closed_loop_raw(url + "/chunked", lambda i: (b"{}", "s"), {}, concurrency=1,
                              total=2)
    assert (r["requests"], r["errors"]) == (0, 2)
    r = await closed_loop_raw(url + "/ok", lambda i: (b"{}", f"s{i}"), {}, concurrency=4,
                              total=20, sig_header="X-Sig")
    assert (r["requests"], r["errors"], len(r["lat"])) == (20, 0, 20)


async def test_a_pool_reuses_idle_connections_and_drops_failed_ones(
        base: tuple[str, list[int]]) -> None:
    url, peers = base
    pool = RawPool(url)
    try:
        # two at once: two connections; then one at a time: one of those two again
        assert await asyncio.gather(*(pool.post(request_bytes(url + "/ok", b"{}", {}))
                                      for _ in range(2))) == [200, 200]
        assert await pool.post(request_bytes(url + "/ok", b"{}", {})) == 200
        assert len(set(peers)) == 2 and peers[2] in peers[:2]
        with pytest.raises(FAILURES):
            await pool.post(request_bytes(url + "/chunked", b"{}", {}))
        assert len(pool.idle) == 1
    finally:
        pool.close()


async def test_a_pool_closes_a_connection_idle_too_long(base: tuple[str, list[int]]) -> None:
    url, peers = base
    pool = RawPool(url, max_idle=0.05)
    try:
        assert await pool.post(request_bytes(url + "/ok", b"{}", {})) == 200
        await asyncio.sleep(0.1)
        assert await pool.post(request_bytes(url + "/ok", b"{}", {})) == 200
    finally:
        pool.close()
    assert len(set(peers)) == 2


async def test_a_pool_opens_at_most_its_limit(base: tuple[str, list[int]]) -> None:
    url, peers = base
    pool = RawPool(url, limit=3)
    try:
        got = await asyncio.gather(*(pool.post(request_bytes(url + "/ok", b"{}", {}))
                                     for _ in range(12)))
    finally:
        pool.close()
    assert got == [200] * 12 and len(set(peers)) == 3
