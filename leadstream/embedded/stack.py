"""The one-machine stack behind `leadstream up`: broker, Postgres, topics, schema, demo
workspace, runtime file and worker, started in that order and stopped in reverse.

A service named by the environment (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`) is used as it
is; otherwise an embedded one is started (`embedded.broker.choose` picks Apache Kafka or
Tansu). What persists across `up` runs follows the broker: Apache Kafka keeps its log in the
data directory, so Postgres and the worker state are kept with it; Tansu keeps its log in
memory, so both are reset on every start, to stay consistent with an empty log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from leadstream.config import Settings
from leadstream.embedded.broker import EmbeddedBroker, choose, start_broker
from leadstream.embedded.postgres import EmbeddedPostgres
from leadstream.embedded.procs import die_with_parent
from leadstream.runtime import read_runtime, remove_runtime, write_runtime

DEMO: dict[str, Any] = {"workspace_id": "demo", "phone_number_id": "demo-pnid",
                        "webhook_secret": "demo-secret", "api_token": "demo-token",
                        "role": "human", "verify_token": "demo-verify", "user": "Dewi (demo)"}
#: the demo's bot tokens (simulate.Credentials has the same)
DEMO_BOTS = (("demo-sarah-token", "sarah-bot"), ("demo-brain-token", "brain-bot"))


class Stack:
    """Start with `start()` (returns the settings the children use), stop with `stop()`."""

    def __init__(self, settings: Settings, *, demo: bool = True, verbose: bool = False,
                 notice: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.demo = demo
        self.verbose = verbose
        self.notice = notice
        self.data_dir = settings.data_dir.absolute()
        #: where the worker's output goes unless `verbose` (the broker and Postgres keep
        #: theirs in their own directories)
        self.log_dir = self.data_dir / "logs"
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.broker_name = "external"

    def start(self) -> Settings:
        if read_runtime(self.data_dir):
            raise RuntimeError(f"a `leadstream up` is already running for {self.data_dir}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        fresh = False
        if not self.settings.kafka_bootstrap_servers:
            kind, why = choose(self.settings.embedded_broker)
            if why:
                self.notice(why)
            fresh = kind == "tansu"  # memory storage: every start is an empty log
            if fresh:
                shutil.rmtree(self.data_dir / "worker-state", ignore_errors=True)
            self.broker = start_broker(kind, self.data_dir / ("kafka" if kind == "kafka"
                                                              else "tansu"))
            self.broker_name = self.broker.name
            env.update(KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap,
                       LEADSTREAM_KAFKA_FLAVOR=self.broker.flavor)
        if not self.settings.database_url:
            if fresh:
                shutil.rmtree(self.data_dir / "pg", ignore_errors=True)
            self.postgres = EmbeddedPostgres(self.data_dir / "pg").start()
            env["DATABASE_URL"] = self.postgres.url
        os.environ.update(env)
        self.settings = Settings()
        if self.demo and not self.demo_is_safe():
            self.notice("no demo workspace: its credentials are public, so it is registered "
                        "only with the embedded Postgres and a loopback bind")
            self.demo = False
        asyncio.run(self._prepare())
        write_runtime(self.data_dir, {
            "kafka_bootstrap_servers": self.settings.bootstrap,
            "kafka_flavor": self.settings.kafka_flavor, "broker": self.broker_name,
            "database_url": self.settings.dsn, "http": self.base_url,
        })
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = None if self.verbose else (self.log_dir / "worker.log").open("ab")
        try:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "leadstream", "worker"],
                env={**os.environ, "LEADSTREAM_DATA_DIR": str(self.data_dir)},
                stdout=out, stderr=subprocess.STDOUT if out else None,
                preexec_fn=die_with_parent)  # no orphan if `up` is killed
        finally:
            if out is not None:
                out.close()
        return self.settings

    async def _prepare(self) -> None:
        import asyncpg

        from leadstream.broker.clients import ensure_topics
        from leadstream.db.migrate import migrate
        from leadstream.db.registry import add_workspace

        await ensure_topics(self.settings)
        conn = await asyncpg.connect(self.settings.dsn)
        try:
            await migrate(conn)
            if self.demo:
                await add_workspace(conn, region=self.settings.default_region, **DEMO)
                for token, role in DEMO_BOTS:
                    await add_workspace(conn, workspace_id="demo", phone_number_id=None,
                                        webhook_secret=None, api_token=token, role=role)
        finally:
            await conn.close()

    def demo_is_safe(self) -> bool:
        """The demo's well-known secret and token only where nobody else can reach them
        and no real data lives: our own embedded Postgres, served on a loopback address."""
        import ipaddress

        try:
            loopback = (self.settings.http_host == "localhost"
                        or ipaddress.ip_address(self.settings.http_host).is_loopback)
        except ValueError:
            loopback = False
        return self.postgres is not None and loopback

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def stop(self) -> None:
        """Worker, then Postgres, then the broker; each waits for its process to end."""
        if self.worker is not None and self.worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait(5)
        if self.postgres is not None:
            self.postgres.stop()
        if self.broker is not None:
            self.broker.stop()
        remove_runtime(self.data_dir)

    def summary(self) -> list[str]:
        """What runs where, in a few lines (the services' own logs are in files)."""
        base = self.base_url
        lines = [
            "leadstream is up",
            f"  dashboard       {base}/",
            f"  webhooks        {base}/webhooks/kapso   {base}/webhooks/whatsapp",
            f"  API             {base}/api/leads",
            f"  broker          {self.broker_name} at {self.settings.bootstrap}",
            f"  DATABASE_URL    {self.settings.dsn}",
        ]
        if self.demo:
            lines += ["  demo workspace  id=demo  number demo-pnid, webhook secret demo-secret",
                      "                  tokens: demo-token (Dewi, human), demo-sarah-token,"
                      " demo-brain-token"]
        if not self.verbose:
            lines.append(f"  logs            {self.log_dir}/ (--verbose shows them here)")
        lines.append("Ctrl-C stops everything.")
        return lines

