"""The fault suite's oracle with merges (issue #18): leads merged through the API while their
messages still arrive, redelivered and reordered, with the worker SIGKILLed after the merges;
the replica the team sees equals the oracle's (every message once, each survivor counting its
duplicates'), and a replay rebuilds it equal."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from leadstream.config import Settings
from leadstream.domain.identity import lead_id_for
from tests.support.faults import (
    converge,
    merged_oracle,
    redeliveries,
    report,
    send_all,
    workload,
)
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import TOKEN, eventually, table_checksums

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_merges_during_traffic_with_redeliveries_and_a_worker_kill(pipelines: StartPipeline,
        settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(20261129)
    base = workload(leads=16, per_lead=10, seed=7, first_phone=41_000_000)
    deliveries, dups = redeliveries(base, rate=0.3, window=20, rng=rng)
    phones = [f"+62812{41_000_000 + i:08d}" for i in range(16)]
    merges = {phones[i + 1]: phones[i] for i in range(0, 8, 2)}  # 4 pairs
    p = await pipelines(settings)
    t_kill = 0.0

    async def merger() -> None:
        nonlocal t_kill
        for dup, survivor in merges.items():
            ids = [lead_id_for(f"ws1:{x}") for x in (dup, survivor)]
            await eventually(lambda i=ids: p.fetchrow(  # type: ignore[misc]
                "SELECT 1 FROM leads WHERE lead_id = ANY($1::uuid[]) HAVING count(*) = 2", i),
                timeout=90)
            assert p.session is not None
            async with p.session.post(f"{p.base}/api/leads/{ids[1]}/merge",
                                      json={"duplicate_lead_id": ids[0], "reason": "sama"},
                                      headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 202, await r.text()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
        p.worker.kill()  # merges in flight: absorbs, forwards, claims
        t_kill = time.monotonic()
        p.worker.start()

    try:
        merging = asyncio.create_task(merger())
        acked = await send_all(p, deliveries, rate=40)
        await merging
        result = await converge(p, *merged_oracle(acked, merges), timeout=150)
        report("merges during traffic + duplicates 30% + SIGKILL", sent=len(deliveries),
               acked=len(acked), faults=f"{len(merges)} merges, {dups} duplicates, 1 SIGKILL",
               result=result, recover_s=time.monotonic() - t_kill)
        assert result.equal, result
        merged = await p.fetch("SELECT phone_e164 FROM leads WHERE merged_into IS NOT NULL")
        assert {r["phone_e164"] for r in merged} == set(merges)
        await asyncio.sleep(1.0)
        before = await table_checksums(p)
        p.worker.stop()
        from leadstream.sink.replay import replay_and_verify

        verified = await replay_and_verify(p.settings)
        assert verified["equal"], verified["tables"]
        assert await table_checksums(p) == before
    finally:
        await p.stop()
