"""Topic naming: the derived prefix of a reprocessing fleet (README 'Replay and reprocessing')."""

from __future__ import annotations

from leadstream.streams.topics import TopicNames
from tests.support import env_settings


def test_derived_topics_take_their_own_prefix_sources_do_not() -> None:
    names = TopicNames.from_settings(env_settings(LEADSTREAM_TOPIC_PREFIX="ls",
                                              LEADSTREAM_DERIVED_PREFIX="ls-v2"))
    assert names.sources() == ["ls.events", "ls.sarah", "ls.commands"]
    assert names.dlq == "ls.dlq"
    assert names.derived() == ["ls-v2.leads", "ls-v2.messages", "ls-v2.status-history",
                               "ls-v2.notes", "ls-v2.daily"]
    assert (names.ticks, names.daily_closed) == ("ls-v2.ticks", "ls-v2.daily-closed")


def test_without_a_derived_prefix_every_topic_shares_the_prefix() -> None:
    names = TopicNames.from_settings(env_settings(LEADSTREAM_TOPIC_PREFIX="ls"))
    assert all(n.startswith("ls.") for n in names.all())
