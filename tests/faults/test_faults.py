"""The fault suite: every scenario compares the final replica with the oracle (the expected
replica computed by the pure domain rules over the same acknowledged deliveries) and
reports lost and duplicated events. Bounded in time; runs in CI (marked slow)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from leadstream.config import Settings
from leadstream.embedded.postgres import EmbeddedPostgres
from tests.support.faults import (
    converge,
    oracle,
    redeliveries,
    report,
    send_all,
    workload,
)
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import Pipeline, Worker, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.tansu]


async def _message_rows(p: Pipeline) -> int:
    try:
        row = await p.fetchrow("SELECT count(*) AS n FROM messages")
    except Exception:  # noqa: BLE001  # Postgres killed on purpose: no count
        return -1
    return int(row["n"]) if row else 0


async def test_duplicates_reordering_and_random_worker_kills(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    """30% of deliveries sent twice, order shuffled across retries, and the worker SIGKILLed
    at random points three times while traffic flows."""
    rng = random.Random(20261122)
    base = workload(leads=30, per_lead=16, seed=1)
    deliveries, dups = redeliveries(base, rate=0.3, window=25, rng=rng)
    p = await pipelines(settings)
    kills = 0
    resumed_after: list[float] = []  # kill -> the replica grows again

    async def killer() -> None:
        nonlocal kills
        for i in range(3):
            # once the worker holds state (so its successor must recover it) ...
            goal = (i + 1) * len(base) // 5
            await eventually(lambda g=goal: _at_least(p, g), timeout=120)  # type: ignore[misc]
            await asyncio.sleep(rng.uniform(0.0, 0.5))  # ... at a random point after that
            p.worker.kill()
            t_kill = time.monotonic()
            rows = await _message_rows(p)
            kills += 1
            p.worker.start()
            await eventually(lambda r=min(rows + 1, len(base)): _at_least(p, r),  # type: ignore[misc]
                             timeout=90)
            resumed_after.append(time.monotonic() - t_kill)

    try:
        killing = asyncio.create_task(killer())
        acked = await send_all(p, deliveries, rate=25)
        await killing
        result = await converge(p, *oracle(acked), timeout=150)
        report("duplicates 30% + reorder + SIGKILL", sent=len(deliveries), acked=len(acked),
               faults=f"{dups} duplicates, {kills} worker SIGKILLs", result=result,
               recover_s=max(resumed_after))
        assert result.equal, result
        assert kills == 3
    finally:
        await p.stop()


async def _at_least(p: Pipeline, n: int) -> bool:
    return await _message_rows(p) >= n


async def test_two_workers_one_killed_the_other_takes_over_with_its_state(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path
) -> None:
    """Two workers share 8 partitions; one is SIGKILLed; the survivor takes all partitions
    and continues the killed one's leads from their recovered table state (counts go on
    from where they were, not from zero)."""
    s = settings.model_copy(update={"topic_partitions": 8})
    first, second = workload(leads=24, per_lead=6, seed=2), workload(leads=24, per_lead=6,
                                                                       seed=3)
    p = await pipelines(s)
    other = Worker(s, str(tmp_path / "worker-b.log"))
    other.start()
    try:
        for w in (p.worker, other):
            await eventually(lambda w=w: _ready(w), timeout=90)  # type: ignore[misc]
        acked = await send_all(p, first)
        result = await converge(p, *oracle(acked), timeout=90)
        assert result.equal, result
        assert _owned(p.worker) and _owned(other), "both workers should own partitions"
        p.worker.kill()
        t0 = time.monotonic()
        acked += await send_all(p, second)
        result = await converge(p, *oracle(acked), timeout=120)
        report("two workers, one SIGKILLed", sent=len(acked), acked=len(acked),
               faults="1 of 2 workers SIGKILLed (8 partitions)", result=result,
               recover_s=time.monotonic() - t0)
        assert result.equal, result
    finally:
        other.stop()
        await p.stop()


async def _ready(w: Worker) -> bool:
    return "[^Worker]: Ready" in w.log_tail(400)


def _owned(w: Worker) -> bool:
    return ".events" in w.log_tail(2000).split("Setting newly assigned partitions")[-1]


async def test_postgres_outage_webhook_keeps_answering_and_sink_catches_up(pipelines: StartPipeline,
    settings: Settings, tmp_path: Path
) -> None:
    # durable, as in production: the sink commits offsets after Postgres commits, so a
    # server that loses committed transactions on SIGKILL (fsync off) would lose rows
    pg = EmbeddedPostgres(tmp_path / "own-pg", fsync=True).start()
    s = settings.model_copy(update={"database_url": pg.url})
    before, during = workload(10, 3, seed=4), workload(10, 3, seed=5)
    p = await pipelines(s)
    try:
        acked = await send_all(p, before)
        assert (await converge(p, *oracle(acked), timeout=60)).equal
        pg.kill()
        # Postgres is down: webhooks of known workspaces still go to the broker
        acked += await send_all(p, during)
        await asyncio.sleep(3)  # the outage lasts: the sink retries and keeps its place
        pg.start()  # same data directory and port
        t0 = time.monotonic()
        result = await converge(p, *oracle(acked), timeout=120)
        report("Postgres SIGKILLed and restarted", sent=len(acked), acked=len(acked),
               faults="Postgres down ~3 s mid-run", result=result,
               recover_s=time.monotonic() - t0)
        assert result.equal, result
    finally:
        await p.stop()
        pg.stop()


async def test_poison_records_are_dead_lettered_listed_and_redriven(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    """A record the worker cannot read goes to the DLQ and `sync_failures`; the worker goes
    on; `dlq redrive` publishes the original bytes again to the source topic."""
    from leadstream.broker.clients import make_producer
    from leadstream.ops.dlq import read_dead_letters, redrive
    from tests.support.kafka import read_topic

    p = await pipelines(settings)
    try:
        producer = make_producer(settings)
        await producer.start()
        poison = b'{"event_id": "x", "kind": "message"'  # truncated JSON
        await producer.send_and_wait(settings.topic("events"), poison, key=b"ws1:+6281300000000")
        await producer.stop()
        assert await p.message("6281355550009", "wamid.after-poison") == 200
        await eventually(lambda: p.fetchrow(
            "SELECT 1 FROM leads WHERE phone_e164 = '+6281355550009'"), timeout=60)
        failure = await eventually(lambda: p.fetchrow(
            "SELECT * FROM sync_failures WHERE stage = 'worker'"), timeout=30)
        assert "invalid record" in failure["reason"]
        assert failure["source_topic"] == settings.topic("events")
        letters = await read_dead_letters(settings)
        (key, dl), = [(k, d) for k, d in letters if d.stage == "worker"]
        assert dl.original == poison and key == b"ws1:+6281300000000"
        result = await redrive(settings, [dl.event_id])
        assert result == {"redriven": [dl.event_id], "skipped": [], "unmarked": []}
        # re-driven is resolved, by "redrive" (issue #25)
        row = await p.fetchrow("SELECT resolved_by, resolved_at FROM sync_failures"
                               " WHERE event_id = $1", dl.event_id)
        assert row is not None and row["resolved_by"] == "redrive" and row["resolved_at"]
        events = await read_topic(settings, settings.topic("events"), 3)
        assert events.count(poison) == 2
    finally:
        await p.stop()
