"""Helpers for the suite: real databases built by the migrations, real NATS, the real apps."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import nats
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from cradle.layout import free_port
from cradle.migrations import upgrade
from cradle.nats import BusTrust, Cluster, provision, server_config
from cradle.nats_server import nats_server_args, nats_server_binary, wait_for_port
from shared.nats_auth import write_private

T = TypeVar("T")

# argon2id at its cheapest: production cost (0.25–1.5 s a hash here) made the suite crawl;
# tests/gateway/test_hashing.py pins the production parameters.
CHEAP_HASHING = {"time_cost": 1, "memory_kib": 8, "parallelism": 1}

# Two connections kept per process, more opened for a burst and closed after: a stack is six
# processes, a worker may hold two stacks, and two suites side by side on production's pools (10 kept
# each) took every one of PostgreSQL's 100 connections ("too many clients already").
SMALL_POOL = {"db_pool_size": 2, "db_max_overflow": 10}


def small_pool_env(*processes: str) -> dict[str, str]:
    """SMALL_POOL as the environment of these processes (`cradle up`, a service run as a child)."""
    return {
        f"{name.upper()}_{setting.upper()}": str(value)
        for name in processes
        for setting, value in SMALL_POOL.items()
    }


PG_ADMIN_URL = os.environ.get("CRADLE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MACHINE_NATS_URL = os.environ.get("CRADLE_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, timeout: float = 60.0, interval: float = 0.05
) -> T:
    """Poll `check` (sync or async) until it returns a truthy value; fail after `timeout`.

    A wait ends as soon as its condition holds, so patience costs a passing test nothing; it is a
    minute because an event crossing NATS to a consumer took over 15 s with two suites and
    benchmarks sharing the two cores (load 15), and a short wait then failed a correct system."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        await asyncio.sleep(interval)


async def postgres_reachable() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def nats_reachable(url: str) -> bool:
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False, max_reconnect_attempts=0)
    except Exception:
        return False
    await nc.close()
    return True


@dataclass
class DatabaseFactory:
    """Fresh databases per test, cloned from one migrated template per service and backend:
    SQLite copies a file, PostgreSQL uses CREATE DATABASE … TEMPLATE."""

    backend: str
    run_id: str
    workdir: Path
    templates: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    counter: int = 0
    dropper: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-databases")
    )
    dropping: list[Future[None]] = field(default_factory=list)

    def _pg_url(self, name: str) -> str:
        return (
            make_url(PG_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
        )

    async def _pg(self, sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def template(self, service: str) -> str:
        if service in self.templates:
            return self.templates[service]
        if self.backend == "sqlite":
            path = self.workdir / f"template_{service}.db"
            url = f"sqlite+aiosqlite:///{path}"
            await asyncio.to_thread(upgrade, service, url)
            self.templates[service] = str(path)
        else:
            name = f"cradle_{self.run_id}_tpl_{service}"
            await self._pg(f'CREATE DATABASE "{name}"')  # kept to the session's end (drop_all)
            await asyncio.to_thread(upgrade, service, self._pg_url(name))
            self.templates[service] = name
        return self.templates[service]

    async def fresh(self, service: str) -> str:
        template = await self.template(service)
        self.counter += 1
        if self.backend == "sqlite":
            path = self.workdir / f"{service}_{self.counter}.db"
            shutil.copyfile(template, path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"cradle_{self.run_id}_{self.counter}_{service}"
        await self._pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return self._pg_url(name)

    def drop_later(self, mark: int) -> None:
        """Drop the databases made since `mark` (a length of `created`) on a thread of their own while
        the next module runs (`drop_all` waits for them). Each DROP DATABASE waits for a checkpoint,
        and with two suites writing, a module's drops held its last test's teardown for up to 145 s."""
        names, self.created[mark:] = self.created[mark:], []
        if names:
            self.dropping.append(self.dropper.submit(asyncio.run, self._drop(names)))

    async def drop_since(self, mark: int) -> None:
        """Drop the databases made since `mark` (a length of `created`), all at once: PostgreSQL's
        DROP DATABASE waits for a checkpoint, and drops issued together share one."""
        names, self.created[mark:] = self.created[mark:], []
        await self._drop(names)

    async def _drop(self, names: list[str]) -> None:
        limit = asyncio.Semaphore(4)  # two suites side by side share PostgreSQL's 100 connections

        async def drop(name: str) -> None:
            async with limit:
                with contextlib.suppress(Exception):
                    await self._pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        await asyncio.gather(*(drop(name) for name in names))

    async def drop_all(self) -> None:
        self.dropper.shutdown(wait=True)
        for dropped in self.dropping:
            dropped.result()
        await self.drop_since(0)
        templates, self.templates = list(self.templates.values()), {}
        if self.backend == "postgres":
            self.created = templates
            await self.drop_since(0)


class NatsProcess:
    """A nats-server of the test's own, which it may stop and start; the machine's is never touched.
    Given a `trust` (cradle/nats.py), it runs in operator mode with that deployment's config,
    as `cradle up` does: anonymous connections are refused."""

    def __init__(
        self,
        store_dir: Path,
        *,
        trust: BusTrust | None = None,
        cluster: Cluster | None = None,
        name: str = "",
    ) -> None:
        self.port = free_port()
        self.store_dir = store_dir
        self.trust = trust
        self.cluster = cluster
        self.name = name or f"test-{uuid.uuid4().hex[:6]}"
        self.process: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        if self.trust is None:
            return nats_server_args(port=self.port, store_dir=self.store_dir, name=self.name)
        config = self.store_dir.parent / f"{self.name}.conf"
        write_private(
            config,
            server_config(
                self.trust,
                store_dir=str(self.store_dir),
                server_name=self.name,
                port=self.port,
                cluster=self.cluster,
            ),
        )
        return [nats_server_binary(), "--config", str(config)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Popen, not an asyncio subprocess: the server may outlive the event loop that started it.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self.trust is None:
            await eventually(lambda: nats_reachable(self.url))
        else:  # it refuses an anonymous probe: wait for it to listen
            await wait_for_port("127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 10)
        self.process = None


class HostTransport(httpx.AsyncBaseTransport):
    """Routes the gateway's upstream calls to in-process ASGI apps by host name."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no app for {request.url.host}", request=request)
        return await transport.handle_async_request(request)


_openapi_documents: dict[tuple[object, ...], dict[str, Any]] = {}


def share_openapi(app: FastAPI) -> FastAPI:
    """A service's OpenAPI document costs 0.5–2 s of the event loop to generate, and the gateway
    fetches every service's as it starts: most of a test stack's start-up. The document follows from
    the app's routes alone, so every app of the run with the same title and routes reuses the first
    one generated (the gateway's merged document is built from these as in production)."""
    if app.openapi_url is None:
        return app
    key = (
        app.title,
        app.version,
        *((getattr(r, "path", None), tuple(sorted(getattr(r, "methods", None) or ()))) for r in app.routes),
    )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if key not in _openapi_documents:
            _openapi_documents[key] = generate()
        return _openapi_documents[key]

    app.openapi = openapi  # type: ignore[method-assign]
    return app


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    share_openapi(app)
    async with app.router.lifespan_context(app):
        yield app


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


async def provision_namespace(
    nats_url: str, namespace: str, *, replicas: int = 1, credentials: Path | None = None
) -> None:
    """What `cradle up` does before the services start: create the namespace's streams, which the
    services only wait for (their credentials may not create them)."""
    await provision(nats_url, namespace=namespace, replicas=replicas, credentials=credentials)


def listener_client(app: FastAPI) -> httpx.AsyncClient:
    """A client on the process's metrics listener (`/metrics`, `/readyz` with its reasons), which
    is not its public port."""
    return httpx.AsyncClient(base_url=app.state.metrics_listener.url, timeout=10)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name` whose labels include `labels`, from Prometheus text; None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None
