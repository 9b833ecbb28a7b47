"""Readiness probes shared by every long-running process (contract §5: `/readyz` is 200 only
while the broker and the database answer *now*). Each probe is bounded in time, so a probe
against a dead service answers 503 within about a second instead of hanging."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

PROBE_SECONDS = 1.5


async def broker_ready(client: Any, timeout: float = PROBE_SECONDS) -> bool:
    """Some broker of the cluster answers a metadata request now (`client`: the process's
    aiokafka client). Brokers are tried in turn, so one dead broker of three is not
    "unready"; the whole probe takes at most `timeout`."""
    from aiokafka.protocol.metadata import MetadataRequest

    nodes = [b.nodeId for b in client.cluster.brokers()] or [client.get_random_node()]
    per = timeout / max(1, len(nodes))
    for node in nodes:
        if node is None:
            continue
        try:
            resp = await asyncio.wait_for(client.send(node, MetadataRequest[0]([])), per)
        except Exception:  # an unreachable broker, whatever the error
            continue
        if resp.brokers:
            return True
    return False


async def database_ready(pool: asyncpg.Pool | None, timeout: float = PROBE_SECONDS) -> bool:
    if pool is None:
        return False
    try:
        return bool(await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
