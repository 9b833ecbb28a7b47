"""The suite's fixtures, loaded by the root conftest (`pytest_plugins`): a real broker and
Postgres for the whole session (embedded unless the environment names them), per-test
isolation (each test gets its own database, topic prefix and app id), and the pipeline
factory every test that runs the pipeline starts it from."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from leadstream.config import Settings
from tests.support import env_settings
from tests.support.figures import FIGURES, FUZZ
from tests.support.pipeline import Pipeline

#: Apache Kafka in tests: the log cleaner looks for work every second (default 15 s), so the
#: compaction test waits seconds, not minutes
TEST_BROKER_PROPS = {"log.cleaner.backoff.ms": "1000"}
#: the embedded broker the session runs on, for the figures at the end
BROKER_NAME: list[str] = []


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(bootstrap, flavor): KAFKA_BOOTSTRAP_SERVERS if set, else the embedded broker that
    LEADSTREAM_EMBEDDED_BROKER picks (auto: Apache Kafka where Java 17+ and Maven are)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ.get(
            "LEADSTREAM_KAFKA_FLAVOR", "kafka")
        return
    from leadstream.embedded.broker import start_broker

    b = start_broker(os.environ.get("LEADSTREAM_EMBEDDED_BROKER", "auto"),
                     tmp_path_factory.mktemp("broker"), server_props=TEST_BROKER_PROPS)
    BROKER_NAME.append(b.name)
    yield b.bootstrap, b.flavor
    b.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Postgres server's maintenance database."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    import shutil
    import tempfile

    from leadstream.embedded.postgres import EmbeddedPostgres

    # not under pytest's basetemp: a pytest session that starts meanwhile makes
    # /tmp/pytest-of-<user> private again (0700), and the server, which runs as its own
    # user, would lose its data directory
    root = Path(tempfile.mkdtemp(prefix="leadstream-test-pg-"))
    pg = EmbeddedPostgres(root / "data", fsync=False).start()
    yield pg.url
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def database(pg_server: str) -> AsyncIterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    yield _with_db(pg_server, name)
    conn = await asyncpg.connect(pg_server)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def drop_topics(bootstrap: str, tags: list[str]) -> None:
    """Delete every topic whose name holds one of `tags` (a test's own prefixes): a broker
    that keeps the topics of a thousand tests answers every full metadata request with
    thousands of partitions, which slows and strains every client late in the suite."""
    import asyncio
    import threading

    from aiokafka.admin import AIOKafkaAdminClient

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if any(tag in t for tag in tags)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(go(), 30))
        except Exception as exc:  # noqa: BLE001  # cleanup only: never fail a test over it
            print(f"could not delete the test's topics: {exc!r}")

    t = threading.Thread(target=run)  # its own loop, whatever the test's loop is doing
    t.start()
    t.join(40)


#: tags of topics a test made itself (beyond its settings' prefix), dropped with its own
EXTRA_TAGS: list[str] = []


@pytest.fixture
def settings(broker: tuple[str, str], database: str, tmp_path: Path) -> Iterator[Settings]:
    """The test's own topics (prefix, app id, sink group), deleted after it with those a
    test names in `EXTRA_TAGS`."""
    tag = uuid.uuid4().hex[:8]
    yield env_settings(
        KAFKA_BOOTSTRAP_SERVERS=broker[0],
        LEADSTREAM_KAFKA_FLAVOR=broker[1],
        DATABASE_URL=database,
        LEADSTREAM_TOPIC_PREFIX=f"t{tag}",
        LEADSTREAM_APP_ID=f"app-{tag}",
        LEADSTREAM_SINK_GROUP=f"sink-{tag}",
        LEADSTREAM_DATA_DIR=tmp_path / "data",
        LEADSTREAM_TOPIC_PARTITIONS=4,
        LEADSTREAM_LOG_LEVEL="info",
        # the digest service writes at a wall-clock time; tests read digests on demand and
        # run the service themselves (tests/http/test_api_team.py)
        LEADSTREAM_DIGEST_TIME="off",
    )
    tags, EXTRA_TAGS[:] = [tag, *EXTRA_TAGS], []
    drop_topics(broker[0], tags)


@pytest.fixture
def kafka_settings(settings: Settings) -> Settings:
    """`settings`, for a test that needs Apache Kafka itself (skipped on Tansu)."""
    if settings.kafka_flavor != "kafka":
        pytest.skip("needs Apache Kafka (the broker under test is Tansu)")
    return settings


class StartPipeline(Protocol):
    def __call__(self, s: Settings | None = None, *, worker: bool = True,
                 tmp: Path | None = None) -> Awaitable[Pipeline]: ...


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so a fixture's teardown knows it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
async def pipelines(request: pytest.FixtureRequest, settings: Settings,
                    tmp_path: Path) -> AsyncIterator[StartPipeline]:
    """The one way a test starts the real pipeline (tests/support/pipeline.py):
    `await pipelines(settings=..., worker=..., tmp=...)`, each stopped after the test; the
    workers' logs are printed when the test failed."""
    started: list[Pipeline] = []

    async def start(s: Settings | None = None, *, worker: bool = True,
                    tmp: Path | None = None) -> Pipeline:
        p = await Pipeline(s or settings, str(tmp or tmp_path)).start(worker=worker)
        started.append(p)
        return p

    yield start
    report = getattr(request.node, "report_call", None)
    for p in reversed(started):
        if report is not None and report.failed and p.worker.proc is not None:
            print(p.worker.log_tail())
        await p.stop()


@pytest.fixture
async def pipeline(pipelines: StartPipeline) -> Pipeline:
    """The real pipeline, webhook and worker, for one test."""
    return await pipelines()


@pytest.fixture
async def web(pipelines: StartPipeline) -> Pipeline:
    """The webhook/API side of the pipeline alone (no worker)."""
    return await pipelines(worker=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's figures (events sent, faults injected, lost, duplicated, recovery)."""
    w = terminalreporter
    if FUZZ:
        w.section("fuzzing")
    for f in FUZZ:
        line = (f"{f.get('what', 'webhooks')}: {f['cases']} cases in {f['seconds']} s; answers "
                f"{f['statuses']}; 5xx: {f['5xx']}; ")
        if "signed" in f:
            line += (f"signed cases {f['signed']}: events accepted {f['accepted']}, items "
                     f"dead-lettered {f['dead_lettered']}; ")
        w.write_line(line + f"probe visible after {f['probe_visible_s']} s")
    if not FIGURES:
        return
    w.section(f"fault suite figures ({', '.join(BROKER_NAME) or 'external broker'})")
    w.write_line(f"{'scenario':40} {'sent':>6} {'acked':>6} {'lost':>5} {'dup':>4} "
                 f"{'recover s':>9}  faults")
    for f in FIGURES:
        w.write_line(f"{f['scenario']:40} {f['sent']:>6} {f['acked']:>6} {f['lost']:>5} "
                     f"{f['duplicated']:>4} {f['recover_s']:>9}  {f['faults']}")
