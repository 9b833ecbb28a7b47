"""Embedded Apache Kafka: the real broker, fetched once with Maven and run as plain JVM processes.

Version: Kafka 4.1 (`KAFKA_VERSION`). The 4.x line is KRaft-only (no ZooKeeper to run) and
needs Java 17, which these machines have. Kafka 4.0 removed the oldest protocol versions
(KIP-896); aiokafka 0.14, and so faust-streaming 0.15.3 on it, negotiates versions inside what
4.x keeps (aio-libs/aiokafka#1085), and this project's whole suite, fault suite included, runs
on it (`make test`). 4.1 rather than 4.0: the newest line proven here end to end.

How it runs:
* `fetch_jars()` runs `mvn dependency:copy-dependencies` on the pom shipped in
  `embedded/jvm/` into a cache directory (`LEADSTREAM_KAFKA_CACHE`, default
  `~/.cache/leadstream/kafka-<version>`), once; later starts are offline.
* `KafkaCluster(n)` formats one storage directory per node for KRaft (each node is broker and
  controller, a static quorum of all nodes) and starts each with a bounded heap. It is ready
  when a metadata request lists every node. `stop()` sends SIGTERM (a controlled shutdown) and
  waits; each JVM also dies with its parent (no orphan JVMs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from leadstream.embedded.procs import die_with_parent, free_port, stop_process, wait_port

KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17
#: heap per broker JVM; the embedded broker holds little data, and three of them fit beside
#: everything else on one 2-core, 24 GiB machine
HEAP = os.environ.get("LEADSTREAM_KAFKA_HEAP", "512m")
_STAMP = ".complete"


def java_version() -> int | None:
    """The major version of `java` on PATH, or None."""
    java = shutil.which("java")
    if not java:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "leadstream" / f"kafka-{KAFKA_VERSION}"
    return Path(os.environ.get("LEADSTREAM_KAFKA_CACHE", default))


def jars_cached() -> bool:
    return (cache_dir() / _STAMP).exists()


def available() -> tuple[bool, str]:
    """Whether Apache Kafka can be started here, and if not, why (one line)."""
    v = java_version()
    if v is None:
        return False, "no java on PATH"
    if v < MIN_JAVA:
        return False, f"java {v} found, Apache Kafka {KAFKA_VERSION} needs {MIN_JAVA}+"
    if not jars_cached() and not shutil.which("mvn"):
        return False, "no mvn on PATH to fetch the broker (and no cached copy)"
    return True, f"java {v}"


def fetch_jars() -> Path:
    """The directory of the broker's jars, fetched with Maven on first use."""
    target = cache_dir()
    if (target / _STAMP).exists():
        return target
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("Apache Kafka is not cached and there is no mvn to fetch it")
    target.mkdir(parents=True, exist_ok=True)
    pom = resources.files("leadstream.embedded") / "jvm" / "pom.xml"
    with resources.as_file(pom) as pom_path:
        cmd = [mvn, "-q", "-B", "-f", str(pom_path), "dependency:copy-dependencies",
               f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={target}",
               "-DincludeScope=runtime"]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0 or not list(target.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"fetching Apache Kafka failed: {' '.join(cmd)}\n"
                           f"{(r.stdout + r.stderr)[-3000:]}")
    (target / _STAMP).write_text(KAFKA_VERSION)
    return target


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    #: a SASL_PLAINTEXT listener's port (only with `KafkaCluster.sasl_users`)
    sasl_port: int = 0


@dataclass
class KafkaCluster:
    """`nodes` Apache Kafka processes on 127.0.0.1, each broker and controller (KRaft).

    `server_props` are added to every node's configuration (tests shorten the log cleaner's
    back-off, for instance).
    """

    base_dir: Path
    nodes: int = 1
    host: str = "127.0.0.1"
    server_props: dict[str, str] = field(default_factory=dict)
    #: user -> password: adds a SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256 and
    #: SCRAM-SHA-512) beside the plaintext one, as a managed Kafka has (tests of
    #: LEADSTREAM_KAFKA_SECURITY_PROTOCOL and friends)
    sasl_users: dict[str, str] = field(default_factory=dict)
    flavor: str = "kafka"
    version: str = KAFKA_VERSION
    _nodes: list[_Node] = field(default_factory=list)
    _launch: tuple[str, str, str] = ("", "", "")

    @property
    def name(self) -> str:
        return f"Apache Kafka {self.version}" + (f", {self.nodes} nodes" if self.nodes > 1 else "")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self._nodes)

    @property
    def sasl_bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.sasl_port}" for n in self._nodes)

    def _sasl_props(self, node: _Node) -> dict[str, str]:
        if not self.sasl_users:
            return {}
        plain = " ".join(f'user_{u}="{pw}"' for u, pw in self.sasl_users.items())
        admin, admin_pw = next(iter(self.sasl_users.items()))
        return {
            "listeners": f"PLAINTEXT://{self.host}:{node.port},"
                         f"SASL_PLAINTEXT://{self.host}:{node.sasl_port},"
                         f"CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port},"
                                    f"SASL_PLAINTEXT://{self.host}:{node.sasl_port}",
            "listener.security.protocol.map":
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{admin}" password="{admin_pw}" {plain};',
            **{f"listener.name.sasl_plaintext.scram-sha-{b}.sasl.jaas.config":
               "org.apache.kafka.common.security.scram.ScramLoginModule required;"
               for b in ("256", "512")},
        }

    def _scram_args(self) -> list[str]:
        """`kafka-storage format --add-scram`: the SCRAM credentials, stored with the
        cluster's metadata when it is formatted (KRaft keeps them there)."""
        args = []
        for u, pw in self.sasl_users.items():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{mech}=[name={u},password={pw}]"]
        return args

    def _props(self, node: _Node, voters: str) -> str:
        rf = min(3, self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{node.port},"
                         f"CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.log_dir),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "transaction.state.log.num.partitions": "4",
            "min.insync.replicas": str(min(2, rf)),
            "default.replication.factor": str(rf),
            # a consumer group's first member is assigned at once, not after 3 s
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            **self._sasl_props(node),
            **self.server_props,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def start(self, timeout: float = 90.0) -> KafkaCluster:
        libs = fetch_jars()
        java = shutil.which("java")
        assert java
        self.base_dir = Path(self.base_dir).absolute()
        self._nodes = [
            _Node(i + 1, free_port(self.host), free_port(self.host),
                  self.base_dir / f"kafka-{i + 1}",
                  sasl_port=free_port(self.host) if self.sasl_users else 0)
            for i in range(self.nodes)
        ]
        voters = ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self._nodes)
        cluster_id = _cluster_id()
        log4j = resources.files("leadstream.embedded") / "jvm" / "log4j2.properties"
        classpath = f"{libs}/*"
        for node in self._nodes:
            node.log_dir.mkdir(parents=True, exist_ok=True)
            config = node.log_dir.parent / f"server-{node.node_id}.properties"
            config.write_text(self._props(node, voters))
            if (node.log_dir / "meta.properties").exists():
                continue  # formatted by an earlier start: keep its log
            r = subprocess.run(
                [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
                 # `=`: an id may start with "-" (base64url), which would read as an option
                 "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                 "-c", str(config), *self._scram_args(),
                 "--ignore-formatted"],
                capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"formatting Kafka storage failed: {r.stdout}{r.stderr}")
        self._launch = (java, classpath, str(log4j))
        for node in self._nodes:
            self._spawn(node, java, classpath, str(log4j))
        for node in self._nodes:
            wait_port(self.host, node.port, timeout, node.proc)
        self.wait_ready(timeout)
        return self

    def restart(self, *node_ids: int, timeout: float = 90.0) -> None:
        """Start stopped or killed nodes again, with their logs and ports (fault tests).
        All at once: a broker that comes back alone waits for a controller quorum (two of
        three voters) and gives up when there is none."""
        nodes = [self._nodes[i - 1] for i in node_ids]
        nodes = [n for n in nodes if n.proc is None or n.proc.poll() is not None]
        for node in nodes:
            self._spawn(node, *self._launch)
        for node in nodes:
            wait_port(self.host, node.port, timeout, node.proc)

    def _spawn(self, node: _Node, java: str, classpath: str, log4j: str) -> None:
        config = node.log_dir.parent / f"server-{node.node_id}.properties"
        log = (node.log_dir.parent / f"kafka-{node.node_id}.log").open("ab")
        node.proc = subprocess.Popen(
            [java, f"-Xmx{HEAP}", "-Xms128m", "-XX:+UseG1GC",
             "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
             "kafka.Kafka", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, process_group=0,
        )
        log.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until a metadata request lists every live node."""
        live = [n for n in self._nodes if n.proc is not None and n.proc.poll() is None]
        bootstrap = ",".join(f"{self.host}:{n.port}" for n in live)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for n in live:
                if n.proc is not None and n.proc.poll() is not None:
                    raise RuntimeError(f"Kafka node {n.node_id} exited with "
                                       f"{n.proc.returncode}; see {self.log_path(n.node_id)}")
            try:
                brokers = _run_async(_broker_count(bootstrap))
                if brokers >= len(live):
                    return
                last = f"{brokers} of {len(live)} brokers registered"
            except Exception as e:  # noqa: BLE001  # not up yet
                last = repr(e)
            time.sleep(0.2)
        raise TimeoutError(f"Apache Kafka not ready after {timeout}s: {last}")

    def log_path(self, node_id: int = 1) -> Path:
        return self.base_dir / f"kafka-{node_id}.log"

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self._nodes if n.proc is not None and n.proc.poll() is None]

    def stop(self) -> None:
        for node in self._nodes:
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    node.proc.send_signal(signal.SIGTERM)
        for node in self._nodes:
            stop_process(node.proc, signal.SIGTERM, timeout=30)

    def kill(self, node_id: int = 1) -> None:
        """SIGKILL one node (fault tests)."""
        stop_process(self._nodes[node_id - 1].proc, signal.SIGKILL)



def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def _broker_count(bootstrap: str) -> int:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        cluster = await client.fetch_all_metadata()
        return len(cluster.brokers())
    finally:
        await client.close()


def _run_async(coro: object) -> int:
    """Run a coroutine to completion from sync code, also when a loop is running here."""
    result: list[int] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001  # handed to the caller, who raises it
            error.append(e)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]
