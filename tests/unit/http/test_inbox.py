"""The "Open in Inbox" link: pattern checks and filling (pure)."""

from __future__ import annotations

import pytest

from leadstream.http.inbox import check_pattern, inbox_link


@pytest.mark.parametrize(("pattern", "problem"), [
    ("https://app.kapso.ai/inbox/{conversation_id}", None),
    ("https://app.kapso.ai/inbox/{conversation_id}?wa={phone}", None),
    ("https://app.kapso.ai/inbox/", "must contain {conversation_id}"),
    ("https://x/{conversation_id}/{lead}", "unknown placeholder(s): lead"),
    ("javascript:alert(1)//{conversation_id}", "must be an http(s) URL"),
    ("/inbox/{conversation_id}", "must be an http(s) URL"),
    ("https://x/{conversation_id", "not a pattern"),
    ("https://x/{conversation_id}" + "a" * 500, "at most 500 characters"),
    ("https://x/{conversation_id.__class__}", "must contain {conversation_id}"),
    ("https://x/{conversation_id}{phone.real}", "unknown placeholder(s): phone.real"),
    ("https://x/{conversation_id}{0}", "unknown placeholder(s): 0"),
    ("https://x/{conversation_id:>999999999}", "no format spec"),
    ("https://x/{conversation_id!r}", "no format spec or conversion"),
])
def test_patterns(pattern: str, problem: str | None) -> None:
    got = check_pattern(pattern)
    assert got == problem if problem is None else (got is not None and problem in got)


def test_link_is_filled_with_quoted_values_or_absent() -> None:
    p = "https://app.kapso.ai/p/1/inbox/{conversation_id}?wa={phone}"
    assert inbox_link(p, "c/1 x", "+6281312345678") == (
        "https://app.kapso.ai/p/1/inbox/c%2F1%20x?wa=6281312345678")
    assert inbox_link(p, None, "+62813") is None
    assert inbox_link(None, "c1", "+62813") is None


def test_a_bad_pattern_in_the_database_gives_no_link_rather_than_an_error() -> None:
    assert inbox_link("https://x/{conversation_id:>999999999}", "c1", None) is None
    assert inbox_link("https://x/{nope}", "c1", None) is None
