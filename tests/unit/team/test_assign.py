"""The automatic-assignment service (team.assign) in a worker: a Postgres that fails or a pool
closed under it (a worker stopping, a failover) is logged and retried, never a crashed
service (a crashed service stops the worker: session 11 found it with a closed pool)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from leadstream.team import AutoAssignService
from tests.support import env_settings


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    async def fetch(self, *_: Any) -> Any:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc", [asyncpg.InterfaceError("pool is closed"),
                                 asyncpg.CannotConnectNowError("starting up"),
                                 OSError("connection refused")])
async def test_a_failing_pool_is_retried_never_a_crash(exc: Exception,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    pool = _Failing(exc)
    service = AutoAssignService(env_settings(LEADSTREAM_AUTO_ASSIGN_SECONDS="0.02"),
                                lambda: pool)
    await service.start()
    try:
        for _ in range(100):
            if pool.calls >= 3:
                break
            await asyncio.sleep(0.02)
        assert pool.calls >= 3  # it kept going after the first failure
        assert not service.crashed
    finally:
        await service.stop()
    assert "auto-assign run failed" in caplog.text


async def test_no_pool_yet_is_no_work() -> None:
    service = AutoAssignService(env_settings(LEADSTREAM_AUTO_ASSIGN_SECONDS="0.02"),
                                lambda: None)
    await service.start()
    await asyncio.sleep(0.1)
    assert not service.crashed and service.producer is None
    await service.stop()
