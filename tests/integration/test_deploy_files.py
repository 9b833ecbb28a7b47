"""docker-compose.yml cannot run here (no Docker engine): it is validated against the compose
specification, and what can be checked by reading is checked. The same topology runs as
local processes in tests/integration/test_topology.py.

`compose_spec.json` is the compose specification's JSON schema as shipped in docker-compose
1.29.2 (Apache License 2.0), kept here so the check needs no network.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from click.testing import CliRunner

from leadstream.cli import main
from leadstream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]



def _aliases() -> set[str]:
    out = set()
    for f in Settings.model_fields.values():
        alias = f.validation_alias
        out |= set(getattr(alias, "choices", [alias]))
    return {a for a in out if isinstance(a, str)}


KNOWN_ENV = _aliases()


def test_the_file_is_valid_against_the_compose_specification() -> None:
    schema = yaml.safe_load((Path(__file__).parent / "compose_spec.json").read_text())
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in jsonschema_rs.validator_for(schema).iter_errors(COMPOSE)]
    assert errors == []


def _env(svc: dict[str, Any]) -> dict[str, str]:
    return dict(svc.get("environment") or {})


def test_every_leadstream_env_var_in_compose_is_a_setting() -> None:
    for name, svc in SERVICES.items():
        if "leadstream" not in str(svc.get("command", "")):
            continue  # Kafka, Postgres, Caddy: their own variables (LEADSTREAM_DOMAIN: Caddy)
        for var in _env(svc):
            if var.startswith(("LEADSTREAM_", "KAFKA_BOOTSTRAP", "DATABASE_")):
                assert var in KNOWN_ENV, f"{name}: {var} is not read by leadstream"


def test_every_leadstream_command_in_compose_exists() -> None:
    runner = CliRunner()
    seen = 0
    for svc in SERVICES.values():
        cmd = svc.get("command")
        if not isinstance(cmd, str):
            continue
        for chunk in cmd.replace("sh -c", "").strip(" \"").split("&&"):
            words = shlex.split(chunk)
            if words and words[0] == "leadstream":
                result = runner.invoke(main, [*words[1:], "--help"])
                assert result.exit_code == 0, (chunk, result.output)
                seen += 1
    assert seen >= 6


def test_three_brokers_replicate_everything_and_clients_know_all_three() -> None:
    brokers = [n for n in SERVICES if n.startswith("kafka-")]
    assert len(brokers) == 3
    ids = {_env(SERVICES[b])["KAFKA_NODE_ID"] for b in brokers}
    assert ids == {"1", "2", "3"}
    for b in brokers:
        env = _env(SERVICES[b])
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{b}:9092"
    for role in ("setup", "webhook-1", "webhook-2", "worker-1", "worker-2"):
        env = _env(SERVICES[role])
        assert set(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == {f"{b}:9092" for b in brokers}
        assert env["LEADSTREAM_TOPIC_REPLICATION"] == "3"
        assert env["LEADSTREAM_TOPIC_MIN_INSYNC"] == "2"


def test_writers_use_the_primary_and_readers_the_standby() -> None:
    for role in ("setup", "webhook-1", "worker-1", "worker-2"):
        env = _env(SERVICES[role])
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert "@postgres-standby:5432/" in env["DATABASE_READ_URL"]
    standby = SERVICES["postgres-standby"]
    script = (ROOT / "deploy/postgres/standby-entrypoint.sh").read_text()
    assert "pg_basebackup" in script and " -R " in script
    assert any("standby-entrypoint.sh" in v for v in standby["volumes"])
    assert "wal_level=replica" in SERVICES["postgres"]["command"]


def test_each_worker_has_its_own_state_and_tables_have_standbys() -> None:
    workers = [n for n in SERVICES if n.startswith("worker-")]
    assert len(workers) >= 2
    volumes = [SERVICES[w]["volumes"][0].split(":")[0] for w in workers]
    assert len(set(volumes)) == len(volumes)
    for w in workers:
        env = _env(SERVICES[w])
        assert env["LEADSTREAM_TABLE_STORE"] == "rocksdb://"
        assert int(env["LEADSTREAM_TABLE_STANDBY_REPLICAS"]) >= 1


def test_restart_policies_healthchecks_and_pinned_images() -> None:
    for name, svc in SERVICES.items():
        assert "restart" in svc, name
        if name != "setup":
            assert "healthcheck" in svc or name == "proxy", name
        image = svc.get("image", "")
        assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+(-\w+)?", image), (name, image)  # pinned


def test_tls_proxy_in_front_of_the_webhook_servers() -> None:
    proxy = SERVICES["proxy"]
    assert "443:443" in proxy["ports"]
    caddy = (ROOT / "deploy/Caddyfile").read_text()
    assert "webhook-1:8080" in caddy and "webhook-2:8080" in caddy and "/readyz" in caddy
    for name, svc in SERVICES.items():
        if "monitoring" in svc.get("profiles", []):
            # the operator's tools: on the host's loopback only (a tunnel reaches them)
            assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), name
        elif name != "proxy":
            assert "ports" not in svc, f"{name} should be reached through the proxy only"


def test_the_image_and_ci_install_the_locked_versions() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(r"^faust-streaming==\S+$", lock, re.M)
    assert "-c requirements.lock" in (ROOT / "Dockerfile").read_text()
    assert "-c requirements.lock" in (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("caddy") is None,
                    reason="no caddy here (`make test` installs Debian's where apt-get can)")
def test_caddy_parses_the_caddyfile_and_never_buffers_the_live_stream() -> None:
    """Caddy itself adapts the Caddyfile; the live stream is flushed at once and not gzipped
    (a gzip buffer would hold Server-Sent Events back)."""
    out = subprocess.run(["caddy", "adapt", "--config", str(ROOT / "deploy/Caddyfile"),
                          "--adapter", "caddyfile"], capture_output=True, text=True,
                         env={**os.environ, "LEADSTREAM_DOMAIN": "leads.example.com"},
                         timeout=60, check=True)
    routes = json.loads(out.stdout)["apps"]["http"]["servers"]["srv0"]["routes"]
    inner = routes[0]["handle"][0]["routes"]
    handlers = [h for r in inner for h in r["handle"]]
    proxy = next(h for h in handlers if h["handler"] == "reverse_proxy")
    # one body limit: the app's (issue #24)
    from leadstream.config import Settings

    body = next(h for h in handlers if h["handler"] == "request_body")
    assert body["max_size"] == Settings().max_body_bytes
    # metrics and readiness are answered 404 to the internet, before the proxy
    blocked = next(i for i, r in enumerate(inner)
                   if any(h["handler"] == "static_response" for h in r["handle"]))
    assert set(inner[blocked]["match"][0]["path"]) == {"/metrics", "/readyz"}
    assert blocked < next(i for i, r in enumerate(inner)
                          if any(h["handler"] == "reverse_proxy" for h in r["handle"]))
    assert proxy["flush_interval"] == -1
    assert proxy["health_checks"]["active"]["uri"] == "/readyz"
    # one request id per request, on the servers' log lines (ops.logs)
    assert proxy["headers"]["request"]["set"]["X-Request-Id"] == ["{http.request.uuid}"]
    encode = next(h for h in handlers if h["handler"] == "encode")
    types = encode["match"]["headers"]["Content-Type"]
    assert types and not any("event-stream" in t or t in ("text/*", "*") for t in types)
