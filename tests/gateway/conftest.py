"""The gateway in front of the real registry (in this process), with settings a test may change;
and a registry in a uvicorn subprocess for the tests that kill a service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway import service as gateway_service
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.registry.app import create_app as create_registry
from services.registry.config import RegistrySettings
from shared.cli.layout import free_port
from tests.conftest import ADMIN_SECRET, ActsAsClients, service_settings
from tests.support import CHEAP_HASHING, DatabaseFactory, HostTransport, eventually, running

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gateway(ActsAsClients):
    """The gateway (and what stands behind it), with helpers to act as clients."""

    app: FastAPI
    client: httpx.AsyncClient
    database_url: str
    services: dict[str, FastAPI] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    async def bureau(self, scopes: list[str] | None = None, bureau: str = "EDU") -> dict[str, str]:
        return await self.headers_for(
            name=f"{bureau} 系统", kind="bureau", bureau=bureau, scopes=scopes or ["registry:read"]
        )

    async def audit_settled(self) -> None:
        """Wait until the audit writer has written everything recorded so far."""
        writer = self.app.state.runtime.audit
        await eventually(lambda: not writer.pending, timeout=10)


@pytest.fixture(autouse=True)
def checkpoints_to_the_tests_namespace(
    monkeypatch: pytest.MonkeyPatch, shared_nats_url: str, namespace: str
) -> None:
    """Every gateway here publishes its audit checkpoints to the test's own (provisioned) namespace."""
    monkeypatch.setenv("NATS_URL", shared_nats_url)
    monkeypatch.setenv("CRADLE_EVENT_NAMESPACE", namespace)


def gateway_settings(*, database_url: str, keys: dict[str, Any], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "internal_signing_key": keys["signing"],
        "jwt_keys": keys["jwt_keys"],
        "jwt_active_kid": keys["jwt_active_kid"],
        "pii_keys": {"t1": keys["pii_key"]},
        "pii_active_key_id": "t1",
        "pii_hmac_key": keys["pii_hmac_key"],
        "audit_hmac_key": keys["audit_hmac_key"],
        "audit_signing_key": keys["audit_signing_key"],
        "audit_checkpoint_seconds": 0.5,
        "registry_url": "http://registry",
        "workforce_url": "http://workforce",
        "monitoring_url": "http://monitoring",
        "guidance_url": "http://guidance",
        "audit_flush_seconds": 0.05,
        "secret_hashing": CHEAP_HASHING,
        "log_format": "console",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return GatewaySettings(**values)


@contextlib.asynccontextmanager
async def start_gateway(
    *,
    databases: DatabaseFactory,
    keys: dict[str, Any],
    services: dict[str, FastAPI] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    database_url: str | None = None,
    network: bool = False,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    url = database_url or await databases.fresh("gateway")
    services = services or {}
    app = create_gateway(
        gateway_settings(database_url=url, keys=keys, **overrides),
        transport=None if network else transport or HostTransport(services),
    )
    async with running(app):
        async with app.state.sessionmaker() as session, session.begin():
            await gateway_service.ensure_admin_client(
                session=session, hasher=app.state.hasher, secret=ADMIN_SECRET
            )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as client:
            yield Gateway(app=app, client=client, database_url=url, services=services)


@pytest.fixture
async def registry_app(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[FastAPI]:
    app = create_registry(
        service_settings(
            RegistrySettings,
            url=await databases.fresh("registry"),
            nats_url=shared_nats_url,
            namespace=namespace,
            keys=keys,
        )
    )
    async with running(app):
        yield app


@pytest.fixture
async def gw(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> AsyncIterator[Gateway]:
    async with start_gateway(databases=databases, keys=keys, services={"registry": registry_app}) as g:
        yield g


class ServiceProcess:
    """The registry under uvicorn in a child process, so a test can kill it mid-request."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Popen, not an asyncio subprocess: the test kills it from the same loop it awaits on.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "services.registry.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/healthz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, timeout=30, interval=0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 10)


@pytest.fixture
async def registry_process(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess(
        {
            "REGISTRY_DATABASE_URL": await databases.fresh("registry"),
            "NATS_URL": shared_nats_url,
            "CRADLE_EVENT_NAMESPACE": namespace,
            "CRADLE_INTERNAL_VERIFY_KEY": keys["verify"],
            "CRADLE_LOG_LEVEL": "WARNING",
        }
    )
    await process.start()
    yield process
    process.kill()
