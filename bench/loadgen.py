"""A lean HTTP/1.1 load generator for the closed-loop steps (#31).

The suite's load generator shares the two cores with the system it measures, so what it
spends per request is taken from the webhook, the broker, the worker and Postgres.
aiohttp's client spent 0.18 ms of CPU per single delivery (BENCHMARKS.md, session 17):
more than the broker and Postgres together. `RawClient` is one keep-alive connection that
writes a prebuilt request and reads the status line, the headers and a `Content-Length`
body: what a load generator like `wrk` does, in a few lines of asyncio. It speaks to our
aiohttp servers (keep-alive, `Content-Length` answers) and nothing more general; a chunked
answer or a closed connection is an error or a reconnect, never a silent success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit


def request_bytes(url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A complete POST with its body, ready to write."""
    u = urlsplit(url)
    lines = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {u.netloc}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawClient:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, raw: bytes) -> int:
        """Send one prebuilt request; the answer's status (its body read and dropped)."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = None, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise ValueError("a chunked answer: RawClient reads Content-Length only")
            if length is None:
                raise ValueError("an answer without Content-Length")
            await reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


#: what a failed request raises from `RawClient.post` (counted as an error, never a success)
FAILURES = (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


class RawPool:
    """Keep-alive `RawClient`s for an open loop: a request takes the connection used last or
    opens one, at most `limit` at once (a request beyond them waits for one), as aiohttp's
    connector does; unbounded, an overloaded step opened thousands and the server refused
    those past its `LEADSTREAM_HTTP_MAX_CONNECTIONS`. A connection idle for `max_idle` seconds is
    closed instead of reused: our server closes one idle for 10 s
    (`LEADSTREAM_HTTP_IDLE_TIMEOUT`), and a request written into a connection it is closing
    would fail for the load generator's sake (two in 6,000 at 200/s, before this)."""

    def __init__(self, url: str, limit: int = 512, max_idle: float = 5.0) -> None:
        self.url = url
        self.slots = asyncio.Semaphore(limit)
        self.max_idle = max_idle
        #: (client, when it was last answered), the most recent last
        self.idle: list[tuple[RawClient, float]] = []

    async def post(self, raw: bytes) -> int:
        async with self.slots:
            return await self._post(raw)

    async def _post(self, raw: bytes) -> int:
        c = None
        now = time.monotonic()
        while self.idle and c is None:
            c, used = self.idle.pop()
            if now - used > self.max_idle:
                c.close()
                c = None
        c = c or RawClient(self.url)
        status = await c.post(raw)  # a failure closes the client: it is not kept
        self.idle.append((c, time.monotonic()))
        return status

    def close(self) -> None:
        for c, _ in self.idle:
            c.close()
        self.idle.clear()


#: one client of a closed loop: its request (the body and its signature in, True if the
#: answer was 200 out) and how to close it
Client = tuple[Callable[[bytes, str], Awaitable[bool]], Callable[[], None]]


async def closed_loop(connect: Callable[[], Client], make: Callable[[int], tuple[bytes, str]],
                      *, concurrency: int, seconds: float | None = None,
                      total: int | None = None,
                      failures: tuple[type[BaseException], ...] = FAILURES) -> dict[str, Any]:
    """`concurrency` clients from `connect` posting back to back, for `seconds` or until
    `total` requests; a request that raises one of `failures` or is not answered 200 is an
    error. Latencies (ms) of the 200s in `lat`."""
    lat: list[float] = []
    errors = 0
    nxt = 0
    stop_at = time.perf_counter() + (seconds or 1e9)

    async def client() -> None:
        nonlocal nxt, errors
        post, close = connect()
        try:
            while time.perf_counter() < stop_at and (total is None or nxt < total):
                i = nxt
                nxt += 1
                body, sig = make(i)
                t0 = time.perf_counter()
                try:
                    ok = await post(body, sig)
                except failures:
                    ok = False
                if ok:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1
        finally:
            close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(lat), "errors": errors, "seconds": elapsed,
            "rps": len(lat) / elapsed, "lat": lat}


async def closed_loop_raw(url: str, make: Callable[[int], tuple[bytes, str]],
                          headers: Mapping[str, str], *, concurrency: int,
                          seconds: float | None = None, total: int | None = None,
                          sig_header: str = "X-Webhook-Signature") -> dict[str, Any]:
    """`closed_loop` with a `RawClient` per client."""
    def connect() -> Client:
        c = RawClient(url)

        async def post(body: bytes, sig: str) -> bool:
            return await c.post(request_bytes(url, body, {**headers, sig_header: sig})) == 200
        return post, c.close

    return await closed_loop(connect, make, concurrency=concurrency, seconds=seconds,
                             total=total)
