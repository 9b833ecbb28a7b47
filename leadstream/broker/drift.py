"""Topics that cannot drift (issue #28): every topic the code declares is compared with the
cluster (exists, partitions, replication, configs). A missing topic or a config can be
fixed in place; a partition count or a replication factor cannot (more partitions would
move leads to other partitions; replication needs a reassignment), so those are reported
for an operator to decide. `leadstream topics --check | --fix`; the worker checks at start
and warns."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from leadstream.broker.clients import make_admin, topic_configs
from leadstream.config import Settings
from leadstream.streams import topics as T

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    topic: str
    what: str  # "missing", "partitions", "replication", or a config name
    want: str
    got: str | None
    fixable: bool

    def __str__(self) -> str:
        if self.what == "missing":
            return f"{self.topic}: missing"
        how = "" if self.fixable else " (not fixable in place)"
        return f"{self.topic}: {self.what} is {self.got}, declared {self.want}{how}"


def declared(settings: Settings) -> dict[str, tuple[str, dict[str, str]]]:
    """Full topic name -> (short name, configs) for every topic the code declares."""
    return {T.full_name(settings, short): (short, topic_configs(short, settings))
            for short in T.ALL}


def compare(settings: Settings, described: dict[str, dict[str, Any]],
            configs: dict[str, dict[str, str]] | None) -> list[Drift]:
    """The drift between what is declared and what the cluster described (`described`: topic
    -> {"partitions": n, "replication": n}; `configs`: topic -> config values, None when the
    broker does not describe configs). Pure: the tests drive it with any cluster."""
    out: list[Drift] = []
    for name, (_, want_configs) in declared(settings).items():
        got = described.get(name)
        if got is None:
            out.append(Drift(name, "missing", "present", None, True))
            continue
        if got["partitions"] != settings.topic_partitions:
            out.append(Drift(name, "partitions", str(settings.topic_partitions),
                             str(got["partitions"]), False))
        if got["replication"] != settings.topic_replication:
            out.append(Drift(name, "replication", str(settings.topic_replication),
                             str(got["replication"]), False))
        if configs is None or name not in configs:
            continue
        for key, want in want_configs.items():
            have = configs[name].get(key)
            if have != want:
                out.append(Drift(name, key, want, have, True))
    return out


async def check(settings: Settings, *, fix: bool = False) -> tuple[list[Drift], list[Drift]]:
    """(drift found, drift fixed): with `fix`, missing topics are created and configs set."""
    admin = make_admin(settings, request_timeout_ms=10000)
    await admin.start()
    try:
        names = list(declared(settings))
        existing = set(await admin.list_topics())
        for _ in range(6):  # a topic created a moment ago may not be in the metadata yet
            if set(names) <= existing:
                break
            await asyncio.sleep(0.5)
            existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        described: dict[str, dict[str, Any]] = {}
        for t in await admin.describe_topics(present) if present else []:
            parts = t.get("partitions") or []
            described[t["topic"]] = {"partitions": len(parts),
                                     "replication": len(parts[0]["replicas"]) if parts else 0}
        configs: dict[str, dict[str, str]] | None = {}
        try:
            for resp in await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]):
                for res in resp.resources:
                    # (error_code, error_message, resource_type, resource_name, entries)
                    assert configs is not None
                    configs[res[3]] = {e[0]: e[1] for e in res[4]}
        except (KafkaError, IndexError, TypeError, AssertionError) as exc:
            log.info("topic configs not described by this broker (%r): not compared", exc)
            configs = None
        drift = compare(settings, described, configs)
        fixed: list[Drift] = []
        if fix:
            fixed = await _fix(admin, settings, drift)
        return drift, fixed
    finally:
        await admin.close()


async def _fix(admin: Any, settings: Settings, drift: list[Drift]) -> list[Drift]:
    fixed: list[Drift] = []
    decl = declared(settings)
    for d in (d for d in drift if d.fixable and d.what == "missing"):
        _, configs = decl[d.topic]
        await admin.create_topics([NewTopic(d.topic, settings.topic_partitions,
                                            settings.topic_replication,
                                            topic_configs=configs)])
        fixed.append(d)
    by_topic: dict[str, list[Drift]] = {}
    for d in drift:
        if d.fixable and d.what != "missing":
            by_topic.setdefault(d.topic, []).append(d)
    for topic, items in by_topic.items():
        # AlterConfigs replaces the topic's whole set: send every declared value
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  configs=decl[topic][1])])
        fixed += items
    return fixed
