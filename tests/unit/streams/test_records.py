"""`DeadLetter.workspace_of`: the one rule that names a dead letter's workspace from its key,
for every stage (worker, replica, sink)."""

from __future__ import annotations

import pytest

from leadstream.streams.records import DeadLetter


@pytest.mark.parametrize(("key", "workspace"), [
    (b"ws1:+6281312345678", "ws1"),
    (b"acme:bsuid.ABC", "acme"),
    (b"ws1:", None),  # no identity
    (b":+62813", None),  # no workspace
    (b"nokey", None),
    (b"", None),
    (None, None),
    (b"\xff\xfe:x", None),  # not UTF-8
    (b"w" * 257 + b":x", None),  # longer than a workspace id can be
])
def test_workspace_of(key: bytes | None, workspace: str | None) -> None:
    assert DeadLetter.workspace_of(key) == workspace


def test_a_record_read_from_the_log_is_named_by_its_position() -> None:
    dl = DeadLetter.of(stage="worker", reason="bad", original=b"x", topic="t.events",
                       partition=3, offset=41, key=b"ws1:+62812")
    again = DeadLetter.of(stage="worker", reason="other", original=b"y", topic="t.events",
                          partition=3, offset=41, key=b"ws1:+62812")
    assert dl.event_id == again.event_id == "worker:t.events:3:41"
    assert (dl.source_partition, dl.source_offset, dl.workspace_id) == (3, 41, "ws1")
    assert dl.original == b"x"


def test_anything_else_is_named_by_its_bytes_and_kept_cut() -> None:
    one = DeadLetter.of(stage="replica", reason="r", original=b"a" * 100, topic="t.leads",
                        partition=-1, key=b"ws2:+62813", keep=10)
    same = DeadLetter.of(stage="replica", reason="r2", original=b"a" * 100, topic="t.leads",
                         key=b"ws2:+62813")
    other = DeadLetter.of(stage="replica", reason="r", original=b"a" * 99, topic="t.leads")
    elsewhere = DeadLetter.of(stage="replica", reason="r", original=b"a" * 100, topic="t.notes")
    assert one.event_id == same.event_id and one.event_id.startswith("replica:t.leads:")
    assert len({one.event_id, other.event_id, elsewhere.event_id}) == 3
    assert one.original == b"a" * 10 and same.original == b"a" * 100
    assert one.source_partition is None and one.source_offset is None
    assert one.workspace_id == "ws2" and other.workspace_id is None


def test_a_given_workspace_and_headers_are_kept() -> None:
    dl = DeadLetter.of(stage="webhook", reason="bad json", original=b"{", topic="kapso",
                       workspace_id="ws9", headers={"x-webhook-event": "e"})
    assert dl.workspace_id == "ws9" and dl.headers == {"x-webhook-event": "e"}
    assert dl.event_id.startswith("webhook:kapso:")
