"""The alert rules (deploy/prometheus/alerts.yml) and the Grafana dashboard (deploy/grafana/) name
only metrics that Cradle's processes export: every name in every expression is found on the
metrics listeners of a running stack (all four services and the gateway)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Stack
from tests.support import listener_client

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "cradle.json"
# Recorded by Prometheus itself for every target, not by the processes.
PROMETHEUS_OWN = frozenset({"up"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"\b[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?\b")
_NAMES = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers,
    ranges, grouping clauses, functions (a name before `(`), keywords and numbers are taken out."""
    rest = _STRINGS.sub(" ", expr)
    rest = _MATCHERS.sub(" ", rest)
    rest = _RANGES.sub(" ", rest)
    rest = _GROUPING.sub(" ", rest)
    rest = _NUMBERS.sub(" ", rest)
    names = set()
    for match in _NAMES.finditer(rest):
        is_function = rest[match.end() :].lstrip().startswith("(")
        if not is_function and match.group(0).lower() not in KEYWORDS:
            names.add(match.group(0))
    return names


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        'sum by (service, status) (rate(cradle_http_requests_total{status=~"5.."}[5m])) '
        "/ sum by (service) (rate(cradle_http_requests_total[5m])) > 0.05"
    ) == {"cradle_http_requests_total"}
    assert metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(cradle_gateway_request_seconds_bucket[5m]))) > 2"
    ) == {"cradle_gateway_request_seconds_bucket"}
    assert metric_names("a > 0 and on (service, consumer) b == 0") == {"a", "b"}
    assert metric_names('process_resident_memory_bytes{job="cradle"} > 650e6') == {
        "process_resident_memory_bytes"
    }


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    found = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    assert found, "no alert rules"
    for name, rule in ((r["alert"], r) for g in rules["groups"] for r in g["rules"]):
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name
    return found


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = {panel["title"]: target["expr"] for panel in dashboard["panels"] for target in panel["targets"]}
    assert found, "no panels"
    return found


async def exported_names(stack: Stack) -> set[str]:
    """Every sample name the processes can export, histograms' and counters' suffixes included."""
    names: set[str] = set()
    for app in (stack.gateway, *stack.apps.values()):
        async with listener_client(app) as client:
            text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"),
                "info": ("_info",),
            }.get(family.type, ())
            names.update(family.name + suffix for suffix in suffixes)
            names.update(sample.name for sample in family.samples)
    return names


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_alerts_and_dashboard_name_only_exported_metrics(full_stack: Stack) -> None:
    exported = await exported_names(full_stack) | PROMETHEUS_OWN
    for source, expressions in (
        ("alerts.yml", alert_expressions()),
        ("cradle.json", dashboard_expressions()),
    ):
        for title, expr in expressions.items():
            unknown = metric_names(expr) - exported
            assert not unknown, f"{source}: {title} reads {sorted(unknown)}, which no process exports"


def test_prometheus_in_compose_scrapes_every_process_on_its_metrics_listener() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "cradle"]
    targets = {target for config in job["static_configs"] for target in config["targets"]}
    listening = set()
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        ports = {key: value for key, value in environment.items() if key.endswith("_METRICS_PORT")}
        if not ports:
            continue
        ((variable, port),) = ports.items()
        assert environment[variable.replace("_PORT", "_HOST")] == "0.0.0.0", name
        assert str(port) in {str(p).split()[0] for p in service.get("expose", [])}, name
        listening.add(f"{name}:{port}")
    assert listening and targets == listening
    prometheus = compose["services"]["prometheus"]
    mounted = {volume.split(":")[1] for volume in prometheus["volumes"]}
    assert set(scrape["rule_files"]) <= mounted and "/etc/prometheus/prometheus.yml" in mounted


def test_grafana_in_compose_is_provisioned_with_the_dashboard_on_that_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounted = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        mounted[target] = source
    provisioning = "/etc/grafana/provisioning"
    assert mounted[f"{provisioning}/datasources/cradle.yml"] == "./deploy/grafana/datasources.yml"
    assert mounted[f"{provisioning}/dashboards/cradle.yml"] == "./deploy/grafana/dashboards.yml"
    # The provider reads the directory the dashboard is mounted in.
    (provider,) = yaml.safe_load((ROOT / "deploy" / "grafana" / "dashboards.yml").read_text())["providers"]
    assert mounted[f"{provider['options']['path']}/cradle.json"] == "./deploy/grafana/cradle.json"
    # The data source is the compose Prometheus, on the port it listens on.
    (source,) = yaml.safe_load((ROOT / "deploy" / "grafana" / "datasources.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"] and "prometheus" in grafana["depends_on"]
    # Its admin password is a secret file, never a value in the environment.
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana-admin-password"
    assert "grafana-admin-password" in grafana["secrets"] and "grafana-admin-password" in compose["secrets"]
    assert all(str(port).startswith("127.0.0.1:") for port in grafana["ports"])


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """`docker-compose config -q`, the tool's own validation, where the tool is installed."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed")
    env = os.environ | {"CRADLE_SECRETS_DIR": str(tmp_path / "s"), "CRADLE_NATS_DIR": str(tmp_path / "n")}
    done = subprocess.run(
        [tool, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
