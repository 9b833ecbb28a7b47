"""The operator's monitoring (issue #28): the alert rules pass `promtool check` and their
unit tests (each alert fires and stays quiet), every expression of the rules and of the
Grafana dashboard names a metric the processes export, and a real Prometheus scrapes a
running pipeline and, when its worker stops, pages that it is down and then that its
consumer lag grows (read from the broker by the webhook/API server).

Debian's `prometheus` package provides `prometheus` and `promtool`; `make test` installs it
where apt-get can, and these tests skip, saying why, where it could not."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from leadstream.config import Settings
from leadstream.embedded.procs import free_port
from leadstream.simulate.kapso import kapso_message
from tests.support.fixtures import StartPipeline
from tests.support.pipeline import PNID, eventually

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "leadstream.json"
#: the rules' promtool unit tests (the daily ones evaluate every 5 minutes over days)
TEST_FILES = ("alerts.test.yml", "alerts.daily.test.yml")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_PROMTOOL = pytest.mark.skipif(PROMTOOL is None, reason="no promtool on this machine: `make "
                                 "test` installs Debian's prometheus where apt-get can")


def _promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@NO_PROMTOOL
def test_the_rules_pass_promtool_and_their_unit_tests(tmp_path: Path) -> None:
    checked = _promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", *TEST_FILES)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # the production config, with its rules file where this machine has it
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROM / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    conf = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert conf.returncode == 0, conf.stdout + conf.stderr


def test_every_alert_has_a_severity_a_summary_a_runbook_and_a_unit_test() -> None:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"][0]["rules"]
    tested = {t["alertname"] for f in TEST_FILES
              for case in yaml.safe_load((PROM / f).read_text())["tests"]
              for t in case["alert_rule_test"] if t["exp_alerts"]}
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["runbook"], r["alert"]
        assert r["alert"] in tested, f"{r['alert']} is never shown firing"


def exported_metrics() -> set[str]:
    """Every series name the webhook and the worker export, read from the source: counter
    families get `_total`, histograms `_bucket`, `_sum` and `_count`."""
    names: set[str] = set()
    call = re.compile(r"\b(_counter|_gauge|CounterMetricFamily|GaugeMetricFamily|"
                      r"HistogramMetricFamily|Counter|Histogram|Gauge)\(\s*\"(leadstream_\w+)\"")
    for path in (ROOT / "leadstream").rglob("*.py"):
        for kind, name in call.findall(path.read_text()):
            if kind in ("_counter", "CounterMetricFamily"):
                names.add(name + "_total")
            elif kind in ("HistogramMetricFamily", "Histogram"):
                names |= {name + "_bucket", name + "_sum", name + "_count"}
            else:
                names.add(name)
    return names


def _expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"][0]["rules"]
    out = [(f"rule {r['alert']}", str(r["expr"])) for r in rules]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out += [(f"panel {panel['title']!r}", t["expr"]) for t in panel["targets"]]
    return out


def test_every_expression_names_a_metric_the_processes_export() -> None:
    exported = exported_metrics()
    assert "leadstream_worker_freshness_seconds_bucket" in exported  # the reading works
    assert "leadstream_webhook_refusals_total" in exported
    unknown = [(where, name) for where, expr in _expressions()
               for name in re.findall(r"\bleadstream_\w+", expr) if name not in exported]
    assert unknown == []
    used = {n for _, e in _expressions() for n in re.findall(r"\bleadstream_\w+", e)}
    # the dashboard and the alerts between them watch the product's promises
    assert {"leadstream_worker_freshness_seconds_bucket", "leadstream_worker_consumer_lag",
            "leadstream_reconcile_failures"} <= used


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus on this machine: `make test` "
                    "installs Debian's prometheus where apt-get can")
async def test_a_real_prometheus_pages_a_stopped_worker_and_the_lag_it_leaves(
        pipelines: StartPipeline, settings: Settings, tmp_path: Path) -> None:
    worker_port = free_port()
    p = await pipelines(settings.model_copy(update={"worker_http_port": worker_port,
                                                    "group_lag_seconds": 1.0}))
    assert p.server is not None
    # the production rules, their `for:` shortened to seconds (the same expressions)
    # and the lag's delta over 30 s, not 5 minutes
    rules = re.sub(r"for: \d+m", "for: 3s", (PROM / "alerts.yml").read_text())
    rules = rules.replace("delta(leadstream_group_lag[5m])", "delta(leadstream_group_lag[30s])")
    (tmp_path / "alerts.yml").write_text(rules)
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(tmp_path / "alerts.yml")]
    config.pop("alerting")
    config["scrape_configs"] = [
        {"job_name": "leadstream-webhook",
         "static_configs": [{"targets": [f"127.0.0.1:{p.server.port}"]}]},
        {"job_name": "leadstream-worker",
         "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
    ]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert PROMETHEUS is not None
    prom = subprocess.Popen(  # noqa: ASYNC220  # a child for the test's life
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))  # noqa: SIM115, ASYNC230
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with aiohttp.ClientSession() as http:
            async def get(path: str, **params: str) -> Any:
                try:
                    async with http.get(api + path, params=params) as r:
                        return (await r.json())["data"] if r.status == 200 else None
                except aiohttp.ClientError:
                    return None

            async def targets_up() -> bool:
                data = await get("/targets")
                return bool(data) and len(data["activeTargets"]) == 2 and all(
                    t["health"] == "up" for t in data["activeTargets"])

            async def firing(name: str) -> list[dict[str, Any]]:
                data = await get("/alerts") or {"alerts": []}
                return [a for a in data["alerts"]
                        if a["labels"]["alertname"] == name and a["state"] == "firing"]

            await eventually(targets_up, timeout=90)
            assert await p.message("6281260100000", "wamid.prom1") == 200

            async def applied() -> Any:
                data = await get("/query", query="sum(leadstream_worker_events_total)")
                return data and data["result"] and float(data["result"][0]["value"][1]) >= 1

            await eventually(applied, timeout=60)
            assert await firing("LeadstreamWorkerDown") == []
            p.worker.stop()
            [alert] = await eventually(lambda: firing("LeadstreamWorkerDown"), timeout=60)
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["instance"] == f"127.0.0.1:{worker_port}"
            assert await firing("LeadstreamWebhookDown") == []
            assert await firing("LeadstreamConsumerLagRising") == []
            # messages keep coming while no worker reads: over 1,000 records behind, growing
            for b in range(3):
                await asyncio.sleep(2)  # scrapes in between: the lag rises over time
                body = {"batch": True, "data": [
                    kapso_message(PNID, wa_id=f"62812602{b:02d}{i:04d}", wamid=f"wamid.lag{b}.{i}",
                                  text="halo", ts=1_760_000_000) for i in range(400)]}
                assert await p.kapso("whatsapp.message.received", body) == 200
            [lag] = await eventually(lambda: firing("LeadstreamConsumerLagRising"), timeout=60)
            assert (lag["labels"]["role"], lag["labels"]["group"]) == ("worker", settings.app_id)
            assert lag["labels"]["severity"] == "warning"
            assert float(lag["value"]) >= 1000
    finally:
        prom.terminate()
        await asyncio.to_thread(prom.wait, 20)
