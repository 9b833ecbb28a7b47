"""Configuration from the environment (and `.env`), one place for every knob.

Names follow the contract (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `LEADSTREAM_*`).
When `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` are unset, the commands look for a running
`leadstream up` through the runtime file in `LEADSTREAM_DATA_DIR` (see `leadstream.runtime`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadstream.runtime import read_runtime


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    #: where the API and the dashboard read (a streaming standby); default DATABASE_URL.
    #: Writers (worker, sink, migrations, workspace commands) always use DATABASE_URL
    database_read_url: str | None = Field(default=None,
                                          validation_alias=AliasChoices("DATABASE_READ_URL"))
    #: a managed Kafka: how every client (webhook, worker, sink, CLI) connects.
    #: PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL; SASL mechanism PLAIN | SCRAM-SHA-256 |
    #: SCRAM-SHA-512; a CA file for TLS (default: the system's), a client cert for mTLS
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias="LEADSTREAM_KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", validation_alias="LEADSTREAM_KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(default=None,
                                            validation_alias="LEADSTREAM_KAFKA_SASL_USERNAME")
    kafka_sasl_password: str | None = Field(default=None,
                                            validation_alias="LEADSTREAM_KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str | None = Field(default=None,
                                         validation_alias="LEADSTREAM_KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(default=None,
                                           validation_alias="LEADSTREAM_KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(default=None,
                                          validation_alias="LEADSTREAM_KAFKA_SSL_KEYFILE")
    #: `kafka` for Apache Kafka (production); `tansu` switches on the embedded-broker workarounds.
    kafka_flavor: Literal["kafka", "tansu"] = Field(
        default="kafka", validation_alias=AliasChoices("LEADSTREAM_KAFKA_FLAVOR")
    )
    #: with no KAFKA_BOOTSTRAP_SERVERS, which broker `up` (and the tests) start: `auto` is
    #: Apache Kafka where Java 17+ and Maven are found, else Tansu (embedded.broker)
    embedded_broker: Literal["auto", "kafka", "tansu"] = Field(
        default="auto", validation_alias="LEADSTREAM_EMBEDDED_BROKER")

    http_host: str = Field(default="127.0.0.1", validation_alias="LEADSTREAM_HTTP_HOST")
    http_port: int = Field(default=8080, validation_alias="LEADSTREAM_HTTP_PORT")
    data_dir: Path = Field(default=Path(".leadstream"), validation_alias="LEADSTREAM_DATA_DIR")
    timezone: str = Field(default="Asia/Jakarta", validation_alias="LEADSTREAM_TIMEZONE")
    daily_close_grace_seconds: int = Field(
        default=600, validation_alias="LEADSTREAM_DAILY_CLOSE_GRACE_SECONDS"
    )
    #: how long closed days stay in the worker's table so late events update them in place
    daily_retention_days: int = Field(default=3, validation_alias="LEADSTREAM_DAILY_RETENTION_DAYS")
    #: how often each worker checks for daily windows to close
    daily_tick_seconds: float = Field(default=5.0, validation_alias="LEADSTREAM_DAILY_TICK_SECONDS")
    #: local time (LEADSTREAM_TIMEZONE) the manager's workspace digest is written each day;
    #: `off` writes none (`GET /api/digest` still computes one on request)
    digest_time: str = Field(default="09:00", pattern=r"^(off|([01]\d|2[0-3]):[0-5]\d)$",
                             validation_alias="LEADSTREAM_DIGEST_TIME")
    #: which day the digest covers: `yesterday` (the morning report, default) or `today`
    #: (e.g. LEADSTREAM_DIGEST_TIME=18:00 for an evening report over the day that ends)
    digest_day: Literal["yesterday", "today"] = Field(default="yesterday",
                                                      validation_alias="LEADSTREAM_DIGEST_DAY")
    #: optional LLM summaries (any OpenAI-compatible chat-completions endpoint)
    llm_base_url: str | None = Field(default=None, validation_alias="LEADSTREAM_LLM_BASE_URL")
    llm_model: str | None = Field(default=None, validation_alias="LEADSTREAM_LLM_MODEL")
    llm_api_key: str | None = Field(default=None, validation_alias="LEADSTREAM_LLM_API_KEY")
    llm_concurrency: int = Field(default=8, validation_alias="LEADSTREAM_LLM_CONCURRENCY")
    llm_timeout_seconds: float = Field(default=20.0, validation_alias="LEADSTREAM_LLM_TIMEOUT")
    default_region: str = Field(default="ID", validation_alias="LEADSTREAM_DEFAULT_REGION")

    #: reconciliation from Kapso's API (issue #27, `reconcile.Reconciler`): its base URL,
    #: how often each worker reconciles (0: at start only, -1: never, on demand still works),
    #: over how far back, in slices of how long (the watermark advances per slice), and how
    #: many of one workspace's numbers are read at once
    kapso_api_url: str = Field(default="https://api.kapso.ai",
                               validation_alias="LEADSTREAM_KAPSO_API_URL")
    reconcile_interval_seconds: float = Field(
        default=600.0, validation_alias="LEADSTREAM_RECONCILE_INTERVAL_SECONDS")
    reconcile_lookback_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="LEADSTREAM_RECONCILE_LOOKBACK_SECONDS")
    reconcile_slice_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="LEADSTREAM_RECONCILE_SLICE_SECONDS")
    reconcile_concurrency: int = Field(default=2, ge=1,
                                       validation_alias="LEADSTREAM_RECONCILE_CONCURRENCY")
    #: the longest window a start-up or periodic run goes back (a number never reconciled,
    #: or a watermark older than this, starts here): Kapso keeps messages long, an outage
    #: of a week is repaired, a year is not read at every start
    reconcile_max_window_seconds: float = Field(
        default=7 * 86400.0, gt=0, validation_alias="LEADSTREAM_RECONCILE_MAX_WINDOW_SECONDS")

    #: how often each worker gives new leads an owner where a workspace asks for it
    #: (`workspace add --auto-assign`; issue #29); -1: never
    auto_assign_seconds: float = Field(default=5.0,
                                       validation_alias="LEADSTREAM_AUTO_ASSIGN_SECONDS")

    #: Prefix of every topic name; tests use their own to stay isolated on one broker.
    topic_prefix: str = Field(default="leadstream", validation_alias="LEADSTREAM_TOPIC_PREFIX")
    #: Prefix of the topics a worker fleet derives (leads, messages, history, notes, daily and
    #: its internal ones); defaults to `topic_prefix`. A reprocessing fleet sets its own so it
    #: can rebuild a fresh replica from the sources while the old one keeps serving (README).
    derived_prefix: str | None = Field(default=None,
                                       validation_alias="LEADSTREAM_DERIVED_PREFIX")
    topic_partitions: int = Field(default=8, validation_alias="LEADSTREAM_TOPIC_PARTITIONS")
    topic_replication: int = Field(default=1, ge=1, validation_alias="LEADSTREAM_TOPIC_REPLICATION")
    #: `min.insync.replicas` of every topic we create (Faust's changelogs too); default
    #: min(2, replication): with acks=all a write then survives the loss of one broker
    topic_min_insync: int | None = Field(default=None, ge=1,
                                         validation_alias="LEADSTREAM_TOPIC_MIN_INSYNC")
    #: Faust application id = consumer group of the workers.
    app_id: str = Field(default="leadstream-worker", validation_alias="LEADSTREAM_APP_ID")
    sink_group: str = Field(default="leadstream-sink", validation_alias="LEADSTREAM_SINK_GROUP")
    #: Faust table store. `memory://` recovers from the changelog at start;
    #: `rocksdb://` keeps state on disk and reads only the changelog tail.
    table_store: str = Field(default="memory://", validation_alias="LEADSTREAM_TABLE_STORE")
    #: with `rocksdb://`: each table partition is a RocksDB database of its own (3 tables x
    #: the partitions a worker holds), and Faust gives each a 2 GiB block cache and three
    #: 64 MiB memtables: a worker's memory grew past 1.4 GB at 650k leads (bench/scale.py).
    #: Per database: memtable size (two of them) and block cache, in MiB; 0: Faust's
    rocksdb_write_buffer_mb: int = Field(default=8, ge=0,
                                         validation_alias="LEADSTREAM_ROCKSDB_WRITE_BUFFER_MB")
    rocksdb_block_cache_mb: int = Field(default=16, ge=0,
                                        validation_alias="LEADSTREAM_ROCKSDB_BLOCK_CACHE_MB")
    #: Faust standby replicas per table partition: another worker keeps a warm copy, so a
    #: takeover does not wait for a changelog recovery (production: 1)
    table_standby_replicas: int = Field(default=0, ge=0,
                                        validation_alias="LEADSTREAM_TABLE_STANDBY_REPLICAS")

    max_body_bytes: int = Field(default=3 * 1024 * 1024, validation_alias="LEADSTREAM_MAX_BODY_BYTES")
    #: connection hygiene (http.guard): a connection that has not completed a request in
    #: this long is closed (headers included); a body must arrive within its timeout (408);
    #: past so many open connections a new one is answered 503; bodies being read at once
    #: may declare at most so many bytes together (503 past it)
    http_idle_timeout: float = Field(default=10.0, gt=0,
                                     validation_alias="LEADSTREAM_HTTP_IDLE_TIMEOUT")
    http_body_timeout: float = Field(default=10.0, gt=0,
                                     validation_alias="LEADSTREAM_HTTP_BODY_TIMEOUT")
    http_max_connections: int = Field(default=2000, ge=1,
                                      validation_alias="LEADSTREAM_HTTP_MAX_CONNECTIONS")
    http_max_inflight_bytes: int = Field(default=32 * 1024 * 1024, ge=1,
                                         validation_alias="LEADSTREAM_HTTP_MAX_INFLIGHT_BYTES")
    #: How long the webhook waits for the broker's ack before answering 503.
    publish_timeout_seconds: float = Field(
        default=5.0, validation_alias="LEADSTREAM_PUBLISH_TIMEOUT_SECONDS"
    )

    # Consumer-group timing: short enough that a restarted worker is back within seconds.
    session_timeout_seconds: float = Field(default=6.0, validation_alias="LEADSTREAM_SESSION_TIMEOUT")
    heartbeat_interval_seconds: float = Field(
        default=1.0, validation_alias="LEADSTREAM_HEARTBEAT_INTERVAL"
    )
    rebalance_timeout_seconds: float = Field(
        default=6.0, validation_alias="LEADSTREAM_REBALANCE_TIMEOUT"
    )

    #: how long a consumer's fetch may wait for records on the embedded broker (Tansu answers
    #: an empty fetch only after half the remaining wait, again and again: EMBEDDED-BROKER
    #: #5). Shorter is less latency per hop, longer is fewer idle fetches, which cost CPU the
    #: whole box shares. 60: idle, worker + broker took 0.41 core at 20 ms and 0.24 at 60 ms,
    #: while p99 per hop is ~16 ms at 20 and ~58 ms at 100: far inside the 1 s goal
    #: (BENCHMARKS.md, session 4)
    fetch_max_wait_ms: int = Field(default=60, ge=1, validation_alias="LEADSTREAM_FETCH_MAX_WAIT_MS")
    #: the worker's fetches on Apache Kafka: the broker holds a fetch until this many bytes
    #: or LEADSTREAM_FETCH_MAX_WAIT_MS (1: answer at the first record, Faust's default);
    #: see broker.faust_consumer.SeekFirstConsumerThread
    fetch_min_bytes: int = Field(default=64 * 1024, ge=1,
                                 validation_alias="LEADSTREAM_FETCH_MIN_BYTES")
    #: the most records one poll of the worker's consumer hands over (Faust's
    #: `broker_max_poll_records`; Faust leaves it unbounded). Fetches are compressed (zstd:
    #: ~22x), so a poll of everything buffered held up to 1 MiB x 22 of decoded records per
    #: partition at once, and the worker's memory kept that high-water mark: 1,013 MB after
    #: draining 1M leads against 515 MB uncompressed (BENCHMARKS.md, session 13)
    fetch_max_records: int = Field(default=5000, ge=1,
                                   validation_alias="LEADSTREAM_FETCH_MAX_RECORDS")
    #: how long the worker's producer waits to fill a batch: fewer, larger produce requests
    #: cost the broker (and the shared CPU) less per event; bench/suite.py measures the trade
    producer_linger_ms: float = Field(default=2.0, validation_alias="LEADSTREAM_PRODUCER_LINGER_MS")
    #: every producer's batch compression (the worker's, the webhook's, the sink's). `auto`:
    #: zstd on Apache Kafka, where bench/compression.py measured it against none on this box
    #: at 22x fewer bytes stored per event, 7-15% less CPU per event over the whole box and
    #: a 17-22% faster drain (BENCHMARKS.md), except the webhook's single deliveries
    #: and commands (the latency path: `http.publisher`); none on Tansu (not measured there).
    #: A produce batch of fewer than `broker.clients.COMPRESS_FROM` records always goes as it is
    producer_compression: Literal["auto", "none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="auto", validation_alias="LEADSTREAM_PRODUCER_COMPRESSION")

    @property
    def compression_type(self) -> str | None:
        """aiokafka's and Faust's name for it (None: uncompressed)."""
        codec = self.producer_compression
        if codec == "auto":
            codec = "none" if self.kafka_flavor == "tansu" else "zstd"
        return None if codec == "none" else codec
    #: the worker's batch hot path (agents.batch): source records are applied per fetch and
    #: made durable together (changelog, outputs, replica), then acked. A batch grows while
    #: the consumer has records buffered, up to this many events or this age, and is flushed
    #: as soon as the buffer is empty: an idle worker flushes each arrival at once, a busy
    #: one amortizes every produce request and Postgres transaction over many events.
    #: `LEADSTREAM_WORKER_BATCH=false` takes the records one at a time through Faust's
    #: agent instead (each still flushed before its ack; kept to compare, bench/suite.py)
    worker_batch: bool = Field(default=True, validation_alias="LEADSTREAM_WORKER_BATCH")
    flush_max_events: int = Field(default=5000, ge=1,
                                  validation_alias="LEADSTREAM_FLUSH_MAX_EVENTS")
    flush_max_ms: float = Field(default=50.0, gt=0, validation_alias="LEADSTREAM_FLUSH_MAX_MS")
    #: how many keys per table the worker keeps decoded between flushes (`agents.flush.
    #: Decoded`: a lead read again is not parsed and validated again while the store holds
    #: the bytes it was kept with). Measured: a lead 7 KB decoded + 1.8 KB of bytes, a day
    #: aggregate 3.1 + 0.9 KB, a message 1.4 + 0.4 KB: at most ~75 MB at 5,000; 0: off
    state_cache_entries: int = Field(default=5_000, ge=0,
                                     validation_alias="LEADSTREAM_STATE_CACHE_ENTRIES")
    #: who writes the lead, message, status-history and note rows: `worker` (each flush,
    #: before its offsets are acked; the sink keeps the daily rows, summary notes and dead
    #: letters) or `sink` (everything read back from the derived topics: a worker without
    #: database access, e.g. in another network)
    replica_writer: Literal["worker", "sink"] = Field(
        default="worker", validation_alias="LEADSTREAM_REPLICA_WRITER")
    #: the worker's /healthz, /readyz and /metrics (contract §5); 0: not served
    worker_http_host: str = Field(default="127.0.0.1",
                                  validation_alias="LEADSTREAM_WORKER_HTTP_HOST")
    worker_http_port: int = Field(default=6066, ge=0, validation_alias="LEADSTREAM_WORKER_HTTP_PORT")
    #: a worker whose assigned source partitions have lag and whose committed offsets have
    #: not moved for this long is stalled: `/readyz` 503 with the partitions, one log line
    #: with its state, `leadstream_worker_stalled_partitions` (ops.stall); 0 turns it off
    stall_seconds: float = Field(default=30.0, ge=0, validation_alias="LEADSTREAM_STALL_SECONDS")
    #: `leadstream webhook` runs this many server processes on one port (SO_REUSEPORT,
    #: http.fleet): one per core the box gives the webhook; `--processes` overrides
    http_processes: int = Field(default=1, ge=1, validation_alias="LEADSTREAM_HTTP_PROCESSES")
    #: bind the HTTP port with SO_REUSEPORT (set by the fleet for its children)
    http_reuse_port: bool = Field(default=False, validation_alias="LEADSTREAM_HTTP_REUSE_PORT")
    #: the webhook/API server's /metrics reads every consumer group's lag from the broker
    #: (`leadstream_group_lag`, ops.lag) at most this often; 0: not exported
    group_lag_seconds: float = Field(default=10.0, ge=0,
                                     validation_alias="LEADSTREAM_GROUP_LAG_SECONDS")
    #: dead letters the replica keeps (`sync_failures`): at most this many days old, and the
    #: newest this many per workspace (the old system's "last 1,000"); 0 turns a limit off
    dlq_retention_days: int = Field(default=30, ge=0,
                                    validation_alias="LEADSTREAM_DLQ_RETENTION_DAYS")
    dlq_retention_count: int = Field(default=1000, ge=0,
                                     validation_alias="LEADSTREAM_DLQ_RETENTION_COUNT")
    sink_batch_max: int = Field(default=5000, validation_alias="LEADSTREAM_SINK_BATCH_MAX")
    sink_linger_ms: int = Field(default=5, validation_alias="LEADSTREAM_SINK_LINGER_MS")
    log_level: str = Field(default="info", validation_alias="LEADSTREAM_LOG_LEVEL")
    #: the event loop of every process of ours (webhook/API server, worker, sink): `uvloop`
    #: (libuv; `auto`, the default, where it is installed) or `asyncio` (the standard
    #: library's)
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto", validation_alias="LEADSTREAM_EVENT_LOOP")
    #: `text` (default) or `json`: one JSON object per line, for a log pipeline
    log_format: Literal["text", "json"] = Field(default="text",
                                                validation_alias="LEADSTREAM_LOG_FORMAT")

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for name, f in type(self).model_fields.items():
            alias = f.validation_alias
            key = alias.choices[0] if isinstance(alias, AliasChoices) else alias
            value = getattr(self, name)
            if value is not None and isinstance(key, str):
                env[key] = str(value)
        return env

    @property
    def min_insync(self) -> int:
        return min(self.topic_min_insync or 2, self.topic_replication)

    def topic(self, name: str, derived: bool = False) -> str:
        """Full topic name; `derived` topics take `derived_prefix` when it is set."""
        prefix = (self.derived_prefix or self.topic_prefix) if derived else self.topic_prefix
        return f"{prefix}.{name}"

    @property
    def read_dsn(self) -> str:
        """Where readers (API, dashboard) connect: DATABASE_READ_URL, else DATABASE_URL."""
        return self.database_read_url or self.dsn

    def kafka_security(self) -> dict[str, Any]:
        """aiokafka client arguments for the configured security (empty: plaintext)."""
        kw: dict[str, Any] = {}
        if self.kafka_security_protocol == "PLAINTEXT":
            return kw
        kw["security_protocol"] = self.kafka_security_protocol
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            ctx = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                ctx.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            kw["ssl_context"] = ctx
        if self.kafka_security_protocol.startswith("SASL"):
            kw.update(sasl_mechanism=self.kafka_sasl_mechanism,
                      sasl_plain_username=self.kafka_sasl_username,
                      sasl_plain_password=self.kafka_sasl_password)
        return kw

    @property
    def bootstrap(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError(
                "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start `leadstream up` "
                f"(runtime file looked up in {self.data_dir})"
            )
        return self.kafka_bootstrap_servers

    @property
    def dsn(self) -> str:
        if not self.database_url:
            raise RuntimeError(
                "no Postgres: set DATABASE_URL or start `leadstream up` "
                f"(runtime file looked up in {self.data_dir})"
            )
        return self.database_url


def complete_from_runtime(settings: Settings) -> Settings:
    """Fill broker/database from a running `up` when the environment does not name them."""
    if settings.kafka_bootstrap_servers and settings.database_url:
        return settings
    info = read_runtime(settings.data_dir)
    if not info:
        return settings
    update: dict[str, object] = {}
    if not settings.kafka_bootstrap_servers:
        update["kafka_bootstrap_servers"] = info.get("kafka_bootstrap_servers")
        update["kafka_flavor"] = info.get("kafka_flavor", "kafka")
    if not settings.database_url:
        update["database_url"] = info.get("database_url")
    return settings.model_copy(update=update)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, completed from a running `leadstream up` if any."""
    return complete_from_runtime(Settings())
