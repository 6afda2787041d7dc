"""Fixtures for guidance: the real gateway in front of the real guidance service, in this process,
on fresh databases (SQLite and PostgreSQL) and the machine's NATS under a namespace of the test's
own. One stack per test module and backend (starting one costs more than most tests); tests make
their own families, so they never depend on what another test left behind. Callers come either
through the gateway (tokens) or straight to the service (identities signed as the gateway signs
them)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, select

from gateway import service as gateway_service
from gateway.app import create_app as create_gateway
from services.guidance.app import create_app as create_guidance
from services.guidance.config import GuidanceSettings
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from tests.conftest import ADMIN_SECRET, ActsAsClients, gateway_settings
from tests.support import (
    DatabaseFactory,
    HostTransport,
    eventually,
    provision_namespace,
    running,
)

PII_SETTINGS: dict[str, Any] = {
    "pii_keys": {"g2026a": base64.b64encode(os.urandom(32)).decode()},
    "pii_active_key_id": "g2026a",
    "pii_hmac_key": base64.b64encode(os.urandom(32)).decode(),
}
ADMIN = Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin"])
WRITER_SCOPES = ["guidance:read", "guidance:write"]
XUHUI, HUANGPU = "310104", "310101"
XUHUI_TOWN, XUHUI_TOWN_2, HUANGPU_TOWN = "310104003", "310104004", "310101002"
_serial = itertools.count(1)
_namespaces = itertools.count(1)


def phone_number() -> str:
    return f"139{next(_serial) % 100_000_000:08d}"


def from_now(**delta: float) -> str:
    """An ISO timestamp `delta` (hours=2, days=-1 …) from now, as sessions' times are sent."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def months_ago(months: int, *, days: int = 3) -> date:
    """A birth date `months` full months ago (a few days more, so the age is exactly `months`)."""
    today = datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(today.day, 28)) - timedelta(days=days)


def family_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "town_code": XUHUI_TOWN,
        "guardians": [
            {"relation": "mother", "name": "李梅", "phone": phone_number()},
            {"relation": "grandmother", "name": "王秀英"},
        ],
        "children": [{"birth_date": months_ago(8).isoformat()}],
        "in_need": True,
        "newborn": False,
    }
    body.update(overrides)
    return body


@dataclass
class Guide(ActsAsClients):
    """`client` is the whole stack through the gateway; `direct` is the guidance service itself."""

    app: FastAPI
    gateway: FastAPI
    client: httpx.AsyncClient
    direct: httpx.AsyncClient
    signer: IdentitySigner
    nats_url: str
    namespace: str
    backend: str
    tokens: dict[str, str] = field(default_factory=dict)

    def sign(self, identity: Identity = ADMIN) -> dict[str, str]:
        return {IDENTITY_HEADER: self.signer.sign(identity)}

    def bureau(self, scopes: list[str] | None = None, client_id: str | None = None) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=client_id or f"wcwc-{uuid.uuid4().hex[:6]}",
                kind=ClientKind.bureau,
                bureau="WCWC",
                scopes=scopes or WRITER_SCOPES,
            )
        )

    def district(
        self, code: str = XUHUI, scopes: list[str] | None = None, client_id: str | None = None
    ) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=client_id or f"district-{code}-{uuid.uuid4().hex[:4]}",
                kind=ClientKind.district,
                district_code=code,
                scopes=scopes or WRITER_SCOPES,
            )
        )

    def parent(self, parent_id: str | None = None, *, claimed_family_id: str | None = None) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=parent_id or f"parent-{uuid.uuid4().hex[:16]}",
                kind=ClientKind.parent,
                scopes=["parent"],
                family_id=claimed_family_id,
            )
        )

    async def family(self, headers: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
        response = await self.direct.post(
            "/v1/families", json=family_body(**overrides), headers=headers or self.district()
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def parent_with_family(self, **overrides: Any) -> tuple[dict[str, str], dict[str, Any]]:
        """A parent who registered its family from the app (and so is linked to it)."""
        headers = self.parent()
        return headers, await self.family(headers, **overrides)

    async def station(self, town_code: str = XUHUI_TOWN, **overrides: Any) -> dict[str, Any]:
        body = {"name": "天平街道家庭科学育儿指导站", "town_code": town_code, "opened_on": "2024-03-01"}
        body.update(overrides)
        response = await self.direct.post(
            "/v1/stations", json=body, headers=self.district(body["town_code"][:6])
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def session(self, headers: dict[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
        body = {
            "level": "district",
            "kind": "parenting_station_event",
            "title": "育儿加油站：婴幼儿辅食添加",
            "starts_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            "capacity": 20,
            "district_code": XUHUI,
            "venue": "徐汇区妇幼保健所三楼",
        }
        body.update(overrides)
        response = await self.direct.post("/v1/sessions", json=body, headers=headers or self.district())
        assert response.status_code == 201, response.text
        return response.json()

    async def book(self, session_id: str, headers: dict[str, str], **body: Any) -> httpx.Response:
        return await self.direct.post(f"/v1/sessions/{session_id}/bookings", json=body, headers=headers)

    async def events(self, event_type: str) -> list[CloudEvent]:
        """Every event of this type on guidance's stream (real NATS), once the outbox has sent
        everything committed so far."""
        relay = self.app.state.relay
        await eventually(lambda: _drained(relay))
        ns = Namespace(self.namespace)
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            stream = ns.stream("guidance")
            last = (await js.stream_info(stream)).state.last_seq
            found = []
            for seq in range(1, last + 1):
                with contextlib.suppress(Exception):
                    message = await js.get_msg(stream, seq)
                    if message.subject == ns.subject(event_type) and message.data:
                        found.append(CloudEvent.model_validate_json(message.data))
            return found
        finally:
            await nc.close()

    async def scalar(self, statement: Any) -> Any:
        async with self.app.state.sessionmaker() as session:
            return (await session.execute(statement)).scalar_one()

    async def count(self, model: Any, *conditions: Any) -> int:
        return int(await self.scalar(select(func.count()).select_from(model).where(*conditions)))


async def _drained(relay: Any) -> bool:
    return await relay.pending_count() == 0


def guidance_settings(
    *, url: str, nats_url: str, namespace: str, keys: dict[str, Any], **overrides: Any
) -> GuidanceSettings:
    values = {
        "database_url": url,
        "nats_url": nats_url,
        "event_namespace": namespace,
        "internal_verify_key": keys["verify"],
        "outbox_poll_seconds": 0.5,
        "log_format": "console",
        "log_level": "WARNING",
        **PII_SETTINGS,
    }
    values.update(overrides)
    return GuidanceSettings(**values)


@contextlib.asynccontextmanager
async def start_guide(
    *, databases: DatabaseFactory, nats_url: str, namespace: str, keys: dict[str, Any], **overrides: Any
) -> AsyncIterator[Guide]:
    await provision_namespace(nats_url, namespace)
    app = create_guidance(
        guidance_settings(
            url=await databases.fresh("guidance"),
            nats_url=nats_url,
            namespace=namespace,
            keys=keys,
            **overrides,
        )
    )
    gateway = create_gateway(
        gateway_settings(
            database_url=await databases.fresh("gateway"),
            keys=keys,
            nats_url=nats_url,
            event_namespace=namespace,
        ),
        transport=HostTransport({"guidance": app}),
    )
    async with contextlib.AsyncExitStack() as stack:
        for each in (app, gateway):
            await stack.enter_async_context(running(each))
        async with gateway.state.sessionmaker() as session, session.begin():
            await gateway_service.ensure_admin_client(
                session=session, hasher=gateway.state.hasher, secret=ADMIN_SECRET
            )
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")
        )
        direct = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://guidance")
        )
        await eventually(lambda: app.state.bus.connected)
        yield Guide(
            app=app,
            gateway=gateway,
            client=client,
            direct=direct,
            signer=IdentitySigner(keys["signing"]),
            nats_url=nats_url,
            namespace=namespace,
            backend=databases.backend,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def guide(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> AsyncIterator[Guide]:
    """One stack per module and backend."""
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    namespace = f"t{run_id}g{next(_namespaces)}"
    async with start_guide(
        databases=db_factories[request.param], nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        yield stack
