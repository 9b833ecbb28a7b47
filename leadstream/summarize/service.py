"""Turns closed daily windows into a `lead_daily_activity` row and a summary note.

Consumes `daily-closed` in its own group; for each aggregate (the newest per lead-day in a
batch) writes the row to the `daily` topic and the note to `notes`, then commits. Summaries
run concurrently (bounded by the summarizer), so a slow LLM never blocks the Faust agent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiokafka
from mode import Service

from leadstream.broker.clients import make_consumer, make_producer
from leadstream.config import Settings
from leadstream.domain.daily import DayAggregate, closes_at, summary_records
from leadstream.streams.records import encode
from leadstream.streams.topics import TopicNames
from leadstream.summarize.llm import LLMSummarizer, Summarizer

log = logging.getLogger(__name__)


def make_summarizer(settings: Settings) -> Summarizer:
    if settings.llm_base_url and settings.llm_model:
        return LLMSummarizer(settings.timezone, base_url=settings.llm_base_url,
                             model=settings.llm_model, api_key=settings.llm_api_key,
                             concurrency=settings.llm_concurrency,
                             timeout=settings.llm_timeout_seconds)
    return Summarizer(settings.timezone)


class SummaryService(Service):
    def __init__(self, settings: Settings, summarizer: Summarizer | None = None,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.names = TopicNames.from_settings(settings)
        self.summarizer = summarizer or make_summarizer(settings)
        self.consumer: aiokafka.AIOKafkaConsumer | None = None
        self.producer: aiokafka.AIOKafkaProducer | None = None
        self.summarized = 0

    #: the consumer's max poll interval; half of it is the budget of one batch
    POLL_INTERVAL_MS = 300_000

    @property
    def batch_limit(self) -> int:
        """Windows per poll: bounded so a slow model cannot exceed the poll interval."""
        return self.summarizer.batch_limit(self.POLL_INTERVAL_MS / 1000 / 2)

    async def on_start(self) -> None:
        self.consumer = make_consumer(self.settings, self.names.daily_closed,
                                      group_id=self.settings.app_id + "-summaries",
                                      max_poll_records=self.batch_limit,
                                      max_poll_interval_ms=self.POLL_INTERVAL_MS,
                                      # closed days are not latency-sensitive: poll less
                                      fetch_max_wait_ms=500)
        self.producer = make_producer(self.settings, linger_ms=5)
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        await self.summarizer.close()

    async def summarize_batch(self, aggs: list[DayAggregate]) -> None:
        newest: dict[tuple[str, str], DayAggregate] = {}
        for a in aggs:
            k = (a.lead_key, a.day.isoformat())
            if k not in newest or a.version > newest[k].version:
                newest[k] = a
        assert self.producer is not None
        producer = self.producer

        async def one(a: DayAggregate) -> list[asyncio.Future[Any]]:
            text, used = await self.summarizer(a)
            row, note = summary_records(
                a, text, used, closes_at(a.day, self.settings.timezone,
                                         self.settings.daily_close_grace_seconds))
            key = a.lead_key.encode()
            return [await producer.send(self.names.daily, encode(row), key=key),
                    await producer.send(self.names.notes, encode(note), key=key)]

        if not self.summarizer.waits:
            # a plain loop, not a task per window (the close of 100k windows runs through here)
            futures = [f for a in newest.values() for f in await one(a)]
        else:
            futures = [f for fs in await asyncio.gather(*(one(a) for a in newest.values()))
                       for f in fs]
        await asyncio.gather(*futures)
        self.summarized += len(newest)

    @Service.task
    async def _run(self) -> None:
        assert self.consumer is not None
        # joined here, not in on_start: a join can take seconds (a killed predecessor's
        # session must expire) and the worker's other services start meanwhile
        await self.consumer.start()
        while not self.should_stop:
            polled = await self.consumer.getmany(timeout_ms=200, max_records=self.batch_limit)
            aggs = []
            for rs in polled.values():
                for r in rs:
                    try:
                        aggs.append(DayAggregate.model_validate_json(r.value))
                    except ValueError as exc:
                        log.error("undecodable daily window %s@%s: %s", r.topic, r.offset, exc)
            if aggs:
                await self.summarize_batch(aggs)
            if polled:
                await self.consumer.commit({tp: rs[-1].offset + 1 for tp, rs in polled.items()})
