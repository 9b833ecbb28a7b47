"""Which embedded broker `up` and the tests start (LEADSTREAM_EMBEDDED_BROKER)."""

from __future__ import annotations

import pytest

from leadstream.embedded import broker, kafka


@pytest.fixture
def kafka_possible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "available", lambda: (True, "java 17"))


@pytest.fixture
def kafka_impossible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "available", lambda: (False, "no java on PATH"))


def test_auto_starts_apache_kafka_where_it_can(kafka_possible: None) -> None:
    assert broker.choose("auto") == ("kafka", None)
    assert broker.choose("kafka") == ("kafka", None)


def test_auto_falls_back_to_tansu_with_a_notice_that_says_why(kafka_impossible: None) -> None:
    kind, notice = broker.choose("auto")
    assert kind == "tansu"
    assert notice is not None and "no java on PATH" in notice and "Tansu" in notice


def test_kafka_insisted_on_but_impossible_is_an_error_not_a_silent_tansu(
    kafka_impossible: None,
) -> None:
    with pytest.raises(RuntimeError, match="no java on PATH"):
        broker.choose("kafka")


def test_tansu_is_chosen_without_looking_for_java(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> tuple[bool, str]:
        raise AssertionError("looked for java")

    monkeypatch.setattr(kafka, "available", boom)
    assert broker.choose("tansu") == ("tansu", None)


def test_unknown_kind_is_refused(kafka_impossible: None) -> None:
    with pytest.raises(ValueError):
        broker.choose("zookeeper")


def test_availability_needs_java_17_and_maven_or_a_cached_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA_CACHE", str(tmp_path))
    monkeypatch.setattr(kafka, "java_version", lambda: 11)
    assert kafka.available() == (False, f"java 11 found, Apache Kafka {kafka.KAFKA_VERSION} "
                                        f"needs 17+")
    monkeypatch.setattr(kafka, "java_version", lambda: None)
    assert kafka.available()[0] is False
    monkeypatch.setattr(kafka, "java_version", lambda: 17)
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    assert kafka.available() == (False, "no mvn on PATH to fetch the broker (and no cached copy)")
    (kafka.cache_dir() / ".complete").write_text(kafka.KAFKA_VERSION)
    assert kafka.available() == (True, "java 17")


def test_cluster_ids_are_kraft_shaped() -> None:
    cid = kafka._cluster_id()
    assert len(cid) == 22 and "=" not in cid


@pytest.mark.integration
def test_a_cluster_id_that_starts_with_a_dash_still_formats(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """One run in 64 made such an id (base64url) and the storage tool read it as an option."""
    from pathlib import Path

    if not kafka.available()[0]:
        pytest.skip("needs Apache Kafka (java 17+ and mvn or a cached copy)")
    monkeypatch.setattr(kafka, "_cluster_id", lambda: "-AbCdEfGhIjKlMnOpQrStU")
    cluster = kafka.KafkaCluster(Path(str(tmp_path))).start(timeout=60)
    try:
        assert cluster.bootstrap and cluster.pids()
    finally:
        cluster.stop()
    assert cluster.pids() == []
