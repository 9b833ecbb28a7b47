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
    aiokafka client, which tries its known brokers in turn and speaks the metadata version
    the broker supports); the whole probe takes at most `timeout`."""
    try:
        cluster = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
    except Exception:  # noqa: BLE001  # unreachable, timed out, refused: not ready, whatever the error
        return False
    return bool(cluster.brokers())


async def database_ready(pool: asyncpg.Pool | None, timeout: float = PROBE_SECONDS) -> bool:
    if pool is None:
        return False
    try:
        return bool(await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout))
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
