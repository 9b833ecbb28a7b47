"""The worker's consumer on its own event loop (leadstream.broker.in_loop): no thread, no
second loop, calls into the consumer awaited in place, aiokafka stopped with the service."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import pytest
from faust.types import TP

from leadstream.app import create_app
from leadstream.broker.in_loop import InLoopConsumerThread
from leadstream.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.tansu]


async def test_the_consumer_runs_on_the_callers_loop_without_a_thread(
        settings: Settings) -> None:
    app = create_app(settings)
    thread = cast(Any, app.consumer)._thread
    assert isinstance(thread, InLoopConsumerThread)
    loop = asyncio.get_running_loop()
    assert thread.thread_loop is loop
    before = set(threading.enumerate())

    await thread.start()
    try:
        assert set(threading.enumerate()) == before  # no consumer thread was started
        consumer = thread._ensure_consumer()
        assert not consumer._closed

        def where() -> tuple[int, asyncio.AbstractEventLoop]:
            return threading.get_ident(), asyncio.get_running_loop()

        assert await thread.call_thread(where) == (threading.get_ident(), loop)
        # a real round trip to the broker through Faust's consumer-thread method
        topic = f"{settings.topic_prefix}.in-loop"
        await app.consumer.create_topic(topic, 1, 1, ensure_created=True)
        tp = TP(topic, 0)
        assert await thread.earliest_offsets(tp) == {tp: 0}
    finally:
        await thread.stop()
    assert consumer._closed
    assert set(threading.enumerate()) == before
