"""The agents' rules on plain dicts, without a broker or Faust: the sends a daily close makes
(`Sent`), the windows on a dict table, and `DictWorker`, the processor with what a flush makes
durable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from leadstream.agents import BatchRunner, Flush, LeadProcessor
from leadstream.agents.daily import DailyWindows
from leadstream.domain.daily import DayAggregate
from leadstream.streams.topics import TopicNames
from tests.support import env_settings

TZ = "Asia/Jakarta"  # UTC+7
P = 4
NAMES = TopicNames.from_settings(env_settings(LEADSTREAM_TOPIC_PREFIX="tp"))
NOW = datetime.now(UTC) - timedelta(hours=1)


class Sent(list[tuple[str, bytes, bytes]]):
    async def __call__(self, topic: str, key: bytes, value: bytes) -> Any:
        self.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def aggregates(self) -> list[DayAggregate]:
        return [DayAggregate.model_validate_json(v) for _, _, v in self]


def windows(table: dict[bytes, bytes], sent: Sent) -> DailyWindows:
    return DailyWindows(table, sent, "closed", tz=TZ, grace_seconds=600, retention_days=7,
                        partitions=P)


class DictWorker:
    """The processor and what a flush makes durable, on dicts: `run` applies records as one
    flush and returns its outputs; `crash` drops the store writes (a crash after the
    broker took the flush, before the stores were written)."""

    def __init__(self, cache_size: int = 5_000) -> None:
        """`cache_size`: the processor's `flush.Decoded` bound (0: decode every read)."""
        self.leads: dict[bytes, bytes] = {}
        self.messages: dict[bytes, bytes] = {}
        self.daily: dict[bytes, bytes] = {}
        self.windows: DailyWindows = windows(self.daily, Sent())
        self.proc = LeadProcessor(self.leads, self.messages, NAMES, self.windows,
                                  cache_size=cache_size)
        self.tables = {"leads": _Table(self.leads, "cl-leads"),
                       "messages": _Table(self.messages, "cl-messages"),
                       "daily": _Table(self.daily, "cl-daily")}
        self.runner = BatchRunner(self.proc, NAMES, tables=self.tables, producer=lambda: None,
                                  replica=None, max_events=5000, max_ms=50)
        self.changelog: list[tuple[str, bytes, bytes]] = []

    def run(self, records: list[tuple[str, bytes]], *, crash: bool = False
            ) -> list[tuple[str, bytes, bytes]]:
        flush: Flush = self.proc.begin()
        for offset, (topic, value) in enumerate(records):
            self.proc.handle(flush, topic, 0, offset, orjson.loads(value)["lead_key"].encode(),
                             value)
        produce, writes, _ = self.runner.records(flush)
        out = [(t, k, v) for (t, _), recs in produce.items() for k, v in recs]
        out += flush.out.other
        self.changelog += [r for r in out if r[0].startswith("cl-")]
        if not crash:
            for name, items in writes.items():
                for _, key, value in items:
                    self.tables[name].data[key] = value
        return [r for r in out if not r[0].startswith("cl-")]


class _Table:
    def __init__(self, data: dict[bytes, bytes], changelog: str) -> None:
        self.data = data
        self.changelog_topic = type("T", (), {"get_topic_name": lambda _self: changelog})()
