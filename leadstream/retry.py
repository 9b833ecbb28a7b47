"""One retry policy for every "the broker or Postgres is away" loop (issue #26): exponential
from `first` to `cap`, with jitter so that a fleet of workers and servers that lost the same
service do not come back at the same instant, and stoppable (a shutdown does not wait out a
back-off). Five loops wrote their own before, none with jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

#: the longest `Retry-After` honoured as asked (a longer one is capped: the caller retries
#: later rather than sleeping for hours)
MAX_RETRY_AFTER = 120.0


class Backoff:
    """`delay` is the next wait; `wait()` sleeps it (jittered) and grows it; `reset()` after a
    success. Jitter takes up to `jitter` (a fraction) off each wait, never adds to it, so
    the cap holds."""

    def __init__(self, first: float = 0.1, cap: float = 5.0, *, factor: float = 2.0,
                 jitter: float = 0.5, rng: Callable[[], float] = random.random) -> None:
        self.first = first
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.rng = rng
        self.delay = first
        self.attempts = 0

    def next(self) -> float:
        """The wait to take now (jittered), and the nominal one grows for the next time."""
        wait = self.delay * (1.0 - self.jitter * self.rng())
        self.delay = min(self.delay * self.factor, self.cap)
        self.attempts += 1
        return wait

    def reset(self) -> None:
        self.delay = self.first
        self.attempts = 0

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Sleep the next wait; False (at once) if `stop` is or becomes set meanwhile."""
        wait = self.next()
        if stop is None:
            await asyncio.sleep(wait)
            return True
        if stop.is_set():
            return False
        try:
            await asyncio.wait_for(stop.wait(), wait)
        except TimeoutError:
            return True
        return False


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), capped; `default`
    when there is none or it cannot be read (the Kapso API client, the LLM client)."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (when - datetime.now(when.tzinfo)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
