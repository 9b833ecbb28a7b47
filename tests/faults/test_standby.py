"""Production's table settings under a worker's SIGKILL (docker-compose.yml: `rocksdb://` and
`LEADSTREAM_TABLE_STANDBY_REPLICAS=1`): two workers share 8 partitions, one is killed, and
the survivor takes its partitions over. With a standby replica the survivor already holds a
warm copy of them and restores only what was written after its last fetch; without one it
restores them from their changelogs. Either way the replica equals the oracle (0 lost, 0
duplicated). The worker's `leadstream_worker_changelog_records_applied_total` tells the two
apart."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from leadstream.config import Settings
from leadstream.embedded.procs import free_port
from tests.support.faults import converge, oracle, report, send_all, workload
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import Worker, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _applied(port: int) -> dict[str, float]:
    """The worker's changelog records applied, summed over its tables, by role."""
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    out = {"active": 0.0, "standby": 0.0}
    for role, n in re.findall(r'^leadstream_worker_changelog_records_applied_total\{role="(\w+)",'
                              r'table="[^"]+"\} (\S+)$', text, re.M):
        out[role] += float(n)
    return out


async def _ready(port: int) -> bool:
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


def _owned(w: Worker) -> bool:
    return ".events" in w.log_tail(2000).split("Setting newly assigned partitions")[-1]


@pytest.mark.parametrize("standbys", [1, 0])
async def test_a_killed_workers_partitions_are_taken_over_from_the_standby_copy(
        pipelines: StartPipeline, settings: Settings, tmp_path: Path, standbys: int) -> None:
    pytest.importorskip("rocksdict")
    a = settings.model_copy(update={
        "topic_partitions": 8, "table_store": "rocksdb://", "table_standby_replicas": standbys,
        "data_dir": tmp_path / "a", "worker_http_port": free_port()})
    b = a.model_copy(update={"data_dir": tmp_path / "b", "worker_http_port": free_port()})
    first = workload(leads=24, per_lead=6, seed=12, first_phone=44_000_000)
    second = workload(leads=24, per_lead=6, seed=13, first_phone=44_000_000)
    p = await pipelines(a)
    other = Worker(b, str(tmp_path / "worker-b.log"))
    other.start()
    try:
        for port in (a.worker_http_port, b.worker_http_port):
            await eventually(lambda port=port: _ready(port), timeout=90)  # type: ignore[misc]
        acked = await send_all(p, first)
        result = await converge(p, *oracle(acked), timeout=90)
        assert result.equal, result
        assert _owned(p.worker) and _owned(other), "both workers should own partitions"
        # each worker's changelog writes reach the other's standby copy a fetch later
        warm = await eventually(
            lambda: _warm(b.worker_http_port, standbys), timeout=60)
        p.worker.kill()
        killed = time.monotonic()
        acked += await send_all(p, second)
        result = await converge(p, *oracle(acked), timeout=120)
        after = await _applied(b.worker_http_port)
        restored = after["active"] - warm["active"]
        report(f"two workers on RocksDB, {standbys} standby, one SIGKILLed", sent=len(acked),
               acked=len(acked), faults=f"1 of 2 SIGKILLed; the survivor restored {restored:.0f}"
               f" changelog records, its standby copies held {warm['standby']:.0f}",
               result=result, recover_s=time.monotonic() - killed)
        assert result.equal, result
        if standbys:
            # the warm copy was current when the worker died: nothing (or a last fetch's
            # worth) left to restore, against the whole copy without a standby
            assert warm["standby"] > 0
            assert restored < warm["standby"] / 4, (warm, after)
        else:
            assert warm["standby"] == 0 and after["standby"] == 0, (warm, after)
            assert restored > 0, (warm, after)
    finally:
        other.stop()
        await p.stop()


async def _warm(port: int, standbys: int) -> dict[str, float] | None:
    """The survivor's counts once its standby copies took what the workload wrote (two
    equal reads a second apart), or at once without standbys."""
    before = await _applied(port)
    if not standbys:
        return before
    await asyncio.sleep(1.0)
    now = await _applied(port)
    return now if now["standby"] > 0 and now == before else None
