"""Topic drift, on any described cluster: what is missing, what differs, what can be fixed."""

from __future__ import annotations

from typing import Any

from leadstream.broker.drift import Drift, compare, declared
from tests.support import env_settings

S = env_settings(LEADSTREAM_TOPIC_PREFIX="ls", LEADSTREAM_TOPIC_PARTITIONS=8,
                 LEADSTREAM_TOPIC_REPLICATION=3)


def _as_declared() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
    described = {n: {"partitions": 8, "replication": 3} for n in declared(S)}
    configs = {n: dict(c, **{"segment.ms": "604800000"}) for n, (_, c) in declared(S).items()}
    return described, configs


def test_a_cluster_as_declared_has_no_drift() -> None:
    assert compare(S, *_as_declared()) == []


def test_every_kind_of_drift_is_found_and_said_whether_it_can_be_fixed() -> None:
    described, configs = _as_declared()
    del described["ls.sarah"]
    described["ls.events"]["partitions"] = 4
    described["ls.leads"]["replication"] = 1
    configs["ls.leads"]["cleanup.policy"] = "delete"
    configs["ls.dlq"]["retention.ms"] = "1000"
    drift = compare(S, described, configs)
    assert set(drift) == {
        Drift("ls.sarah", "missing", "present", None, True),
        Drift("ls.events", "partitions", "8", "4", False),
        Drift("ls.leads", "replication", "3", "1", False),
        Drift("ls.leads", "cleanup.policy", "compact", "delete", True),
        Drift("ls.dlq", "retention.ms", str(30 * 24 * 3600 * 1000), "1000", True),
    }
    assert "not fixable" in str(Drift("ls.events", "partitions", "8", "4", False))


def test_configs_a_broker_does_not_describe_are_not_drift() -> None:
    described, _ = _as_declared()
    assert compare(S, described, None) == []
