"""The commit rule that replaces faust-streaming's `Consumer._new_offset` (see
leadstream.broker.faust_consumer): never commit past a record that was not processed."""

from __future__ import annotations

import itertools
import random

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
