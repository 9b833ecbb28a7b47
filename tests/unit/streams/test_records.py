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
