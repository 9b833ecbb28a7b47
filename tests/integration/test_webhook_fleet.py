"""`leadstream webhook --processes N` (http.fleet, issue #31): N server processes on one port
answer together, their metrics are summed whichever process a scrape reaches, a child that
dies is started again, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from leadstream.embedded.procs import free_port
from leadstream.simulate import kapso_message, signed
from tests.support.kafka import read_topic
from tests.support.pipeline import PNID, SECRET, Pipeline, eventually


def exited(pid: int) -> bool:
    """Gone, or a zombie whose threads have all exited too (not yet reaped). A killed
    process's main thread is a zombie while its other threads are still exiting, and they
    share its sockets: its listener took connections until the last of them was gone, and
    those were then reset."""
    try:
        zombie = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
        return zombie and os.listdir(f"/proc/{pid}/task") == [str(pid)]
    except OSError:
        return True


def children(pid: int) -> set[int]:
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
                out.add(int(d))
    return out


async def test_processes_share_the_port_sum_their_metrics_and_are_supervised(
        web: Pipeline, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **web.settings.to_env(), "LEADSTREAM_HTTP_PORT": str(port),
           "LEADSTREAM_GROUP_LAG_SECONDS": "0"}
    log = open(tmp_path / "fleet.log", "wb")  # noqa: SIM115, ASYNC230  # the child's, for its life
    fleet = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "leadstream", "webhook", "--processes", "2"], env=env,
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    # a new connection per request: the kernel spreads connections, not requests
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    try:
        async def get(path: str) -> tuple[int, str] | None:
            try:
                async with http.get(base + path) as r:
                    return r.status, await r.text()
            except aiohttp.ClientError:
                return None

        async def ready() -> bool:
            answers = [await get("/readyz") for _ in range(6)]
            return all(a is not None and a[0] == 200 for a in answers)

        await eventually(ready, timeout=60)
        assert len(children(fleet.pid)) == 2
        # both answer: the kernel spreads new connections over the listeners bound. A
        # child counts as ready above once any process answers, and a child still starting
        # (slow on a busy box) has not bound yet, so every connection went to the other in
        # one CI run: poll until each child has answered, every answer a 200
        answered: set[int] = set()

        async def both_answered() -> bool:
            got = await get("/healthz")
            assert got is not None and got[0] == 200
            answered.add(orjson.loads(got[1])["pid"])
            return answered == children(fleet.pid)

        await eventually(both_answered, timeout=60, every=0.01)

        async def post(i: int) -> int:
            raw, sig = signed(SECRET, kapso_message(PNID, wa_id="6281277700000",
                                                     wamid=f"wamid.fleet{i}", text="halo",
                                                     ts=1_760_000_000))
            async with http.post(base + "/webhooks/kapso", data=raw, headers={
                    "X-Webhook-Event": "whatsapp.message.received",
                    "X-Webhook-Signature": sig}) as r:
                return r.status

        assert [await post(i) for i in range(20)] == [200] * 20
        assert len(await read_topic(web.settings, web.settings.topic("events"), 20)) == 20
        want = 'leadstream_http_requests_total{route="/webhooks/kapso",status="200"} 20.0'
        pids = set()
        for _ in range(8):  # whichever process answers the scrape: the fleet's sum
            got = await get("/metrics")
            assert got is not None and want in got[1], got
            ready_line = re.search(r'leadstream_dependency_up\{dependency="postgres"\} (\S+)',
                                   got[1])
            assert ready_line and ready_line[1] == "1.0"
        # a child that dies is started again; the other answers meanwhile
        victim = min(children(fleet.pid))
        os.kill(victim, signal.SIGKILL)
        # the connections the kernel had queued for it are reset (a crash loses those, the
        # sender retries); once it is gone, every new one goes to the other
        await eventually(lambda: asyncio.sleep(0, exited(victim)), timeout=10)
        assert await post(100) == 200

        async def replaced() -> bool:
            now = children(fleet.pid)
            return len(now) == 2 and victim not in now

        await eventually(replaced, timeout=30)
        pids = children(fleet.pid)
        await eventually(ready, timeout=60)
        assert [await post(200 + i) for i in range(4)] == [200] * 4
        # SIGTERM: every process ends
        fleet.terminate()
        assert await asyncio.to_thread(fleet.wait, 40) == 0

        def gone() -> bool:
            return not any(Path(f"/proc/{p}").exists() for p in pids)

        assert await eventually(lambda: asyncio.sleep(0, gone()), timeout=10)
    finally:
        await http.close()
        if fleet.poll() is None:
            fleet.kill()
            fleet.wait()
        log.close()


async def test_the_children_end_with_a_killed_supervisor(web: Pipeline, tmp_path: Path) -> None:
    """A supervisor SIGKILLed (the OOM killer, a test's clean-up) takes its children with it
    (`fleet.die_with_parent`): none is left serving the port unsupervised."""
    port = free_port()
    env = {**os.environ, **web.settings.to_env(), "LEADSTREAM_HTTP_PORT": str(port)}
    log = open(tmp_path / "fleet.log", "wb")  # noqa: SIM115, ASYNC230  # the child's, for its life
    fleet = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "leadstream", "webhook", "--processes", "2"], env=env,
        stdout=log, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    try:
        async def both_started() -> bool:
            pids.update(children(fleet.pid))
            return len(children(fleet.pid)) == 2 and "webhook/API server on" in (
                tmp_path / "fleet.log").read_text()

        await eventually(both_started, timeout=60)
        fleet.kill()
        fleet.wait()

        def all_gone() -> bool:
            return all(exited(p) for p in pids)

        assert await eventually(lambda: asyncio.sleep(0, all_gone()), timeout=20)
    finally:
        if fleet.poll() is None:
            fleet.kill()
            fleet.wait()
        for p in pids:
            if not exited(p):
                os.kill(p, signal.SIGKILL)
        log.close()
