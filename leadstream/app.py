"""The Faust application, made from settings (`create_app`). `leadstream worker` is the
supported entry point (`bootstrap.build_worker`); `faust -A leadstream.bootstrap worker` works
too: the module-level `app` that Faust's convention asks for is built there, with its
topology, on first access rather than at import.

Consumer timing is tuned so a restarted worker processes again within seconds: session 6 s,
heartbeat 1 s, rebalance 6 s (Faust's 60 s defaults make every join take 30 s on Tansu).
"""

from __future__ import annotations

from typing import Any

import faust

from leadstream.broker.clients import DLQ_MAX_RECORD_BYTES, faust_broker_url
from leadstream.config import Settings


def faust_credentials(settings: Settings) -> Any:
    """Faust's form of the Kafka security settings (None: plaintext)."""
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    ssl_context = settings.kafka_security().get("ssl_context")
    if proto.startswith("SASL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password,
                                     ssl_context=ssl_context,
                                     mechanism=settings.kafka_sasl_mechanism)
    return faust.SSLCredentials(ssl_context)


def create_app(settings: Settings) -> faust.App:
    if not settings.kafka_bootstrap_servers:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": "localhost:9092"})
    datadir = settings.data_dir / "worker-state"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=faust_broker_url(settings),
        store=settings.table_store,
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        broker_request_timeout=max(40.0, settings.session_timeout_seconds + 5),
        broker_commit_interval=1.0,
        broker_max_poll_records=settings.fetch_max_records,
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        # aiokafka keeps one batch in flight per partition and makes a full one wait, so
        # Faust's 16 KB default capped a burst (100k daily windows at close) at ~3k
        # records/s: 256 KB, as the webhook's and the sink's producers
        producer_max_batch_size=256 * 1024,
        producer_compression_type=settings.compression_type,
        # a dead letter carries its whole source record (the DLQ topic takes 16 MiB)
        producer_max_request_size=DLQ_MAX_RECORD_BYTES,
        table_standby_replicas=settings.table_standby_replicas,
        broker_credentials=faust_credentials(settings),
        table_cleanup_interval=5.0,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )

