"""Topic naming: the derived prefix of a reprocessing fleet (README 'Replay and reprocessing')."""

from __future__ import annotations

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from leadstream.config import Settings
from leadstream.streams.topics import TopicNames
from tests.support import env_settings


def test_derived_topics_take_their_own_prefix_sources_do_not() -> None:
    names = TopicNames.from_settings(env_settings(LEADSTREAM_TOPIC_PREFIX="ls",
                                              LEADSTREAM_DERIVED_PREFIX="ls-v2"))
    assert names.sources() == ["ls.events", "ls.sarah", "ls.commands"]
    assert names.dlq == "ls.dlq"
    assert names.derived() == ["ls-v2.leads", "ls-v2.messages", "ls-v2.status-history",
                               "ls-v2.notes", "ls-v2.daily", "ls-v2.tasks"]
    assert (names.ticks, names.daily_closed) == ("ls-v2.ticks", "ls-v2.daily-closed")


def test_without_a_derived_prefix_every_topic_shares_the_prefix() -> None:
    names = TopicNames.from_settings(env_settings(LEADSTREAM_TOPIC_PREFIX="ls"))
    assert all(n.startswith("ls.") for n in names.all())


async def test_ensure_topics_creates_the_derived_ones_under_the_derived_prefix(
        settings: Settings) -> None:
    """With LEADSTREAM_DERIVED_PREFIX set, every topic the fleet uses exists under its own
    name, with its configs (`leads` compacted); before issue #28's fix the derived ones
    were created under the plain prefix."""
    from leadstream.broker.clients import ensure_topics, make_admin

    s = settings.model_copy(update={"derived_prefix": settings.topic_prefix + "-v2"})
    names = TopicNames.from_settings(s)
    created = await ensure_topics(s)
    assert set(created) == set(names.all())
    assert not any(n.startswith(settings.topic_prefix + ".leads") for n in created)
    admin = make_admin(s)
    await admin.start()
    try:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                                   names.leads)])
        configs = {c[0]: c[1] for c in described.resources[0][4]}
        assert configs["cleanup.policy"] == "compact"
    finally:
        await admin.close()
    assert await ensure_topics(s) == []  # all there now


async def test_topics_check_finds_drift_and_fix_repairs_what_it_can(settings: Settings) -> None:
    from leadstream.broker.clients import ensure_topics, make_admin
    from tests.support.cli import acli

    env = settings.to_env()
    await ensure_topics(settings)
    ok = await acli(["topics", "--check"], env)
    assert ok.exit_code == 0 and "every topic as declared" in ok.output, ok.output
    names = TopicNames.from_settings(settings)
    admin = make_admin(settings)
    await admin.start()
    try:  # an operator's hand: a short retention on the dead letters
        await admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, names.dlq,
            configs={"retention.ms": "1000", "cleanup.policy": "delete"})])
    finally:
        await admin.close()
    found = await acli(["topics", "--check"], env)
    assert found.exit_code == 1 and f"{names.dlq}: retention.ms is 1000" in found.output
    fixed = await acli(["topics", "--fix"], env)
    assert fixed.exit_code == 0 and "fixed" in fixed.output, fixed.output
    again = await acli(["topics", "--check"], env)
    assert again.exit_code == 0, again.output
    # a partition count is not changed in place: reported, exit 1
    wrong = settings.model_copy(update={"topic_partitions": 6})
    left = await acli(["topics", "--fix"], wrong.to_env())
    assert left.exit_code == 1 and "partitions is 4, declared 6 (not fixable" in left.output
