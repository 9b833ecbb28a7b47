"""GroupLagCollector: the groups' lag read from the broker at most every `every` seconds,
when scraped; a failed reading exports no stale figures (issue #28). The reading itself
runs against a real broker in tests/integration/test_monitoring.py."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from leadstream.ops import lag
from tests.support import env_settings

READING = {"worker": {"group": "leadstream", "total": 7, "partitions": [
    {"topic": "ls.events", "partition": 0, "committed": 3, "end": 10, "lag": 7}]}}


def exported(c: lag.GroupLagCollector) -> str:
    registry = CollectorRegistry()
    registry.register(c)
    return generate_latest(registry).decode()


async def test_readings_are_throttled_and_a_failure_drops_the_figures(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    async def read(settings: Any, *, timeout: float) -> dict[str, Any]:
        calls.append(timeout)
        if len(calls) == 3:
            raise OSError("broker away")
        return READING

    monkeypatch.setattr(lag, "read_lag", read)
    c = lag.GroupLagCollector(env_settings(), every=0.05, timeout=2.0)
    assert "leadstream_group_lag{" not in exported(c)  # not read yet
    await c.refresh()
    await c.refresh()  # within `every`: the same reading
    assert calls == [2.0]
    text = exported(c)
    assert ('leadstream_group_lag{group="leadstream",partition="0",role="worker",'
            'topic="ls.events"} 7.0') in text
    assert "leadstream_group_lag_read_failures_total 0.0" in text
    c.read_at = -1e9
    await c.refresh()
    c.read_at = -1e9
    await c.refresh()  # the third reading fails
    text = exported(c)
    assert "leadstream_group_lag{" not in text
    assert "leadstream_group_lag_read_failures_total 1.0" in text
