"""A worker is not ready while it rebalances or restores its tables, and says which (issue
#28); ready again once both are over."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from leadstream.ops.metrics import WorkerWeb


class _Cluster:
    def brokers(self) -> set[int]:
        return {1}


class _Client:
    async def fetch_all_metadata(self) -> _Cluster:
        return _Cluster()


def _web(state: dict[str, Any]) -> WorkerWeb:
    return WorkerWeb(host="127.0.0.1", port=0, collector=object(),  # type: ignore[arg-type]
                     kafka_client=_Client, pool=None, state=lambda: state)


@pytest.mark.parametrize(("state", "status", "why"), [
    ({"rebalancing": False, "recovering": False, "last_recovery_s": 0.5}, 200, None),
    ({"rebalancing": True, "recovering": False, "last_recovery_s": 0.5}, 503, "rebalancing"),
    ({"rebalancing": True, "recovering": True, "last_recovery_s": 0.5}, 503,
     "restoring tables"),
    ({"rebalancing": False, "recovering": True, "last_recovery_s": None}, 503,
     "restoring tables"),
    # just started: not yet in the group, nothing restored
    ({"rebalancing": False, "recovering": False, "last_recovery_s": None}, 503, "starting"),
])
async def test_ready_only_between_rebalances_and_recoveries(state: dict[str, Any], status: int,
                                                            why: str | None) -> None:
    started = time.monotonic() - 4.0
    resp = await _web({**state, "recovery_started": started})._readyz(None)  # type: ignore[arg-type]
    assert resp.status == status
    assert resp.body is not None
    body = orjson.loads(resp.body)  # type: ignore[arg-type]
    assert body.get("not_ready") == why and body["broker"] is True
    if state["recovering"]:
        assert body["recovering_s"] >= 4.0
