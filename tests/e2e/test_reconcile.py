"""Reconciliation from Kapso's API on the real pipeline (issue #27), against the fake
Kapso API (`leadstream.simulate.kapso_api`, an aiohttp server of its own): an outage of the
webhook and the worker during which Kapso gives up on its deliveries loses nothing once the
stack is back; a run over what the log holds adds nothing; a reconciler SIGKILLed mid-window
resumes from its watermark."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from leadstream.config import Settings
from leadstream.db import watermarks
from leadstream.db.registry import add_workspace
from leadstream.http.server import make_app
from leadstream.simulate import kapso_message, post_kapso
from leadstream.simulate.kapso_api import FakeKapsoApi, api_message
from tests.support.cli import acli
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import PNID, SECRET, Pipeline, eventually, table_checksums

pytestmark = pytest.mark.integration
KEY = "kapso-key-0123456789"


@pytest.fixture
async def kapso() -> AsyncIterator[tuple[FakeKapsoApi, str]]:
    fake = FakeKapsoApi(keys={PNID: KEY})
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


def _settings(settings: Settings, url: str, **more: Any) -> Settings:
    return settings.model_copy(update={"kapso_api_url": url, **more})


async def _with_key(p: Pipeline) -> None:
    assert p.pool is not None
    async with p.pool.acquire() as conn:
        await add_workspace(conn, workspace_id="ws1", phone_number_id=None,
                            webhook_secret=None, api_token=None, kapso_api_key=KEY)


class Kapso:
    """Kapso as the pipeline meets it: it stores every message (its API lists them) and
    delivers each by webhook, trying three times; a delivery that fails all three is given
    up, as Kapso does after its ~2.5 minutes of retries."""

    def __init__(self, fake: FakeKapsoApi, p: Pipeline) -> None:
        self.fake, self.p = fake, p
        self.base = p.base  # where Kapso delivers, whether anything answers there or not
        self.given_up: list[str] = []
        self.n = 0

    async def message(self, i: int, *, direction: str = "inbound", status: str | None = None,
                      deliver: bool = True) -> str:
        self.n += 1
        wa_id = f"62812{40000000 + i:08d}"
        wamid = f"wamid.kapso.{self.n}"
        ts = int(datetime.now(UTC).timestamp())
        status = status or ("delivered" if direction == "inbound" else "sent")
        self.fake.add(PNID, api_message(wa_id=wa_id, wamid=wamid, text=f"pesan {self.n}",
                                        ts=ts, direction=direction, name=f"Pelanggan {i}",
                                        status=status))
        if not deliver:  # Kapso dropped it for reasons of its own
            self.given_up.append(wamid)
            return wamid
        body = kapso_message(PNID, wa_id=wa_id, wamid=wamid, text=f"pesan {self.n}", ts=ts,
                             direction=direction, name=f"Pelanggan {i}", status=status)
        event = "whatsapp.message.received" if direction == "inbound" else "whatsapp.message.sent"
        for _ in range(3):
            try:
                assert self.p.session is not None
                if await post_kapso(self.p.session, self.base, SECRET, event, body) == 200:
                    return wamid
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        self.given_up.append(wamid)
        return wamid


async def _replica_holds_all(p: Pipeline, fake: FakeKapsoApi) -> bool:
    want = {m["id"] for m in fake.all_messages()}
    rows = await p.fetch("SELECT message_id FROM messages WHERE workspace_id = 'ws1'")
    return {r["message_id"] for r in rows} == want


async def _check_against_kapso(p: Pipeline, fake: FakeKapsoApi) -> None:
    """The oracle: every message Kapso holds is in the replica once, on its lead, with the
    status Kapso has; every lead counts each of its messages once."""
    msgs = fake.all_messages()
    rows = {r["message_id"]: r for r in await p.fetch(
        "SELECT message_id, direction, status, l.phone_e164 FROM messages m"
        " JOIN leads l USING (lead_id) WHERE m.workspace_id = 'ws1'")}
    assert set(rows) == {m["id"] for m in msgs}
    for m in msgs:
        r = rows[m["id"]]
        assert r["direction"] == m["kapso"]["direction"]
        assert r["phone_e164"] == m["kapso"]["phone_number"]
        if m["kapso"]["direction"] == "outbound":
            assert r["status"] == m["kapso"]["status"], m["id"]
    per_lead = Counter(m["kapso"]["phone_number"] for m in msgs)
    counts = {r["phone_e164"]: r["message_count"] for r in await p.fetch(
        "SELECT phone_e164, message_count FROM leads WHERE workspace_id = 'ws1'")}
    assert counts == dict(per_lead)  # 0 lost, 0 duplicated


async def test_an_outage_longer_than_kapsos_retries_loses_nothing(
        pipelines: StartPipeline, settings: Settings,
        kapso: tuple[FakeKapsoApi, str]) -> None:
    fake, url = kapso
    fake.throttle_every = 2  # Kapso rate-limits now and then: honoured, nothing lost
    fake.retry_after = "0.2"
    p = await pipelines(_settings(settings, url, reconcile_interval_seconds=2.0),
                        worker=False)
    await _with_key(p)
    p.worker.start()
    line = Kapso(fake, p)
    for i in range(20):
        await line.message(i % 6, direction="inbound" if i % 4 else "outbound")
    await eventually(lambda: _replica_holds_all(p, fake), timeout=60)
    assert not line.given_up

    # the outage: webhook and worker down (a deploy, a crashed host) for longer than
    # Kapso retries; customers keep writing and the team keeps answering from Kapso
    assert p.server is not None
    port = p.server.port
    await p.server.close()
    p.worker.stop()
    for i in range(25):
        await line.message(i % 8, direction="outbound" if i % 5 == 0 else "inbound")
    assert len(line.given_up) == 25
    # ... and messages sent before it were delivered and read meanwhile
    for m in fake.all_messages()[:20]:
        if m["kapso"]["direction"] == "outbound":
            fake.set_status(PNID, m["id"], "read")

    # back: the worker's start-up run repairs the outage from the watermark
    p.server = TestServer(make_app(p.settings), port=port)
    await p.server.start_server()
    p.worker.start()
    await eventually(lambda: _replica_holds_all(p, fake), timeout=90)
    # a delivery Kapso dropped while all is up: the periodic run catches it
    await line.message(3, deliver=False)
    await eventually(lambda: _replica_holds_all(p, fake), timeout=60)
    await asyncio.sleep(1.0)  # the status events of the last run
    await eventually(lambda: _statuses_match(p, fake), timeout=30)
    await _check_against_kapso(p, fake)
    assert fake.throttled >= 1

    row = await p.fetchrow("SELECT complete_until, failures, missing_total"
                           " FROM reconcile_watermarks WHERE phone_number_id = $1", PNID)
    assert row is not None and row["failures"] == 0 and row["missing_total"] >= 26
    assert datetime.now(UTC) - row["complete_until"] < timedelta(minutes=1)

    # a replay rebuilds an equal replica, and the log holds each message once
    from leadstream.sink.replay import replay_and_verify

    before = await table_checksums(p)
    verified = await replay_and_verify(p.settings)
    assert verified["equal"], verified["tables"]
    assert await table_checksums(p) == before


async def _statuses_match(p: Pipeline, fake: FakeKapsoApi) -> bool:
    rows = {r["message_id"]: r["status"] for r in await p.fetch(
        "SELECT message_id, status FROM messages WHERE workspace_id = 'ws1'"
        " AND direction = 'outbound'")}
    return all(rows.get(m["id"]) == m["kapso"]["status"] for m in fake.all_messages()
               if m["kapso"]["direction"] == "outbound")


async def test_a_window_the_log_holds_adds_nothing_and_a_refused_key_fails_the_command(
        pipelines: StartPipeline, settings: Settings,
        kapso: tuple[FakeKapsoApi, str]) -> None:
    fake, url = kapso
    s = _settings(settings, url, reconcile_interval_seconds=-1.0)
    p = await pipelines(s)
    await _with_key(p)
    line = Kapso(fake, p)
    for i in range(12):
        await line.message(i % 4, direction="inbound" if i % 3 else "outbound")
    await eventually(lambda: _replica_holds_all(p, fake), timeout=60)
    await eventually(lambda: _statuses_match(p, fake), timeout=30)

    env = s.to_env()
    r = await acli(["reconcile", "--since", "1h"], env)
    assert r.exit_code == 0, r.output
    assert f"ws1/{PNID}" in r.output and "read 12, missing 0, behind 0, added 0" in r.output
    dry = await acli(["reconcile", "--since", "1h", "--dry-run"], env)
    assert "would add 0" in dry.output

    fake.keys[PNID] = "a-key-kapso-rotated"  # the key revoked: reported, exit 1
    bad = await acli(["reconcile"], env)
    assert bad.exit_code == 1 and "FAILED" in bad.output and "401" in bad.output, bad.output
    row = await p.fetchrow("SELECT failures, last_error FROM reconcile_watermarks"
                           " WHERE phone_number_id = $1", PNID)
    assert row is not None and row["failures"] == 1 and "401" in row["last_error"]
    listed = await acli(["workspace", "list"], env)
    assert KEY not in listed.output and "…6789" in listed.output


async def test_a_reconciler_killed_mid_window_resumes_from_its_watermark(
        pipelines: StartPipeline, settings: Settings,
        kapso: tuple[FakeKapsoApi, str]) -> None:
    fake, url = kapso
    s = _settings(settings, url, reconcile_interval_seconds=-1.0,
                  reconcile_lookback_seconds=1800.0, reconcile_slice_seconds=1800.0)
    p = await pipelines(s)
    await _with_key(p)
    start = datetime.now(UTC) - timedelta(hours=6, minutes=30)
    # the number was known complete until then; the stack was away since (six hours)
    assert p.pool is not None
    await watermarks.advance(p.pool, PNID, "ws1", start, read=0, missing=0)
    for n in range(300):  # six hours Kapso never delivered
        at = start + timedelta(seconds=n * 72)
        fake.add(PNID, api_message(wa_id=f"62812{50000000 + n % 9:08d}", wamid=f"wamid.k.{n}",
                                   text=f"m{n}", ts=int(at.timestamp())), created_at=at)
    fake.throttle_every, fake.retry_after = 2, "0.4"  # slow enough to be killed mid-way

    env = {**os.environ, **s.to_env()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "leadstream", "reconcile", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)

    async def moved() -> Any:
        return await p.fetchval_or_none(
            "SELECT complete_until FROM reconcile_watermarks WHERE phone_number_id = $1"
            " AND complete_until > $2", PNID, start + timedelta(hours=1))

    mark = await eventually(moved, timeout=60)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert mark < datetime.now(UTC) - timedelta(minutes=30), "it finished before the kill"

    fake.throttle_every = 0
    r = await acli(["reconcile"], s.to_env())
    assert r.exit_code == 0, r.output
    # the second run started where the first left the number complete
    assert f"ws1/{PNID}  {mark:%Y-%m-%d %H:%M}.." in r.output, (mark, r.output)
    assert "read 300" not in r.output
    await eventually(lambda: _replica_holds_all(p, fake), timeout=60)
    await _check_against_kapso(p, fake)
