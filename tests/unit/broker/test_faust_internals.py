"""`apply_changelog`: a fetch of a table's changelog straight into its store, against Faust's
real app, table, memory store and `Recovery` (no broker: the recovery's bookkeeping is
set as a rebalance would)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP

from leadstream.broker.faust_internals import apply_changelog, recovery_state


def _rec(offset: int, key: bytes, value: bytes | None) -> Any:
    return SimpleNamespace(offset=offset, key=key, value=value)


@pytest.fixture
def app() -> Any:
    return faust.App("test-apply-changelog", broker="kafka://127.0.0.1:1", store="memory://",
                     key_serializer="raw", value_serializer="raw")


def _table(app: Any, name: str = "lead-state", value_type: Any = bytes) -> Any:
    return app.Table(name, default=None, partitions=2, key_type=bytes, value_type=value_type)


def _tp(table: Any, partition: int = 1) -> TP:
    return TP(table.changelog_topic.get_topic_name(), partition)


def _active(app: Any, table: Any, highwater: int, partition: int = 1) -> tuple[Any, TP]:
    recovery = app.tables.recovery
    tp = _tp(table, partition)
    recovery.add_active(table, tp)
    recovery.active_highwaters[tp] = highwater
    recovery._set_recovery_started()
    return recovery, tp


def test_a_recovery_applies_in_order_and_ends_at_the_highwater(app: Any) -> None:
    table = _table(app)
    recovery, tp = _active(app, table, highwater=3)
    assert apply_changelog(app, tp, [_rec(0, b"a", b"1"), _rec(1, b"b", b"2")])
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
    assert apply_changelog(app, tp, [_rec(2, b"a", b"3"), _rec(3, b"b", None)])
    assert dict(table.data.data) == {b"a": b"3"}  # the last value wins; None deletes
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()
    assert recovery.active_offsets[tp] == 3
    assert recovery_state(app)["changelog_applied"] == {("lead-state", "active"): 4}


def test_records_already_read_are_skipped(app: Any) -> None:
    table = _table(app)
    _, tp = _active(app, table, highwater=5)
    apply_changelog(app, tp, [_rec(0, b"a", b"1"), _rec(1, b"a", b"2")])
    # a fetch that overlaps (a seek back): offsets 0 and 1 must not bring "1" back
    apply_changelog(app, tp, [_rec(0, b"a", b"1"), _rec(1, b"a", b"2"), _rec(2, b"c", b"9")])
    assert dict(table.data.data) == {b"a": b"2", b"c": b"9"}
    assert recovery_state(app)["changelog_applied"][("lead-state", "active")] == 3


def test_records_buffered_by_fausts_path_go_first(app: Any) -> None:
    table = _table(app)
    recovery, tp = _active(app, table, highwater=5)
    older = _rec(0, b"a", b"old")
    recovery.buffers[table].append(SimpleNamespace(message=SimpleNamespace(
        tp=tp, offset=0, partition=1, key=b"a", value=b"old"), key=older.key, value=older.value))
    recovery.active_offsets[tp] = 0
    apply_changelog(app, tp, [_rec(1, b"a", b"new")])
    assert dict(table.data.data) == {b"a": b"new"}
    assert recovery.buffers[table] == []


def test_a_standby_copy_is_counted_apart_and_ready_once_caught_up(app: Any) -> None:
    table = _table(app)
    recovery = app.tables.recovery
    tp = _tp(table, 0)
    recovery.add_standby(table, tp)
    recovery.standby_highwaters[tp] = 1
    assert apply_changelog(app, tp, [_rec(0, b"x", b"1")])
    assert not app.tables.standbys_ready  # highwater 1 not read yet
    assert apply_changelog(app, tp, [_rec(1, b"y", b"2")])
    assert app.tables.standbys_ready
    assert recovery_state(app)["changelog_applied"] == {("lead-state", "standby"): 2}


def test_a_partition_the_recovery_does_not_track_is_not_applied(app: Any) -> None:
    table = _table(app)
    _active(app, table, highwater=5, partition=1)
    assert apply_changelog(app, _tp(table, 0), [_rec(0, b"a", b"1")])  # neither active nor standby
    assert dict(table.data.data) == {}


def test_other_topics_and_tables_with_codecs_keep_fausts_path(app: Any) -> None:
    table = _table(app)
    _active(app, table, highwater=5)
    assert not apply_changelog(app, TP("leadstream.events", 1), [_rec(0, b"a", b"1")])
    json_table = _table(app, "with-json", value_type=None)
    _, tp = _active(app, json_table, highwater=5)
    assert not apply_changelog(app, tp, [_rec(0, b"a", b"{}")])
    assert dict(json_table.data.data) == {}
