"""Which window a run reads and how it is cut: the watermark's contract."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from leadstream.config import Settings
from leadstream.db.registry import ReconcileTarget
from leadstream.reconcile.reconciler import slices, window_for

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
SETTINGS = Settings().model_copy(update={"reconcile_lookback_seconds": 3600.0,
                                         "reconcile_max_window_seconds": 7 * 86400.0})


def _target(mark: datetime | None) -> ReconcileTarget:
    return ReconcileTarget("p1", "ws1", "ID", "key-0123456789abcdef", mark)


@pytest.mark.parametrize(("mark", "since"), [
    (None, NOW - H),                          # never reconciled: the lookback
    (NOW - 10 * H, NOW - 10 * H),             # an outage of ten hours: from the watermark
    (NOW - timedelta(minutes=5), NOW - H),    # recent: still the whole lookback
    (NOW - 30 * 24 * H, NOW - 7 * 24 * H),    # a month: capped at the longest window
])
def test_a_run_starts_at_the_watermark_within_bounds(mark: datetime | None,
                                                     since: datetime) -> None:
    assert window_for(_target(mark), NOW, SETTINGS) == (since, NOW)


def test_slices_are_consecutive_oldest_first_and_cover_the_window() -> None:
    cut = slices(NOW - 5 * H - timedelta(minutes=20), NOW, H)
    assert cut[0][0] == NOW - 5 * H - timedelta(minutes=20) and cut[-1][1] == NOW
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cut))
    assert [e - s for s, e in cut] == [H] * 5 + [timedelta(minutes=20)]


def test_an_empty_window_is_one_slice() -> None:
    assert slices(NOW, NOW, H) == [(NOW, NOW)]


def test_a_target_never_shows_its_key() -> None:
    t = _target(None)
    assert "key-0123" not in repr(t) and "key-0123" not in str(t)
