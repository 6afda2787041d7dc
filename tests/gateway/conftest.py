"""The gateway in front of the real registry, with settings a test may change; and a registry in a
uvicorn subprocess for the tests that kill a service.

The suite runs as production does: each service under its own uvicorn server on a free port, and
the gateway reaching it through its native HTTP/1.1 client over real sockets (the in-process
transport would hide the client's bugs — a forwarded 100 Continue passed every in-process test).
The servers live in the test's own event loop, so starting one costs about what the in-process
stack did; a test that brings its own `transport=` still gets the in-process path."""

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

from cradle.layout import free_port, listening_socket
from gateway import service as gateway_service
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from services.registry.app import create_app as create_registry
from services.registry.config import RegistrySettings
from tests.conftest import ADMIN_SECRET, SERVICES, ActsAsClients, Stack, service_settings, start_stack
from tests.conftest import gateway_settings as suite_gateway_settings
from tests.servers import serving
from tests.support import DatabaseFactory, eventually, running, small_pool_env

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = tuple(SERVICES)


@dataclass
class Gateway(ActsAsClients):
    """The gateway (and what stands behind it), with helpers to act as clients."""

    app: FastAPI
    client: httpx.AsyncClient
    database_url: str
    services: dict[str, FastAPI] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)  # where the gateway reaches each service

    async def bureau(self, scopes: list[str] | None = None, bureau: str = "EDU") -> dict[str, str]:
        return await self.headers_for(
            name=f"{bureau} 系统", kind="bureau", bureau=bureau, scopes=scopes or ["registry:read"]
        )

    async def audit_settled(self) -> None:
        """Wait until the audit writer has written everything recorded so far."""
        writer = self.app.state.runtime.audit
        await eventually(lambda: not writer.pending)


@pytest.fixture(autouse=True)
def checkpoints_to_the_tests_namespace(
    monkeypatch: pytest.MonkeyPatch, shared_nats_url: str, namespace: str
) -> None:
    """Every gateway here publishes its audit checkpoints to the test's own (provisioned) namespace."""
    monkeypatch.setenv("NATS_URL", shared_nats_url)
    monkeypatch.setenv("CRADLE_EVENT_NAMESPACE", namespace)


def gateway_settings(*, database_url: str, keys: dict[str, Any], **overrides: Any) -> GatewaySettings:
    """The suite's gateway, checkpointing and flushing its audit fast for the tests that read it."""
    fast_audit = {"audit_checkpoint_seconds": 0.5, "audit_flush_seconds": 0.05}
    return suite_gateway_settings(database_url=database_url, keys=keys, **(fast_audit | overrides))


@contextlib.asynccontextmanager
async def start_gateway(
    *,
    databases: DatabaseFactory,
    keys: dict[str, Any],
    services: dict[str, FastAPI] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    database_url: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """`services` are served under uvicorn and reached with the native client, unless a test passes
    its own in-process `transport`; a service neither served nor given a `<name>_url` refuses
    connections (a port nothing listens on)."""
    url = database_url or await databases.fresh("gateway")
    services = services or {}
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        if transport is None:
            for name in SERVICE_NAMES:
                if f"{name}_url" in overrides:
                    urls[name] = overrides.pop(f"{name}_url")
                elif name in services:
                    # Its document built now, not on the loop while the gateway's first requests
                    # (and its own fetch of the documents) wait on it.
                    if isinstance(services[name], FastAPI):
                        services[name].openapi()
                    urls[name] = await stack.enter_async_context(serving(services[name]))
                else:
                    urls[name] = f"http://127.0.0.1:{free_port()}"
            overrides |= {f"{name}_url": base for name, base in urls.items()}
        app = create_gateway(gateway_settings(database_url=url, keys=keys, **overrides), transport=transport)
        await stack.enter_async_context(running(app))
        async with app.state.sessionmaker() as session, session.begin():
            await gateway_service.ensure_admin_client(
                session=session, hasher=app.state.hasher, secret=ADMIN_SECRET
            )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        )
        yield Gateway(app=app, client=client, database_url=url, services=services, urls=urls)


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
async def stack(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[Stack]:
    """tests/conftest.py's stack, over real sockets."""
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys, network=True
    ) as s:
        yield s


@pytest.fixture
async def full_stack(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[Stack]:
    """tests/conftest.py's full stack (all four services, their scheduled jobs left to the tests),
    over real sockets."""
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=SERVICE_NAMES,
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
        network=True,
    ) as s:
        yield s


@pytest.fixture
async def gw(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> AsyncIterator[Gateway]:
    async with start_gateway(databases=databases, keys=keys, services={"registry": registry_app}) as g:
        yield g


class ServiceProcess:
    """The registry in a child process (cradle/serve.py, as `cradle up` runs it), so a test can kill
    it mid-request. Its ports are bound here and handed down, so no other program takes them between
    the choice and the bind; a restart binds the same ones again."""

    def __init__(self, env: dict[str, str]) -> None:
        self._sockets = (listening_socket(), listening_socket())
        self.port = self._sockets[0].getsockname()[1]
        self.metrics_port = self._sockets[1].getsockname()[1]
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Its metrics listener: `/metrics` and the readiness reasons."""
        return f"http://127.0.0.1:{self.metrics_port}"

    async def start(self) -> None:
        service, metrics = self._sockets or (listening_socket(self.port), listening_socket(self.metrics_port))
        self._sockets = ()
        # Popen, not an asyncio subprocess: the test kills it from the same loop it awaits on.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "cradle.serve", "registry", str(service.fileno())],
            cwd=ROOT,
            env={**os.environ, "REGISTRY_METRICS_FD": str(metrics.fileno()), **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(service.fileno(), metrics.fileno()),
        )
        service.close()  # the child's now
        metrics.close()

        async def up() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/healthz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, timeout=90, interval=0.2)  # a child process starts slowly on a loaded machine
        # A gateway fetches the service's OpenAPI document as it starts, and generating it holds the
        # child's event loop for 1–2 s: done here, so a test's short upstream timeout (1 s) times
        # the request under test, not that.
        async with httpx.AsyncClient() as client:
            (await client.get(f"{self.url}/openapi.json", timeout=60)).raise_for_status()

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
            **small_pool_env("registry"),  # as the in-process stacks
            "NATS_URL": shared_nats_url,
            "CRADLE_EVENT_NAMESPACE": namespace,
            "CRADLE_INTERNAL_VERIFY_KEY": keys["verify"],
            "CRADLE_LOG_LEVEL": "WARNING",
        }
    )
    await process.start()
    yield process
    process.kill()
