"""The replica writer: batches of rows into Postgres, retried while Postgres is away, a row
Postgres refuses as data isolated and handed back, the rest written. Shared by the sink
(rows read back from the derived topics) and the worker's batch path (rows it just derived,
written before it acks its source offsets)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson

from leadstream.config import Settings
from leadstream.retry import Backoff
from leadstream.sink.writer import Batch, write_batch, write_json

log = logging.getLogger(__name__)

#: What a record can be blamed for: bad data (SQLSTATE class 22) or a constraint (class 23).
#: Everything else (connection loss, shutdown, restart, timeouts, ...) is retried in place.
#: errors caused by a row's data (SQLSTATE classes 22, 23 and 54: e.g. an index row over
#: Postgres' size limit); the row is dead-lettered, the rest of its batch written. Any
#: other error retries the whole batch (availability)
DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncio.TimeoutError,
)



#: (where the row came from: a ConsumerRecord or anything with topic, partition, offset, key
#: and value; its table; the row)
Decoded = tuple[Any, str, dict[str, Any]]
#: the same with the row still JSON-encoded
Encoded = tuple[Any, str, bytes]
Poisoned = Callable[[Any, str], Awaitable[None]]


class Replica:
    """A small pool and the write policy; `on_poison(origin, reason)` takes refused rows."""

    def __init__(self, settings: Settings, on_poison: Poisoned, *, name: str = "sink",
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.on_poison = on_poison
        self.name = name
        self.stopping = stopping
        self.pool: asyncpg.Pool | None = None
        self.rows_written = 0
        self.pg_retries = 0

    async def connect(self) -> None:
        """Retried until Postgres takes the connection. Any refusal is retried, not only a
        lost network: a database that does not accept connections now (maintenance,
        `ALLOW_CONNECTIONS false`), too many clients, even a wrong password being fixed. A
        worker that crashed instead would stop every tenant's pipeline; waiting shows on
        `/readyz` (database, then the stall watch) and in this log line."""
        backoff = Backoff(0.2)
        while True:
            try:
                self.pool = await asyncpg.create_pool(
                    self.settings.dsn, min_size=1, max_size=2, command_timeout=30,
                    reset=_keep_session)
                return
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("%s: Postgres not reachable (%s); retrying in %.1fs", self.name,
                            exc, backoff.delay)
                await backoff.wait()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def write(self, decoded: Sequence[Decoded]) -> None:
        """Returns once every row is in Postgres or was handed to `on_poison`."""
        batch = Batch()
        for _, kind, row in decoded:
            getattr(batch, kind).append(row)
        if not len(batch):
            return
        try:
            await self._with_retry(batch)
        except DATA_ERRORS as exc:
            log.warning("%s: batch rejected (%s); isolating the bad records", self.name, exc)
            await self._isolate(decoded)

    async def _isolate(self, decoded: Sequence[Decoded]) -> None:
        """Write what Postgres accepts, hand back what it refuses: halves are retried
        until the refused rows stand alone (log2(n) rounds for one bad row in n)."""
        if len(decoded) == 1:
            origin, kind, row = decoded[0]
            try:
                await self._with_retry(Batch(**{kind: [row]}))
            except DATA_ERRORS as exc:
                await self.on_poison(origin, f"rejected by Postgres: {exc}")
            return
        mid = len(decoded) // 2
        for half in (decoded[:mid], decoded[mid:]):
            batch = Batch()
            for _, kind, row in half:
                getattr(batch, kind).append(row)
            try:
                await self._with_retry(batch)
            except DATA_ERRORS:
                await self._isolate(half)

    async def write_encoded(self, encoded: Sequence[Encoded]) -> None:
        """`write` for rows still JSON-encoded, one per key per kind (the worker's flush):
        joined into the statements' arrays as they are; decoded only to isolate a row
        Postgres refuses."""
        rows: dict[str, list[bytes]] = {}
        for _, kind, value in encoded:
            rows.setdefault(kind, []).append(value)
        if not rows:
            return
        try:
            await self._with_retry(lambda conn: write_json(conn, rows))
        except DATA_ERRORS as exc:
            log.warning("%s: batch rejected (%s); isolating the bad records", self.name, exc)
            await self._isolate([(o, kind, orjson.loads(v)) for o, kind, v in encoded])

    async def _with_retry(self, batch: Batch | Callable[[Any], Awaitable[int]]) -> None:
        if self.pool is None:
            await self.connect()
        backoff = Backoff(0.1)
        while True:
            assert self.pool is not None
            try:
                async with self.pool.acquire() as conn:
                    if isinstance(batch, Batch):
                        await write_batch(conn, batch)
                        self.rows_written += len(batch)
                    else:
                        self.rows_written += await batch(conn)
                return
            except DATA_ERRORS:
                raise
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                if self.stopping():
                    raise
                self.pg_retries += 1
                log.warning("%s: Postgres unavailable (%s); retry in %.1fs", self.name, exc,
                            backoff.delay)
                await backoff.wait()
                self.pool.terminate()
                await self.connect()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, as nothing: its default (`Connection.reset`) is a round
    trip per acquire (`UNLISTEN *`, `RESET ALL`, ...) undoing session state these
    connections never set; asyncpg still rolls back a transaction left open."""
