"""Fixtures for delivery: the real gateway in front of all five services, in this process, on fresh
databases (SQLite and PostgreSQL) and the machine's NATS under a namespace of the module's own; one
stack per module and backend (starting one costs more than most tests). Webhooks go to real HTTP
receivers on 127.0.0.1 (uvicorn), which record what they get; tests verify the signatures with
`standardwebhooks`, as a receiver would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from services.delivery.models import FacilityProjection
from shared.contracts import contract_for
from shared.events.envelope import CloudEvent, DomainEvent
from shared.events.streams import Namespace
from tests.conftest import Stack, facility_body, start_stack
from tests.servers import serving
from tests.support import DatabaseFactory, eventually

XUHUI_TOWN, HUANGPU_TOWN = "310104003", "310101002"
EVENT_SCOPES = ["events:read", "events:subscribe"]
READS = ["registry:read", "workforce:read", "monitoring:read", "guidance:read"]
_namespaces = itertools.count(1)

# Fast retries, short deadlines: what takes days in production takes a second here.
DELIVERY_OVERRIDES: dict[str, Any] = {
    "allow_http_loopback": True,
    "retry_first_seconds": 0.2,
    "retry_max_seconds": 0.5,
    "attempt_timeout_seconds": 1.0,
    "connect_timeout_seconds": 1.0,
    "poll_seconds": 0.2,
    "stream_heartbeat_seconds": 0.5,
    "stream_poll_seconds": 0.2,
    "secret_grace_seconds": 3600,
}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1. Each path is its own endpoint: `/ok/…` answers 204,
    `/flaky/<n>/…` answers 503 to its first n requests and then 200, `/silent/…` never answers,
    `/binary/…` answers 200 with a NUL and an undecodable byte in its body."""

    url: str
    received: dict[str, list[Received]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def endpoint(self, kind: str = "ok", failures: int = 0) -> str:
        name = uuid.uuid4().hex[:10]
        return f"{self.url}/flaky/{failures}/{name}" if kind == "flaky" else f"{self.url}/{kind}/{name}"

    def at(self, url: str) -> list[Received]:
        return self.received.get(url.removeprefix(self.url), [])

    def events_at(self, url: str) -> list[dict[str, Any]]:
        return [r.event for r in self.at(url)]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        if path.startswith("/silent/"):
            await asyncio.sleep(3600)
        if path.startswith("/flaky/"):
            failures = int(path.split("/")[2])
            seen = self.refused.get(path, 0)
            if seen < failures:
                self.refused[path] = seen + 1
                return PlainTextResponse("not now " + "x" * 3000, status_code=503)
        self.received.setdefault(path, []).append(Received(dict(request.headers), body))
        if path.startswith("/binary/"):
            return Response(b"ok\x00\xff", status_code=200)
        if path.startswith("/flaky/"):
            return PlainTextResponse("thanks")
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver(url="")
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    async with serving(app) as url:
        receiver.url = url
        yield receiver


@dataclass
class City:
    """The whole stack and a receiver, with helpers for the clients a test needs."""

    stack: Stack
    receiver: Receiver
    nats_url: str
    backend: str
    clients: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.stack.client

    @property
    def delivery(self) -> FastAPI:
        return self.stack.apps["delivery"]

    async def caller(self, **body: Any) -> dict[str, str]:
        body.setdefault("name", f"测试客户端-{uuid.uuid4().hex[:6]}")
        created = await self.stack.new_client(**body)
        token = await self.stack.token(created["client_id"], created["client_secret"])
        return {"Authorization": f"Bearer {token}", "X-Client-Id": created["client_id"]}

    async def bureau(self, department: str = "EDU", scopes: list[str] | None = None) -> dict[str, str]:
        return await self.caller(kind="bureau", bureau=department, scopes=scopes or [*READS, *EVENT_SCOPES])

    async def district(self, code: str = "310104") -> dict[str, str]:
        return await self.caller(kind="district", district_code=code, scopes=[*READS, *EVENT_SCOPES])

    async def operator(self) -> dict[str, str]:
        return await self.caller(
            kind="operator", scopes=["registry:read", "registry:write", "workforce:read", *EVENT_SCOPES]
        )

    async def facility(self, operator: dict[str, str], town_code: str = XUHUI_TOWN) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/facilities",
            json=facility_body(town_code=town_code, name=f"托育点-{uuid.uuid4().hex[:6]}"),
            headers=auth(operator),
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def subscribe(self, headers: dict[str, str], url: str, types: list[str]) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/subscriptions", json={"url": url, "event_types": types}, headers=auth(headers)
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def publish(self, producer: str, event: DomainEvent) -> CloudEvent:
        """An event on its producer's stream, as the producer's outbox relay publishes it (for the
        events a test cannot cheaply cause through the API, e.g. a ban ending employments at two
        facilities in two districts)."""
        data = event.model_dump(mode="json")
        contract_for(event.event_type).model_validate(data)
        envelope = CloudEvent(
            source=f"/cradle/{producer}", type=event.event_type, subject=event.subject_id(), data=data
        )
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            await js.publish(
                Namespace(self.stack.namespace).subject(envelope.type),
                envelope.model_dump_json(exclude_none=True).encode(),
                headers={"Nats-Msg-Id": envelope.id},
            )
        finally:
            await nc.close()
        return envelope

    async def recorded_all(self, facility_ids: list[str]) -> bool:
        """The delivery service has stored an event about each of these facilities (and so has
        decided, in the same transaction, every delivery it owes for it)."""
        async with self.delivery.state.sessionmaker() as session:
            found = await session.execute(
                select(FacilityProjection.facility_id).where(FacilityProjection.facility_id.in_(facility_ids))
            )
            return len(found.all()) == len(set(facility_ids))


def auth(headers: dict[str, str]) -> dict[str, str]:
    return {"Authorization": headers["Authorization"]}


async def start_city(
    *, databases: DatabaseFactory, nats_url: str, namespace: str, keys: dict[str, Any]
) -> contextlib.AbstractAsyncContextManager[Stack]:
    return start_stack(
        databases=databases,
        nats_url=nats_url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring", "guidance", "delivery"),
        overrides={
            "monitoring": {"jobs_interval_seconds": 0},
            "workforce": {"jobs_interval_seconds": 0},
            "delivery": DELIVERY_OVERRIDES,
        },
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def city(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> AsyncIterator[City]:
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    namespace = f"t{run_id}d{next(_namespaces)}"
    async with (
        await start_city(
            databases=db_factories[request.param], nats_url=shared_nats_url, namespace=namespace, keys=keys
        ) as stack,
        receiving() as receiver,
    ):
        await eventually(lambda: stack.apps["delivery"].state.bus.connected)
        yield City(stack=stack, receiver=receiver, nats_url=shared_nats_url, backend=request.param)
