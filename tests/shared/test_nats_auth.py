"""The bus as a trust boundary, on the project's own nats-server started with the configuration
`cradle up` writes: no anonymous connection, each process only its own subjects, streams managed by
the provisioning credential alone, and a whole event flow on per-service credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.api import StreamConfig
from sqlalchemy import func, select

from cradle.nats import ADMIN, BusTrust, init_trust
from services.delivery.handlers import HANDLERS as DELIVERY_HANDLERS
from services.monitoring.handlers import HANDLERS as MONITORING_HANDLERS
from services.monitoring.handlers import ingest as ingest_consumer
from services.registry.handlers import HANDLERS as REGISTRY_HANDLERS
from services.workforce.handlers import HANDLERS as WORKFORCE_HANDLERS
from services.workforce.models import FacilityProjection
from shared.events.permissions import inbox_prefix
from shared.events.streams import INGEST_DURABLE, READS, SERVICES, Namespace
from tests.conftest import facility_body, start_stack
from tests.support import NatsProcess, eventually, provision_namespace


@pytest.fixture
async def secured(tmp_path: Path, namespace: str) -> AsyncIterator[tuple[NatsProcess, BusTrust]]:
    trust = init_trust(tmp_path / "trust", namespace=namespace)
    server = NatsProcess(tmp_path / "store", trust=trust)
    await server.start()
    await provision_namespace(server.url, namespace, credentials=trust.creds_path(ADMIN))
    yield server, trust
    await server.stop()


class Client:
    """A connection with one credential that keeps every asynchronous error the server sends."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.nc: NATS | None = None

    async def connect(self, url: str, creds: Path, owner: str) -> NATS:
        async def keep(exc: Exception) -> None:
            self.errors.append(exc)

        self.nc = await nats.connect(
            url,
            user_credentials=str(creds),
            inbox_prefix=inbox_prefix(owner),
            error_cb=keep,
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )
        return self.nc

    async def violation(self, subject: str) -> bool:
        def seen() -> bool:
            return any(
                "permissions violation" in str(e).lower() and subject.lower() in str(e).lower()
                for e in self.errors
            )

        await eventually(seen)
        return True


async def test_an_anonymous_connection_is_refused(secured: tuple[NatsProcess, BusTrust]) -> None:
    server, _ = secured
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=_quiet)


async def _quiet(_: Exception) -> None:
    """nats-py logs a refused connection with a traceback; refusal is the point here."""


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_publishes_its_own_events_and_nothing_else(
    secured: tuple[NatsProcess, BusTrust], namespace: str, service: str
) -> None:
    server, trust = secured
    ns = Namespace(namespace)
    client = Client()
    nc = await client.connect(server.url, trust.creds_path(service), service)
    js = nc.jetstream(timeout=2)
    try:
        ack = await js.publish(f"{namespace}.{service}.thing.happened", b"{}")
        assert ack.stream == ns.stream(service)

        other = next(s for s in SERVICES if s != service)
        foreign = f"{namespace}.{other}.facility.approved"
        with pytest.raises((TimeoutError, NatsError)):  # no ack: the server dropped it
            await js.publish(foreign, b"{}", timeout=1)
        assert await client.violation(foreign)
        with pytest.raises((TimeoutError, NatsError)):
            await js.publish(ns.ingest_subject("f-1"), b"{}", timeout=1)
        assert await client.violation(ns.ingest_subject("f-1"))

        own = ns.stream(service)
        for operation in ("DELETE", "PURGE", "UPDATE", "CREATE"):
            with pytest.raises((TimeoutError, NatsError)):
                await nc.request(f"$JS.API.STREAM.{operation}.{own}", b"{}", timeout=1)
            assert await client.violation(f"$JS.API.STREAM.{operation}.{own}")
        # Still there, untouched.
        assert (await js.stream_info(own)).state.messages == 1
    finally:
        await nc.close()


async def test_only_the_provisioning_credential_manages_streams(
    secured: tuple[NatsProcess, BusTrust], namespace: str
) -> None:
    server, trust = secured
    ns = Namespace(namespace)
    client = Client()
    nc = await client.connect(server.url, trust.creds_path(ADMIN), "admin")
    js = nc.jetstream(timeout=5)
    try:
        scratch = f"{ns.stream('registry')}_SCRATCH"
        await js.add_stream(StreamConfig(name=scratch, subjects=[f"{namespace}.scratch.>"]))
        await js.update_stream(StreamConfig(name=scratch, subjects=[f"{namespace}.scratch.>"], max_msgs=10))
        await js.purge_stream(scratch)
        assert await js.delete_stream(scratch)
        assert client.errors == []
    finally:
        await nc.close()


async def test_only_the_gateway_reads_back_its_audit_checkpoints(
    secured: tuple[NatsProcess, BusTrust], namespace: str
) -> None:
    server, trust = secured
    ns = Namespace(namespace)
    subject = f"{namespace}.gateway.audit.checkpoint"
    gateway = Client()
    nc = await gateway.connect(server.url, trust.creds_path("gateway"), "gateway")
    registry = Client()
    other = await registry.connect(server.url, trust.creds_path("registry"), "registry")
    try:
        js = nc.jetstream(timeout=2)
        await js.publish(subject, b'{"seq": 1}')
        assert (await js.get_last_msg(ns.stream("gateway"), subject)).data == b'{"seq": 1}'
        with pytest.raises((TimeoutError, NatsError)):
            await other.jetstream(timeout=1).get_last_msg(ns.stream("gateway"), subject)
        assert await registry.violation(f"$JS.API.STREAM.MSG.GET.{ns.stream('gateway')}")
    finally:
        await nc.close()
        await other.close()


def test_each_service_may_read_exactly_the_streams_its_handlers_consume() -> None:
    """The permissions come from READS; a handler added for a new source must widen them too."""
    for service, handlers in (
        ("registry", REGISTRY_HANDLERS),
        ("workforce", WORKFORCE_HANDLERS),
        ("monitoring", MONITORING_HANDLERS),
        ("delivery", DELIVERY_HANDLERS),
    ):
        sources = {event_type.split(".")[1] for event_type in handlers}
        assert sources == set(READS[service]), service
    assert ingest_consumer.DURABLE == INGEST_DURABLE


async def test_an_event_flows_from_one_service_to_another_on_their_own_credentials(
    secured: tuple[NatsProcess, BusTrust], databases: Any, namespace: str, keys: dict[str, Any]
) -> None:
    server, trust = secured
    async with start_stack(
        databases=databases,
        nats_url=server.url,
        namespace=namespace,
        keys=keys,
        overrides={name: {"nats_creds": trust.creds_path(name)} for name in ("registry", "workforce")},
        nats_admin_creds=trust.creds_path(ADMIN),
    ) as stack:
        response = await stack.client.post(
            "/v1/facilities", json=facility_body(), headers=await stack.operator()
        )
        assert response.status_code == 201, response.text

        async def projected() -> int:
            async with stack.workforce.state.sessionmaker() as session:
                count = select(func.count()).select_from(FacilityProjection)
                return int((await session.execute(count)).scalar_one())

        assert await eventually(projected) == 1
        assert stack.registry.state.bus.connected and stack.workforce.state.bus.connected
