"""Faust's consumer "thread" run on the worker's own event loop.

Faust runs aiokafka in a `mode.QueueServiceThread`: a second thread with its own event loop,
and every call into it (`getmany`, `commit`, `seek`, ...) goes through a method queue, a
`call_soon_threadsafe` (a self-pipe write) each way. At 200 events/s py-spy put half of the
worker's samples in that machinery and the two loops' `select`, against 11% in our rules
(BENCHMARKS.md, session 14). aiokafka itself is written for one loop; the thread only kept
Faust's main loop free of the consumer's work, and our worker's main loop does nothing but
feed the consumer's records to the batch runner. Measured against the thread (two pairs,
session 15): the worker's CPU per event at 200/s 0.62/0.69 -> 0.60/0.61 ms, the rest within
noise: most of what the profile put in the thread was aiokafka's own fetch work, which
stays; what goes is the cross-thread hand-off.

`InLoopConsumerThread` keeps Faust's consumer-thread class (its rebalance listener, commit,
seek and fetch methods) and runs it as a plain `mode.Service` on the caller's loop:
`call_thread` awaits the method itself, and start and stop are a service's. Rebalance
callbacks still reach the consumer through its method queue (rare, and their ordering is
Faust's), now on the same loop.

What the thread bought and this gives up: aiokafka's heartbeat and fetches ran while the
main loop was busy. On one loop a heartbeat waits for the current step of the loop; the
longest of ours is one flush's rules (0.3-0.4 s for 5,000 events), far inside the session
timeout (`broker_session_timeout`, 60 s) and its heartbeat interval (3 s).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service
from mode.utils.futures import maybe_async


class InLoopConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, minus the thread (module docstring)."""

    #: a thread sets its shutdown event when its loop ends; a service on our loop has
    #: nothing to wait for after its own stop
    wait_for_shutdown = False

    def __init__(self, *args: Any, loop: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, loop=loop, thread_loop=loop, **kwargs)

    # -- a service, not a thread (mode.threads.ServiceThread overrides each of these)

    async def maybe_start(self) -> bool:
        return await Service.maybe_start(self)

    async def start(self) -> None:
        await Service.start(self)

    async def stop(self) -> None:
        await Service.stop(self)

    def _stopped_set(self) -> None:
        self._stopped.set()

    def set_shutdown(self) -> None:
        self._shutdown.set()

    async def _stop_children(self) -> None:
        await self._default_stop_children()

    async def _stop_futures(self) -> None:
        await self._default_stop_futures()

    async def _stop_exit_stacks(self) -> None:
        await self._default_stop_exit_stacks()

    async def on_stop(self) -> None:
        """What the thread did as its loop ended (`on_thread_stop`): stop aiokafka."""
        if self._consumer is not None:
            await self._consumer.stop()

    # -- calls "into the thread" are plain awaits

    async def call_thread(self, fun: Callable[..., Awaitable[Any] | Any],
                          *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Awaitable[Any] | Any],
                          *args: Any, **kwargs: Any) -> None:
        self.add_future(maybe_async(fun(*args, **kwargs)))
