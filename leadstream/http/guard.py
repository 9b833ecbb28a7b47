"""Connection hygiene for the webhook/API server (issue #24): nobody, with or without a
token, can hold the server's connections, memory or log.

- **Idle and header timeout.** aiohttp closes a connection that has not completed a request
  within its keep-alive timeout, from the first byte on (so a client that never finishes its
  headers is closed too); we set it to `LEADSTREAM_HTTP_IDLE_TIMEOUT` (10 s) instead of
  aiohttp's 75 s.
- **Body timeout.** A body must arrive within `LEADSTREAM_HTTP_BODY_TIMEOUT` (10 s: Kapso
  gives up on an answer after about that): else `408`, and the connection is closed after at
  most 2 s more (aiohttp's lingering read of the rest, 10 s by default).
- **Connection cap.** Past `LEADSTREAM_HTTP_MAX_CONNECTIONS` open connections a new one is
  answered `503` with `Retry-After` and closed at once, before any parsing (the process also
  raises its open-file limit to the hard limit at start, so the cap, not the kernel, is what a
  flood meets).
- **In-flight body bytes.** Bodies being read at once may declare at most
  `LEADSTREAM_HTTP_MAX_INFLIGHT_BYTES` together (a body without a length counts as the body
  limit): past it `503` with `Retry-After`, before a byte of it is read. A signature is
  checked only on a whole body, so this bounds what unauthenticated uploads can hold.
- **Accept errors** (EMFILE and the like) are logged at most once a minute, with a count,
  instead of a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

_REFUSAL_BODY = b'{"error": "too many connections"}'
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
           b"Content-Type: application/json\r\nContent-Length: "
           + str(len(_REFUSAL_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _REFUSAL_BODY)


class _Refused(asyncio.Protocol):
    """A connection over the cap: one 503 and closed, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSAL)
        transport.close()


class GuardedSite(web.TCPSite):
    """`web.TCPSite` whose connections beyond `max_connections` are refused (503)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 max_connections: int, **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self.max_connections = max_connections
        self.refused = 0

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert isinstance(server, web.Server)

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self.max_connections:
                self.refused += 1
                return _Refused()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            protocol, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)


class Busy(Exception):
    """More body bytes are being read than the budget allows: answer 503, retry later."""


class BodyBudget:
    """The body bytes being read at once, across requests."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0

    @contextmanager
    def reserve(self, n: int) -> Iterator[None]:
        if self.used + n > self.limit:
            self.refused += 1
            raise Busy(f"{self.used} body bytes in flight")
        self.used += n
        try:
            yield
        finally:
            self.used -= n


async def read_body(request: web.Request, *, budget: BodyBudget, max_bytes: int,
                    timeout: float) -> bytes:
    """The whole body, within the budget and the timeout: `Busy` past the budget,
    `web.HTTPRequestTimeout` (408) past the timeout."""
    declared = request.content_length
    with budget.reserve(max_bytes if declared is None else min(declared, max_bytes)):
        try:
            async with asyncio.timeout(timeout):  # no task per request, as wait_for makes
                return await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(
                text='{"error": "the body did not arrive in time"}',
                content_type="application/json") from None


def raise_open_file_limit(want: int = 65536) -> int:
    """Raise the soft limit of open files towards the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 60.0,
                        clock: Callable[[], float] = time.monotonic) -> None:
    """Log the loop's accept errors (a full file table, a reset) once per `every` seconds
    with how many there were; anything else goes to the previous handler as before."""
    previous = loop.get_exception_handler()
    state = {"next": 0.0, "count": 0}

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "accept" not in message and "out of system resource" not in message:
            if previous is not None:
                previous(lp, context)
            else:
                lp.default_exception_handler(context)
            return
        state["count"] += 1
        now = clock()
        if now >= state["next"]:
            log.error("accepting connections fails: %s (%r); %d time(s) since the last line",
                      message, context.get("exception"), state["count"])
            state["next"], state["count"] = now + every, 0

    loop.set_exception_handler(handler)
