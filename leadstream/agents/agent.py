"""Faust wiring: apply the domain rules to the source topics, keep state, emit derived records.

`build_topology(app, settings)` declares the tables, agents and timer on an app made from
settings; nothing happens at import (the bootstrap module calls it).

One agent subscribes to the three source topics (events, sarah, commands); all are keyed by
lead_key with the same partition count, so one lead's inputs are handled by one worker, in
order per topic. Their records reach `runner` (agents.batch) per batch, straight from the
consumer; the daily close runs on timer ticks through Faust's per-record path.

Exactly-once effects on an at-least-once broker (Tansu has no transactions), whatever the
order records are (re)processed in. Faust reprocesses from the last commit after a restart,
and faust #596 even processes records *ahead* of the committed offset before seeking back,
so a replay is not in offset order; nothing here depends on that order:
* Inbound events are idempotent by content: a message is counted once per wamid, delivery
  statuses only move forward, timestamps take max/min.
* Sarah updates and commands are applied at most once per event id (a bounded list of recent
  ids per lead), and a Sarah update older than the last applied one is skipped.
* A record that changes nothing re-emits the current derived records it touched (the lead
  snapshot, its message, its note or status change) and writes its state back, so a crash
  anywhere in a flush loses nothing; the replica writes are idempotent, so repeats are
  harmless.
* A record that cannot be decoded or applied goes to the dead-letter topic; the worker goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from leadstream.agents.batch import BatchRunner
from leadstream.agents.daily import DailyWindows
from leadstream.agents.processor import LeadProcessor
from leadstream.broker.faust_consumer import install_batch_source
from leadstream.broker.faust_internals import raw_producer
from leadstream.config import Settings
from leadstream.sink.replica import Replica
from leadstream.streams.topics import TopicNames
from leadstream.tables import Tables, define_tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topology:
    """What the worker's services and metrics need to see of the wiring."""

    app: Any
    names: TopicNames
    tables: Tables
    windows: DailyWindows
    processor: LeadProcessor
    runner: BatchRunner


def build_topology(app: Any, settings: Settings) -> Topology:
    """Declare tables, agents, the daily tick timer and the batch source on `app`."""
    names = TopicNames.from_settings(settings)
    tables = define_tables(app, settings)
    sources = app.topic(
        *names.sources(), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    ticks = app.topic(names.ticks, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw")

    async def send(topic: str, key: bytes, value: bytes) -> Any:
        """Straight to the producer Faust owns, skipping the Topic/Channel layers.
        At-least-once holds: Faust's commit flushes this producer before it commits source
        offsets (faust Consumer._commit_tps). Used by the daily close; the lead agent
        produces per flush."""
        return await app.producer.send(topic, key, value, partition=None, timestamp=None,
                                       headers=None)

    windows = DailyWindows(
        tables.daily_windows, send, names.daily_closed, tz=settings.timezone,
        grace_seconds=settings.daily_close_grace_seconds,
        retention_days=settings.daily_retention_days, partitions=settings.topic_partitions,
    )
    processor = LeadProcessor(tables.lead_state, tables.message_state, names, windows,
                              cache_size=settings.state_cache_entries)
    runner = BatchRunner(
        processor, names, tables=tables.by_name(),
        producer=lambda: raw_producer(app),
        replica=None, max_events=settings.flush_max_events, max_ms=settings.flush_max_ms,
        assigned=lambda: app.consumer.assignment(),  # noqa: PLW0108  # made at start, not now
    )
    if settings.replica_writer == "worker":
        runner.replica = Replica(settings, runner.dead_letter, name="worker")
    if settings.worker_batch:
        install_batch_source(app, runner)

    async def connect_replica() -> None:
        """At start, so `/readyz` tells about Postgres before the first flush."""
        if runner.replica is not None and runner.replica.pool is None:
            await runner.replica.connect()

    async def relearn_daily_windows(sender: Any, /, *args: Any, signal: Any, **kwargs: Any
                                    ) -> None:
        """A partition that comes (back) to this worker may have been changed by another
        one (`args[0]` is the set of assigned TopicPartitions)."""
        windows.forget({tp.partition for tp in args[0]})

    async def leads_agent(stream: Any) -> None:
        """Subscribes the worker to the source topics (and co-partitions the tables with
        them). With the batch path on, the consumer hands these records to `runner` and none
        arrive here; with `LEADSTREAM_WORKER_BATCH=false` each is one flush of its own."""
        async for event in stream.events():
            m = event.message
            await runner.one(m.topic, m.partition, m.offset, m.key, m.value)

    async def daily_close_agent(stream: Any) -> None:
        """Closes due daily windows of the tick's partition (inside its event context)."""
        async for event in stream.events():
            try:
                await runner.close_daily(partial(windows.on_tick, event.message.partition,
                                                 datetime.now(UTC)))
            except Exception:  # a bad window must not stop the ticks
                log.exception("daily close failed in partition %s", event.message.partition)

    async def daily_tick() -> None:
        """One tick per partition; every worker sends them, closing is idempotent."""
        now = datetime.now(UTC).isoformat().encode()
        for p in range(settings.topic_partitions):
            await ticks.send(key=b"tick", value=now, partition=p)

    app.task(connect_replica)
    app.on_partitions_assigned.connect(relearn_daily_windows)
    app.agent(sources, name="leadstream.agents.agent.leads_agent")(leads_agent)
    app.agent(ticks, name="leadstream.agents.agent.daily_close_agent")(daily_close_agent)
    app.timer(interval=settings.daily_tick_seconds, name="leadstream.agents.agent.daily_tick"
              )(daily_tick)
    return Topology(app=app, names=names, tables=tables, windows=windows,
                    processor=processor, runner=runner)
