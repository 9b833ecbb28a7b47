"""The commit rule that replaces faust-streaming's `Consumer._new_offset` (see
leadstream.broker.faust_consumer): never commit past a record that was not processed."""

from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path
from typing import Any, cast

import pytest

from leadstream.broker.faust_consumer import committable_offset


@pytest.mark.parametrize(
    ("acked", "start", "want"),
    [
        ([], 5, (None, None)),
        ([], None, (None, None)),
        ([5, 6, 7], 5, (8, None)),
        ([7, 5, 6], 5, (8, None)),  # any order
        ([5, 5, 6, 6], 5, (7, None)),  # repeats
        ([5, 6, 8, 9], 5, (7, None)),  # stops at the first gap
        ([0, 1, 2], 0, (3, None)),  # a committed offset of 0 is a real start (Faust: "none")
        # the reproduced loss: Faust committed 12 here, skipping offset 8 for good
        ([9, 10, 11], 8, (None, 8)),
        ([1, 2], 0, (None, 0)),
        ([3, 4, 6, 7, 8], 6, (9, None)),  # below the start: done before a seek moved back
        ([3, 4], 6, (None, None)),
        ([9, 10], None, (11, None)),  # start unknown: trust the first run, as Faust does
    ],
)
def test_cases(acked: list[int], start: int | None, want: tuple[int | None, int | None]) -> None:
    assert committable_offset(acked, start) == want


def test_never_commits_an_offset_that_was_not_acked() -> None:
    """Exhaustive over small logs: everything below a committed offset (from `start`) was
    acked, and a hole is reported exactly when `start` itself was not acked but a later
    offset was."""
    for n in range(0, 7):
        for start in range(0, 3):
            for mask in itertools.product([False, True], repeat=n):
                acked = [start + i for i, a in enumerate(mask) if a]
                random.Random(n * 100 + start).shuffle(acked)
                offset, hole = committable_offset(acked, start)
                if offset is not None:
                    assert all(o in acked for o in range(start, offset))
                    assert offset not in acked
                    assert hole is None
                assert (hole == start) == (bool(acked) and start not in acked)
                if not acked:
                    assert (offset, hole) == (None, None)


async def test_a_partition_with_no_commit_is_sought_back_to_its_floor() -> None:
    """`perform_seek` (a rebalance, or a fetch dropped while the flow was stopped): Faust
    seeks through aiokafka's `seek_to_committed`, which skips a partition committed at None
    or 0, so a dropped fetch there was never fetched again. Ours seeks those to their floor
    (where the assignment started), and leaves committed ones and changelogs to Faust."""
    from faust.types import TP
    from mode.utils.logging import CompositeLogger

    from leadstream.broker.faust_consumer import SafeOffsetsConsumer, _NoReadOffsets

    never, zero, done = TP("t.events", 0), TP("t.events", 1), TP("t.events", 2)
    changelog = TP("app-lead-state-changelog", 0)
    c = object.__new__(SafeOffsetsConsumer)
    c.floors = {never: 0, zero: 0, done: 3}
    c._committed_offset = {}
    c._read_offset = _NoReadOffsets()
    seeks: list[tuple[TP, int]] = []

    async def seek_to_committed() -> dict[TP, int | None]:
        return {never: None, zero: 0, done: 40, changelog: None}

    async def _seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    c.seek_to_committed = seek_to_committed  # type: ignore[method-assign,assignment]
    c._seek = _seek  # type: ignore[method-assign,assignment]
    c.log = CompositeLogger(logging.getLogger("test"))
    c.assignment = lambda: {never, zero, done, changelog}  # type: ignore[method-assign]
    c._is_changelog_tp = lambda tp: tp.topic.endswith("-changelog")  # type: ignore[method-assign]
    await c.perform_seek()
    assert sorted(seeks) == [(never, 0), (zero, 0)]
    assert c._committed_offset[done] == 40


async def test_the_worker_consumer_takes_its_fetch_limits_from_the_settings(
        tmp_path: Path) -> None:
    """The worker's aiokafka consumer, as Faust builds it through our transport: a poll hands
    over at most LEADSTREAM_FETCH_MAX_RECORDS (Faust leaves it unbounded: a poll of all that
    was buffered held ~22x a compressed fetch in decoded records), and a fetch waits for
    LEADSTREAM_FETCH_MIN_BYTES or LEADSTREAM_FETCH_MAX_WAIT_MS on Apache Kafka."""
    from leadstream.app import create_app
    from leadstream.config import Settings, get_settings

    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "LEADSTREAM_DATA_DIR": str(tmp_path),
           "LEADSTREAM_KAFKA_FLAVOR": "kafka", "LEADSTREAM_FETCH_MAX_RECORDS": "123",
           "LEADSTREAM_FETCH_MIN_BYTES": "4096", "LEADSTREAM_FETCH_MAX_WAIT_MS": "17"}
    get_settings.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            app = create_app(Settings())
            thread = cast(Any, app.consumer)._thread
            consumer = thread._create_worker_consumer(app.transport)
            assert consumer._max_poll_records == 123
            assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (4096, 17)
    finally:
        get_settings.cache_clear()
