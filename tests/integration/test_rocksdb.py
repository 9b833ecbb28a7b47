"""The production table store (`rocksdb://`, docker-compose.yml) under the batch path: the
flush writes each partition's store through a stand-in for Faust's current event, so a lead's
state must land in (and be read back from) its own partition's database, across a restart
and a SIGKILL."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadstream.config import Settings
from tests.support.faults import converge, oracle, workload
from tests.support.fixtures import StartPipeline

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_state_in_rocksdb_survives_a_restart_and_a_sigkill(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    pytest.importorskip("rocksdict")
    s = settings.model_copy(update={"table_store": "rocksdb://",
                                    "data_dir": tmp_path / "data"})
    waves = [workload(leads=12, per_lead=3, seed=50 + i, first_phone=43_000_000)
             for i in range(3)]
    p = await pipelines(s)
    try:
        acked = []
        for i, wave in enumerate(waves):
            for d in wave:
                assert await p.kapso(d.event, d.body) == 200
            acked += wave
            result = await converge(p, *oracle(acked), timeout=120)
            assert result.equal, (i, result)
            if i == 0:
                p.worker.stop()  # a clean stop: the stores are closed and reopened
            elif i == 1:
                p.worker.kill()  # no goodbye: the stores and the changelog must agree
            if i < 2:
                p.worker.start()
        assert any((tmp_path / "data").rglob("*lead-state*")), "no RocksDB files written"
    finally:
        await p.stop()
