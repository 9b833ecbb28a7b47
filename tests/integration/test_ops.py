"""What the operator on call uses (issue #16): `--version`, `workspace list|revoke`,
`status` (lag per group and partition, dead letters, replica freshness), the worker's
`/healthz`, `/readyz` and `/metrics`, the webhook's `/readyz`, and one line instead of a
traceback when a service is missing."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from leadstream.config import Settings
from tests.support.cli import acli, cli
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import PNID, TOKEN, Pipeline, eventually

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(s: Settings) -> dict[str, str]:
    return s.to_env()


def test_version() -> None:
    r = cli(["--version"])
    assert r.exit_code == 0 and r.output.startswith("leadstream ")


def test_a_missing_database_is_one_line_not_a_traceback() -> None:
    r = cli(["workspace", "list"],
            env={"DATABASE_URL": f"postgresql://x:y@127.0.0.1:{_free_port()}/z",
                 "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: cannot reach Postgres") and "Traceback" not in r.output


BOT = "bot-token-0123456789"


async def test_workspace_list_and_revoke(pipeline: Pipeline) -> None:
    env = _env(pipeline.settings)
    # issue #24: a short or empty secret or token is refused; a number or token of another
    # workspace moves only with --move
    for args in (["--api-token", "short"], ["--phone-number-id", "p9", "--webhook-secret", ""],
                 ["--phone-number-id", "p9", "--webhook-secret", "x" * 15]):
        r = await acli(["workspace", "add", "--id", "ws1", *args], env=env)
        assert r.exit_code == 2 and "at least 16 characters" in r.output, r.output
    r = await acli(["workspace", "add", "--id", "ws9", "--phone-number-id", PNID,
                    "--webhook-secret", "y" * 20], env=env)
    assert r.exit_code == 1 and "belongs to workspace ws1" in r.output, r.output
    r = await acli(["workspace", "rotate-secret", "--phone-number-id", PNID,
                    "--new-secret", ""], env=env)
    assert r.exit_code == 2 and "at least 16" in r.output
    r = await acli(["workspace", "add", "--id", "ws1", "--api-token", BOT,
                             "--role", "brain-bot"], env=env)
    assert r.exit_code == 0, r.output
    listed: Any = await acli(["workspace", "list"], env=env)
    assert listed.exit_code == 0 and "ws1" in listed.output and PNID in listed.output
    assert "brain-bot" in listed.output and BOT not in listed.output  # no secrets
    assert "ws9" not in listed.output  # the refused move changed nothing

    async def status_of(token: str) -> int:
        async with aiohttp.ClientSession() as s, s.get(
                pipeline.base + "/api/leads",
                headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status

    assert await eventually(lambda: _is(status_of(BOT), 200), timeout=15)
    r = await acli(["workspace", "revoke", "--api-token", BOT], env=env)
    assert r.exit_code == 0 and "revoked 1" in r.output, r.output
    assert await eventually(lambda: _is(status_of(BOT), 401), timeout=15)
    assert await status_of(TOKEN) == 200  # the others keep working
    r = await acli(["workspace", "revoke", "--api-token", BOT], env=env)
    assert r.exit_code == 1 and "nothing matched" in r.output


async def _is(coro: object, want: int) -> bool:
    return await coro == want  # type: ignore[misc]


async def test_status_shows_lag_while_the_worker_is_away(
        pipelines: StartPipeline, settings: Settings,
        tmp_path: Path) -> None:
    p = await pipelines(settings)
    env = _env(settings)
    try:
        for i in range(5):
            assert await p.message(f"62812{50000000 + i:08d}", f"wamid.st{i}") == 200
        await eventually(lambda: p.fetchrow("SELECT 1 FROM leads HAVING count(*) = 5"),
                         timeout=60)
        await eventually(lambda: _worker_lag(env, 0), timeout=30)  # committed: no lag
        p.worker.stop()
        for i in range(7):
            assert await p.message(f"62812{50000000 + i:08d}", f"wamid.st2.{i}") == 200
        assert await eventually(lambda: _worker_lag(env, 7), timeout=30)
        text = (await acli(["status"], env=env)).output
        assert "worker" in text and "lag 7" in text and "replica: 5 leads" in text
        p.worker.start()
        assert await eventually(lambda: _worker_lag(env, 0), timeout=90)
    finally:
        await p.stop()


async def _worker_lag(env: dict[str, str], want: int) -> bool:
    import orjson

    r = await acli(["status", "--json"], env=env)
    if r.exit_code != 0:
        return False
    got = orjson.loads(r.output)["lag"]["worker"]
    return bool(got["total"] == want)


async def test_worker_and_webhook_health_and_metrics(
        pipelines: StartPipeline, settings: Settings, tmp_path: Path
        ) -> None:
    port = _free_port()
    s = settings.model_copy(update={"worker_http_port": port})
    p = await pipelines(s)
    worker = f"http://127.0.0.1:{port}"
    try:
        assert await p.message("6281250100000", "wamid.m1") == 200
        await eventually(lambda: p.fetchrow("SELECT 1 FROM leads"), timeout=60)
        async with aiohttp.ClientSession() as http:
            async def get(url: str) -> tuple[int, str]:
                try:
                    async with http.get(url) as r:
                        return r.status, await r.text()
                except aiohttp.ClientError:
                    return -1, ""

            assert (await eventually(lambda: _status(get(worker + "/healthz"))))[0] == 200
            ready = await eventually(lambda: _status(get(worker + "/readyz")), timeout=30)
            assert ready[0] == 200 and '"broker": true' in ready[1].replace('":true', '": true')
            _, text = await get(worker + "/metrics")
            assert 'leadstream_worker_events_total{outcome="applied"} 1.0' in text, text
            assert f'leadstream_worker_consumer_lag{{group="{s.app_id}",' in text
            assert "process_resident_memory_bytes" in text and "python_gc_collections_total" in text
            assert "leadstream_worker_flushes_total" in text
            # freshness: the flush that wrote the message's rows, inside the histogram
            count = re.search(r"^leadstream_worker_freshness_seconds_count (\S+)$", text, re.M)
            inf = re.search(r'^leadstream_worker_freshness_seconds_bucket\{le="\+Inf"\} (\S+)$',
                            text, re.M)
            assert count and inf and float(count[1]) >= 1 and inf[1] == count[1], text
            assert 'leadstream_reconcile_runs_total{outcome="ok"}' in text
            # the start's table recovery, per changelog partition (nothing left to restore)
            restored = re.findall(r'^leadstream_worker_recovery_remaining_records\{partition='
                                  r'"\d+",topic="[^"]+changelog"\} (\S+)$', text, re.M)
            assert restored and set(restored) == {"0.0"}, text
            assert re.search(r"^leadstream_worker_partition_recovery_seconds\{", text, re.M)
            # every group's lag, read from the broker by the webhook/API server
            _, served = await get(p.base + "/metrics")
            assert re.search(rf'^leadstream_group_lag{{group="{s.app_id}",partition="\d+",'
                             r'role="worker",topic="[^"]+"\} \d', served, re.M), served
            assert 'role="summarizer"' in served
            assert 'leadstream_dependency_up{dependency="postgres"} 1.0' in served
            assert 'leadstream_dependency_up{dependency="broker"} 1.0' in served
            assert 'leadstream_dependency_up{dependency="postgres"} 1.0' in text
            status, body = await get(p.base + "/readyz")
            assert status == 200 and "database" in body
            status, _ = await get(p.base + "/healthz")
            assert status == 200
    finally:
        await p.stop()


async def _status(coro: object) -> tuple[int, str] | None:
    got = await coro  # type: ignore[misc]
    return got if got[0] == 200 else None


def test_json_log_lines() -> None:
    import logging

    import orjson

    from leadstream.ops.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("leadstream.x", logging.ERROR, __file__, 1, "bad %s", ("row",),
                                sys.exc_info())
    line = orjson.loads(JsonFormatter().format(rec))
    assert line["level"] == "error" and line["msg"] == "bad row" and "ValueError" in line["exc"]
    assert line["logger"] == "leadstream.x" and line["ts"].endswith("+00:00")


def test_json_log_lines_carry_the_context_they_are_about() -> None:
    import logging

    import orjson

    from leadstream.ops.logs import JsonFormatter, annotate, log_context, record_context

    def line(**extra: object) -> dict[str, object]:
        rec = logging.LogRecord("leadstream.x", logging.ERROR, __file__, 1, "m", (), None)
        for k, v in extra.items():
            setattr(rec, k, v)
        return orjson.loads(JsonFormatter().format(rec))

    assert set(line()) == {"ts", "level", "logger", "msg", "process"}
    annotate(workspace="nowhere")  # outside a context: nothing
    assert "workspace" not in line()
    with log_context(request_id="r1"):
        annotate(workspace="ws1")
        assert (line()["request_id"], line()["workspace"]) == ("r1", "ws1")
        with log_context(request_id="r2", stage=None):
            assert line()["request_id"] == "r2" and "stage" not in line()
        assert line()["request_id"] == "r1"
        # a line's own `extra=` wins over the task's context
        got = line(**record_context("ls.events", 3, 1207, b"ws9:+628123", stage="worker"))
        assert {k: got[k] for k in ("request_id", "workspace", "topic", "partition", "offset",
                                    "stage")} == {
            "request_id": "r1", "workspace": "ws9", "topic": "ls.events", "partition": 3,
            "offset": 1207, "stage": "worker"}
    assert "request_id" not in line()
    assert "workspace" not in record_context("ls.dlq", 0, 5, b"bare-id")
