"""`leadstream webhook --processes N`: N webhook/API server processes on one port, so a box
with more cores than one uses them (one Python process answers on one core; issue #31).

Each child binds the port with SO_REUSEPORT and the kernel spreads new connections over
them (Linux); nothing is shared between them but the port, as between the servers of a
fleet behind a load balancer. This process only supervises: a child that exits is started
again (with back-off), SIGTERM/SIGINT stop them all (each finishes its requests, then a
kill after `grace` seconds). Their Prometheus figures are summed over the children
(`prometheus_client`'s multiprocess mode, in a directory made for this fleet), so a scrape
that lands on any child sees the whole server's counters. A child ends with its supervisor
(`die_with_parent`), whatever ends the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from leadstream.retry import Backoff

log = logging.getLogger(__name__)

#: the environment a child is started with, besides the parent's
REUSE_PORT_ENV = "LEADSTREAM_HTTP_REUSE_PORT"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the supervisor's pid, so a child ends with it (`die_with_parent`)
PARENT_ENV = "LEADSTREAM_FLEET_PARENT"

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a fleet's child: be sent SIGTERM when the supervisor dies, however it dies (a
    SIGKILL, the OOM killer), so no server is left on the port unsupervised and a new
    supervisor does not start N more beside it (Linux; elsewhere a no-op). If the
    supervisor is already gone, exit now."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        raise SystemExit("webhook fleet: the supervisor is gone")


class ServerFleet:
    def __init__(self, processes: int, *, command: Sequence[str] | None = None,
                 grace: float = 20.0) -> None:
        self.processes = processes
        self.command = list(command or [sys.executable, "-m", "leadstream", "webhook",
                                        "--processes", "1"])
        self.grace = grace
        self.children: list[asyncio.subprocess.Process | None] = [None] * processes
        self.started = [0.0] * processes  # monotonic, per child: a long run resets back-off
        self.restarts = 0

    async def _spawn(self, i: int, env: dict[str, str]) -> None:
        self.children[i] = await asyncio.create_subprocess_exec(*self.command, env=env)
        self.started[i] = time.monotonic()
        log.info("webhook/API server %d of %d: pid %d", i + 1, self.processes,
                 self.children[i].pid)  # type: ignore[union-attr]

    async def run(self, stop: asyncio.Event) -> None:
        metrics_dir = tempfile.mkdtemp(prefix="leadstream-metrics-")
        env = {**os.environ, REUSE_PORT_ENV: "true", MULTIPROC_ENV: metrics_dir,
               PARENT_ENV: str(os.getpid())}
        backoff = [Backoff(0.5, 10.0) for _ in range(self.processes)]
        try:
            for i in range(self.processes):
                await self._spawn(i, env)
            while not stop.is_set():
                waits = {asyncio.ensure_future(c.wait()): i
                         for i, c in enumerate(self.children) if c is not None}
                stopping = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait([*waits, stopping],
                                             return_when=asyncio.FIRST_COMPLETED)
                for fut in (*waits, stopping):
                    if fut not in done:
                        fut.cancel()
                if stop.is_set():
                    break
                for fut in done:
                    if fut in waits:
                        i = waits[fut]
                        log.error("webhook/API server %d (pid %s) exited with %s; starting it"
                                  " again", i + 1, self.children[i].pid,  # type: ignore[union-attr]
                                  fut.result())
                        self.restarts += 1
                        if time.monotonic() - self.started[i] > 60:
                            backoff[i].reset()  # it ran a while: a new fault, not a loop
                        if await backoff[i].wait(stop):
                            await self._spawn(i, env)
        finally:
            await self._stop_all()
            shutil.rmtree(metrics_dir, ignore_errors=True)

    async def _stop_all(self) -> None:
        alive = [c for c in self.children if c is not None and c.returncode is None]
        for c in alive:
            with contextlib.suppress(ProcessLookupError):
                c.terminate()
        for c in alive:
            try:
                await asyncio.wait_for(c.wait(), self.grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    c.kill()
                await c.wait()
