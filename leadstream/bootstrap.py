"""Where the parts are wired: the worker, the webhook server, the sink alone and the
one-machine stack, each assembled from settings. `cli` only parses arguments and calls these;
nothing here runs at import.

`faust -A leadstream.bootstrap worker` finds the module-level `app` Faust's convention asks
for: it is built (with its topology) on first access, from the environment's settings.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from datetime import time as clock
from typing import Any

from leadstream.agents.agent import Topology, build_topology
from leadstream.app import create_app
from leadstream.config import Settings, get_settings

log = logging.getLogger(__name__)


def faust_app(settings: Settings) -> Topology:
    """The Faust app with its tables, agents and timer declared."""
    return build_topology(create_app(settings), settings)


def build_worker(settings: Settings, *, sink: bool) -> Any:
    """A `faust.Worker` for the agents and tables, with its services: the summarizer, the
    Postgres sink (`sink`), the digest, the stall watch, the reconciler (Kapso's API) and
    the metrics/health server.
    Topics and the replica schema are made first."""
    import faust

    from leadstream.broker.clients import ensure_topics
    from leadstream.broker.faust_internals import (
        raw_producer,
        recovery_progress,
        recovery_state,
    )
    from leadstream.db.migrate import migrate_url
    from leadstream.ops.metrics import WorkerCollector, WorkerWeb
    from leadstream.ops.recovery import RecoveryWatch
    from leadstream.sink.service import PostgresSink
    from leadstream.summarize.service import SummaryService

    asyncio.run(ensure_topics(settings))
    _warn_on_drift(settings)
    if sink or settings.replica_writer == "worker":
        asyncio.run(migrate_url(settings.dsn))
    topology = faust_app(settings)
    app, runner = topology.app, topology.runner

    summaries = SummaryService(settings)
    services: list[Any] = [summaries]
    sink_service = PostgresSink(settings) if sink else None
    if sink_service is not None:
        services.append(sink_service)

    def pool() -> Any:
        """The worker's replica pool (its batch writer's, else its sink's), once connected."""
        for replica in (runner.replica, sink_service.replica if sink_service else None):
            if replica is not None and replica.pool is not None:
                return replica.pool
        return None

    writes_replica = runner.replica is not None or sink_service is not None
    digest = None
    if settings.digest_time != "off" and writes_replica:
        from leadstream.summarize.digest import DigestService

        digest = DigestService(pool, settings.timezone,
                               clock.fromisoformat(settings.digest_time),
                               covers=settings.digest_day, writer=summaries.summarizer)
        services.append(digest)
    stall = _stall_watch(settings, topology) if settings.stall_seconds else None
    if stall is not None:
        services.append(stall)
    collectors: list[Any] = []
    if settings.worker_http_port:
        recovery = RecoveryWatch(lambda: recovery_progress(app))
        services.append(recovery)
        collectors.append(recovery)
    if settings.auto_assign_seconds > 0 and writes_replica:
        from leadstream.team import AutoAssignService

        services.append(AutoAssignService(settings, pool))
    if settings.reconcile_interval_seconds >= 0:
        from leadstream.reconcile import ReconcileService

        reconciler = ReconcileService(settings)
        services.append(reconciler)
        collectors.append(reconciler.collector())
    if settings.worker_http_port:
        services.append(WorkerWeb(
            host=settings.worker_http_host, port=settings.worker_http_port,
            collector=WorkerCollector(runner=runner, windows=topology.windows,
                                      consumer=lambda: app.consumer, sink=sink_service,
                                      summaries=summaries, stall=stall,
                                      state=lambda: recovery_state(app),
                                      group=settings.app_id, digest=digest),
            kafka_client=lambda: raw_producer(app).client,
            pool=pool if writes_replica else None, stall=stall, collectors=collectors,
            state=lambda: recovery_state(app)))
    json_logs = None
    if settings.log_format == "json":
        from leadstream.ops.logs import dict_config

        json_logs = dict_config(settings.log_level)
    worker = faust.Worker(app, *services, loglevel=settings.log_level.upper(), quiet=True,
                          override_logging=True, logging_config=json_logs)
    # Faust's progress spinner sets the root logger to DEBUG whenever the level is WARN or
    # above, so every aiokafka/faust debug call built a LogRecord: ~8% of the worker's CPU
    # (py-spy, bench/suite.py). Without a spinner the root logger keeps the asked level.
    worker.spinner = None
    return worker


def _warn_on_drift(settings: Settings) -> None:
    """At start: a topic that differs from what the code declares is logged (`leadstream
    topics --check` tells the same; `--fix` fixes what can be)."""
    from leadstream.broker.drift import check

    try:
        drift, _ = asyncio.run(check(settings))
    except Exception as exc:  # noqa: BLE001  # a check must never stop a worker from starting
        log.warning("topics not checked: %r", exc)
        return
    for d in drift:
        log.warning("topic drift: %s (leadstream topics --check / --fix)", d)


def _stall_watch(settings: Settings, topology: Topology) -> Any:
    from leadstream.ops.stall import StallWatch, WorkerView

    app, runner = topology.app, topology.runner

    def consumer() -> Any:
        return app.consumer

    return StallWatch(settings, WorkerView(
        assigned=lambda: {tp for tp in consumer().assignment() if tp.topic in runner.topics},
        committed=lambda tp: consumer().position_of(tp),
        paused=lambda: bool(app.rebalancing or getattr(app, "in_recovery", False)),
        describe=lambda: {"consumer": consumer().progress_state(), "batch": runner.state()},
    ), after=settings.stall_seconds)


def run_worker(settings: Settings, *, sink: bool) -> None:
    """Build the worker and run it in the foreground until a signal stops it."""
    worker = build_worker(settings, sink=sink)
    tune_gc()
    log_long_gc_pauses()
    worker.execute_from_commandline()


def tune_gc() -> None:
    """Collect the young generation less often, and keep what was loaded at start out of
    every full collection: a flush allocates many short-lived models (bench/agent_cpu.py:
    83-92 against 97-106 us/event in the rules), a request many short-lived objects."""
    gc.set_threshold(20_000, 50, 100)
    gc.freeze()


def run_sink(settings: Settings) -> None:
    """Only the Postgres sink (derived topics -> replica), in the foreground."""
    from mode import Worker

    from leadstream.db.migrate import migrate_url
    from leadstream.ops.logs import dict_config
    from leadstream.sink.service import PostgresSink

    asyncio.run(migrate_url(settings.dsn))
    Worker(PostgresSink(settings), loglevel=settings.log_level.upper(),
           logging_config=dict_config(settings.log_level) if settings.log_format == "json"
           else None).execute_from_commandline()


async def serve_webhook(settings: Settings, stop: asyncio.Event) -> None:
    """The webhook/API server (`http.server.make_app`) until `stop` is set."""
    if settings.http_processes > 1:
        from leadstream.http.fleet import ServerFleet

        await ServerFleet(settings.http_processes).run(stop)
        return
    from leadstream.http.fleet import die_with_parent
    from leadstream.http.server import serve

    die_with_parent()
    tune_gc()
    await serve(settings, stop)


def one_machine_stack(settings: Settings, *, demo: bool, verbose: bool,
                      notice: Callable[[str], Any]) -> Any:
    """The embedded broker, Postgres and a worker process (`leadstream up`); the caller
    serves the webhook in its own process once `start()` returns the stack's settings."""
    from leadstream.embedded.stack import Stack

    return Stack(settings, demo=demo, verbose=verbose, notice=notice)


def log_long_gc_pauses(over: float = 0.2) -> None:
    """A collection that stops the worker for longer than `over` seconds is logged: it shows
    as a freshness stall, and nothing else would tell."""
    started: list[float] = [0.0]
    gc_log = logging.getLogger("leadstream.gc")

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (took := time.perf_counter() - started[0]) > over:
            gc_log.warning("garbage collection of generation %s stopped the worker %.2f s"
                           " (%s objects collected)", info.get("generation"), took,
                           info.get("collected"))

    gc.callbacks.append(callback)


def __getattr__(name: str) -> Any:
    """`leadstream.bootstrap.app` for Faust's `-A` convention, made once, on first access."""
    if name != "app":
        raise AttributeError(name)
    app = faust_app(get_settings()).app
    globals()["app"] = app
    return app
