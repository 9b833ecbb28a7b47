"""Which embedded broker to start: Apache Kafka where Java 17+ and Maven are, else Tansu.

`LEADSTREAM_EMBEDDED_BROKER` (contract §5): `auto` (default) picks Apache Kafka when it can be
started here (`embedded.kafka.available`) and Tansu otherwise, with a one-line notice saying
why; `kafka` insists on Apache Kafka (an error names what is missing); `tansu` picks Tansu.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

BrokerKind = Literal["auto", "kafka", "tansu"]


class EmbeddedBroker(Protocol):
    """What the stack, the tests and the benchmarks need of an embedded broker."""

    @property
    def flavor(self) -> str:
        """LEADSTREAM_KAFKA_FLAVOR for the processes that use it."""

    @property
    def name(self) -> str:
        """What `up` prints: the broker and its version."""

    @property
    def bootstrap(self) -> str: ...

    def pids(self) -> list[int]:
        """The broker's live processes (benchmarks measure their CPU)."""

    def stop(self) -> None: ...


def choose(kind: str) -> tuple[Literal["kafka", "tansu"], str | None]:
    """The broker to start for `kind`, and a notice when `auto` fell back to Tansu."""
    from leadstream.embedded import kafka

    if kind == "tansu":
        return "tansu", None
    ok, why = kafka.available()
    if ok:
        return "kafka", None
    if kind == "kafka":
        raise RuntimeError(f"LEADSTREAM_EMBEDDED_BROKER=kafka, but Apache Kafka cannot start "
                           f"here: {why}")
    if kind != "auto":
        raise ValueError(f"LEADSTREAM_EMBEDDED_BROKER must be auto, kafka or tansu, not {kind!r}")
    return "tansu", f"Apache Kafka not available ({why}): starting the Tansu broker instead"


def start_broker(kind: str, base_dir: Path, *, nodes: int = 1,
                 server_props: dict[str, str] | None = None) -> EmbeddedBroker:
    """Start the broker `choose(kind)` names; its data and logs go under `base_dir`."""
    chosen, _ = choose(kind)
    if chosen == "kafka":
        from leadstream.embedded.kafka import KafkaCluster

        return KafkaCluster(base_dir, nodes=nodes, server_props=server_props or {}).start()
    from leadstream.embedded.tansu import TansuBroker

    return TansuBroker(base_dir).start()
