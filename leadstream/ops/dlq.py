"""`leadstream dlq`: list dead letters and re-drive them once the cause is fixed.

Worker and sink dead letters carry their source topic and the original bytes, so re-driving
publishes the original record again to that topic, with its original key (processing is
idempotent, so a re-drive of something already applied changes nothing). A webhook dead
letter holds the raw HTTP body; the sender (or an operator with `curl`) re-sends it.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from leadstream.broker.clients import make_producer, read_to_end
from leadstream.config import Settings
from leadstream.streams.records import DeadLetter


async def read_dead_letters(settings: Settings) -> list[tuple[bytes | None, DeadLetter]]:
    """Every dead letter from the start of the topic to its current end."""
    out: list[tuple[bytes | None, DeadLetter]] = []
    async for records, _ in read_to_end(settings, [settings.topic("dlq")]):
        out += [(r.key, DeadLetter.model_validate_json(r.value)) for r in records if r.value]
    return out


#: who `sync_failures` says resolved a re-driven dead letter
REDRIVE_ACTOR = "redrive"


async def redrive(settings: Settings, event_ids: Iterable[str] | None) -> dict[str, list[str]]:
    """Re-publish the chosen (or all, with None) worker/sink dead letters to their source,
    and mark their `sync_failures` rows resolved by "redrive" (a row resolved before keeps
    who resolved it), so the dashboard's open count drops. A replica that cannot be reached
    is said in `unmarked`: the re-drive itself has happened."""
    wanted = set(event_ids) if event_ids is not None else None
    done: list[str] = []
    skipped: list[str] = []
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, dl in await read_dead_letters(settings):
            if wanted is not None and dl.event_id not in wanted:
                continue
            if dl.stage in ("worker", "sink") and dl.source_topic:
                await producer.send_and_wait(dl.source_topic, dl.original, key=key or None)
                done.append(dl.event_id)
            else:
                skipped.append(dl.event_id)
    finally:
        await producer.stop()
    result = {"redriven": done, "skipped": skipped, "unmarked": []}
    if done:
        try:
            await mark_resolved(settings.dsn, done)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError):
            result["unmarked"] = done
    return result


async def mark_resolved(dsn: str, event_ids: list[str], actor: str = REDRIVE_ACTOR) -> int:
    """Resolve these dead letters' rows (the first resolution stands); returns how many."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        done = await conn.execute(
            "UPDATE sync_failures SET resolved_at = now(), resolved_by = $2"
            " WHERE event_id = ANY($1::text[]) AND resolved_at IS NULL", event_ids, actor)
    finally:
        await conn.close()
    return int(done.split()[-1])
