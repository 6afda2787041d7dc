"""Fixtures for the workforce: the real gateway, registry and workforce in this process, the
workforce built with its personal-data keys, registry events published straight onto NATS, and
callers either through the gateway (tokens) or straight to the service (signed identities)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import func, select

from services.workforce.config import WorkforceSettings
from services.workforce.models import FacilityProjection
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from shared.pii import national_id_check_char
from tests.conftest import Stack, start_stack
from tests.support import DatabaseFactory, eventually

PII_SETTINGS: dict[str, Any] = {
    "pii_keys": {"k2026a": base64.b64encode(os.urandom(32)).decode()},
    "pii_active_key_id": "k2026a",
    "pii_hmac_key": base64.b64encode(os.urandom(32)).decode(),
}

_serial = itertools.count(random.randrange(1, 900))


def new_id_number(*, born: date | None = None, region: str = "310104") -> str:
    """A valid, unique-per-run 居民身份证号."""
    n = next(_serial)
    born = born or date(1970, 1, 1) + timedelta(days=(n * 37) % 11000)
    first17 = f"{region}{born:%Y%m%d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def workforce_settings(
    *, url: str, nats_url: str, namespace: str, keys: dict[str, Any], **overrides: Any
) -> WorkforceSettings:
    values = {
        "database_url": url,
        "nats_url": nats_url,
        "event_namespace": namespace,
        "internal_verify_key": keys["verify"],
        "outbox_poll_seconds": 0.5,
        "consumer_backoff_seconds": [0.2, 0.2, 0.2, 0.2],
        "consumer_max_deliver": 4,
        "log_format": "console",
        "log_level": "WARNING",
        "jobs_interval_seconds": 0,  # tests run the jobs themselves, at the moment they choose
        **PII_SETTINGS,
    }
    values.update(overrides)
    return WorkforceSettings(**values)


ADMIN = Identity(client_id="admin", kind=ClientKind.admin, scopes=["admin"])
BUREAU_SCOPES = ["workforce:read", "workforce:write", "workforce:ban", "workforce:pii"]
# Who acts when a test does not say: EDU, city-wide with every workforce scope. Not the admin
# client, which administers clients and only reads (masked) here.
CITY = Identity(client_id="edu-city", kind=ClientKind.bureau, bureau="EDU", scopes=BUREAU_SCOPES)


@dataclass
class WorkforceStack:
    """`gateway` is the whole stack through the front door; `direct` calls the workforce service
    itself with identities signed as the gateway signs them."""

    stack: Stack
    direct: httpx.AsyncClient
    signer: IdentitySigner
    nats_url: str
    namespace: str
    facilities: dict[str, str] = field(default_factory=dict)

    @property
    def workforce(self) -> Any:
        return self.stack.workforce

    @property
    def gateway(self) -> httpx.AsyncClient:
        return self.stack.client

    def sign(self, identity: Identity = CITY) -> dict[str, str]:
        return {IDENTITY_HEADER: self.signer.sign(identity)}

    def operator(self, *facility_ids: str, scopes: list[str] | None = None) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=f"op-{uuid.uuid4().hex[:6]}",
                kind=ClientKind.operator,
                facility_ids=list(facility_ids),
                scopes=scopes or ["workforce:read", "workforce:write"],
            )
        )

    def bureau(self, bureau: str = "EDU", scopes: list[str] | None = None) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=f"{bureau.lower()}-{uuid.uuid4().hex[:6]}",
                kind=ClientKind.bureau,
                bureau=bureau,
                scopes=scopes or BUREAU_SCOPES,
            )
        )

    def district(self, code: str = "310104", scopes: list[str] | None = None) -> dict[str, str]:
        return self.sign(
            Identity(
                client_id=f"district-{code}",
                kind=ClientKind.district,
                district_code=code,
                scopes=scopes or ["workforce:read", "workforce:write"],
            )
        )

    async def publish(self, event_type: str, data: dict[str, Any], *, time: datetime | None = None) -> str:
        """Put an event on NATS as its producer would (other services' events, in these tests)."""
        event = CloudEvent(
            source=f"/cradle/{event_type.split('.')[1]}",
            type=event_type,
            subject=str(data.get("facility_id") or data.get("incident_id") or ""),
            data=data,
            time=time or datetime.now(UTC),
        )
        nc = await nats.connect(self.nats_url)
        try:
            await nc.jetstream().publish(
                Namespace(self.namespace).subject(event_type),
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": event.id},
            )
        finally:
            await nc.close()
        return event.id

    async def facility(
        self,
        *,
        status: str = "approved",
        district_code: str = "310104",
        owner_client_id: str | None = None,
        enrolment: dict[str, int] | None = None,
        version: int = 3,
        facility_id: str | None = None,
        event: str | None = None,
    ) -> str:
        """A facility the workforce knows, as the registry's events would tell it."""
        facility_id = facility_id or str(uuid.uuid4())
        await self.publish(
            event or f"cradle.registry.facility.{status}",
            {
                "facility_id": facility_id,
                "name": f"托育点 {facility_id[:6]}",
                "kind": "community_point",
                "inclusive": True,
                "has_nursery_class": False,
                "district_code": district_code,
                "town_code": district_code + "003",
                "status": status,
                "license_no": "L-" + facility_id[:8] if status == "approved" else None,
                "owner_client_id": owner_client_id,
                "capacity": {"infant": 10, "toddler": 15, "preschool": 20},
                "enrolment": enrolment or {"infant": 0, "toddler": 0, "preschool": 0},
                "opening_hours": [],
                "version": version,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )

        async def known() -> bool:
            async with self.workforce.state.sessionmaker() as session:
                row = await session.get(FacilityProjection, facility_id)
                return row is not None and row.version == version and row.status == status

        await eventually(known)
        return facility_id

    async def practitioner(
        self, headers: dict[str, str] | None = None, *, healthy: bool = True, **overrides: Any
    ) -> dict[str, Any]:
        """A registered person; `healthy`: with a health certificate (健康合格证明) valid today, as every
        hire needs."""
        body = {"id_number": new_id_number(), "name": "张三", "phone": "13812345678", "nationality": "CN"}
        body.update(overrides)
        response = await self.direct.post("/v1/practitioners", json=body, headers=headers or self.sign())
        assert response.status_code == 201, response.text
        if healthy:
            await self.health_certificate(response.json()["id"])
        return {**response.json(), "raw_id_number": body["id_number"]}

    async def health_certificate(self, practitioner_id: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "type": "health",
            "number": f"JK-{uuid.uuid4().hex[:10]}",
            "issuer": "上海市徐汇区疾病预防控制中心",
            "issued_on": (date.today() - timedelta(days=30)).isoformat(),
        }
        body.update(overrides)
        response = await self.direct.post(
            f"/v1/practitioners/{practitioner_id}/certificates", json=body, headers=self.sign()
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def answer_check(self, employment: dict[str, Any], result: str = "clear") -> dict[str, Any]:
        """POLICE answers the background check the employment waits on."""
        response = await self.direct.post(
            f"/v1/practitioners/{employment['practitioner_id']}/background-checks/"
            f"{employment['background_check_id']}/answer",
            json={"result": result},
            headers=self.bureau("POLICE"),
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def certify(
        self, practitioner_id: str, kind: str = "childcare_worker", **overrides: Any
    ) -> dict[str, Any]:
        today = date.today()
        body = {
            "type": kind,
            "number": f"C-{uuid.uuid4().hex[:10]}",
            "issuer": "上海市人力资源和社会保障局",
            "issued_on": (today - timedelta(days=400)).isoformat(),
            "expires_on": (today + timedelta(days=800)).isoformat(),
        }
        body.update(overrides)
        response = await self.direct.post(
            f"/v1/practitioners/{practitioner_id}/certificates", json=body, headers=self.sign()
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def hire(
        self,
        practitioner_id: str,
        facility_id: str,
        *,
        headers: dict[str, str] | None = None,
        **overrides: Any,
    ) -> httpx.Response:
        body = {
            "practitioner_id": practitioner_id,
            "facility_id": facility_id,
            "role": "childcare_worker",
            "start_date": date.today().isoformat(),
        }
        body.update(overrides)
        return await self.direct.post("/v1/employments", json=body, headers=headers or self.sign())

    async def employed(self, facility_id: str, *, cleared: bool = True, **overrides: Any) -> dict[str, Any]:
        """A certified practitioner hired at the facility; `cleared`: its background check answered
        clear by POLICE (else the employment stays provisional)."""
        person = await self.practitioner()
        await self.certify(person["id"], overrides.get("role", "childcare_worker"))
        response = await self.hire(person["id"], facility_id, **overrides)
        assert response.status_code == 201, response.text
        employment = response.json()
        if cleared:
            await self.answer_check(employment)
            employment = (
                await self.direct.get(f"/v1/employments/{employment['id']}", headers=self.sign())
            ).json()
            assert employment["standing"] == "cleared", employment
        return {**person, "employment": employment}

    async def ban(
        self, id_number: str, *, headers: dict[str, str] | None = None, **overrides: Any
    ) -> httpx.Response:
        body = {
            "id_number": id_number,
            "name": "张三",
            "reason": "虐待儿童，法院判决",
            "decision_ref": f"(2026)沪0104刑初{uuid.uuid4().hex[:5]}号",
            "role": "abuser",
        }
        body.update(overrides)
        # Bans are the POLICE's and EDU's (DOMAIN.md, "Who may ban"), never the admin's.
        return await self.direct.post("/v1/bans", json=body, headers=headers or self.bureau("POLICE"))

    async def events(self, event_type: str) -> list[CloudEvent]:
        """Every event of this type on the workforce's stream, as consumers receive them, once the
        outbox has sent everything committed so far."""
        relay = self.workforce.state.relay

        async def drained() -> bool:
            return await relay.pending_count() == 0

        await eventually(drained)
        ns = Namespace(self.namespace)
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            stream = ns.stream("workforce")
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

    async def count(self, statement: Any) -> int:
        async with self.workforce.state.sessionmaker() as session:
            return int((await session.execute(statement)).scalar_one())

    async def rows(self, model: Any, *conditions: Any) -> list[Any]:
        async with self.workforce.state.sessionmaker() as session:
            return list((await session.execute(select(model).where(*conditions))).scalars().all())

    async def table_count(self, model: Any, *conditions: Any) -> int:
        return await self.count(select(func.count()).select_from(model).where(*conditions))


@contextlib.asynccontextmanager
async def start_workforce_stack(
    *,
    databases: DatabaseFactory,
    nats_url: str,
    namespace: str,
    keys: dict[str, Any],
    **workforce_overrides: Any,
) -> AsyncIterator[WorkforceStack]:
    """tests/conftest.py's stack, with the workforce's fixed test keys and its jobs left to the tests."""
    overrides = {"jobs_interval_seconds": 0, **PII_SETTINGS, **workforce_overrides}
    async with start_stack(
        databases=databases, nats_url=nats_url, namespace=namespace, keys=keys, workforce_overrides=overrides
    ) as stack:
        direct = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stack.workforce), base_url="http://workforce"
        )
        async with direct:
            await eventually(
                lambda: (
                    stack.workforce.state.bus.connected
                    and all(c._task for c in stack.workforce.state.consumers)
                )
            )
            yield WorkforceStack(
                stack=stack,
                direct=direct,
                signer=IdentitySigner(keys["signing"]),
                nats_url=nats_url,
                namespace=namespace,
            )


@pytest.fixture
async def wf(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[WorkforceStack]:
    async with start_workforce_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys
    ) as stack:
        yield stack
