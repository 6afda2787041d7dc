"""The monitoring stack: the real gateway, registry, workforce and monitoring in this process, on
fresh databases and a NATS namespace of the test's own; monitoring's jobs left to the tests.
Facilities reach monitoring the real way: approved in the registry, then projected from its events."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from sqlalchemy import func, select

from services.monitoring.models import EmploymentRecord, Facility
from shared.events.streams import Namespace
from tests.conftest import Stack, facility_body, start_stack
from tests.support import DatabaseFactory, eventually
from tests.workforce.conftest import new_id_number

REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
MONITORING = ["monitoring:read", "monitoring:write", "monitoring:ingest"]

CLIENTS: dict[str, dict[str, Any]] = {
    "operator": {
        "name": "小太阳托育",
        "kind": "operator",
        "scopes": ["registry:read", "registry:write", "workforce:read", "workforce:write", *MONITORING],
    },
    "other_operator": {
        "name": "另一家托育",
        "kind": "operator",
        "scopes": ["registry:read", "registry:write", *MONITORING],
    },
    "district": {
        "name": "徐汇区托育服务指导中心",
        "kind": "district",
        "district_code": "310104",
        "scopes": ["registry:read", "monitoring:read", "monitoring:write"],
    },
    "other_district": {
        "name": "黄浦区托育服务指导中心",
        "kind": "district",
        "district_code": "310101",
        "scopes": ["registry:read", "monitoring:read", "monitoring:write"],
    },
    "video_platform": {  # a city video platform pushing every facility's events
        "name": "市视频监控平台",
        "kind": "bureau",
        "bureau": "EDU",
        "scopes": ["monitoring:ingest"],
    },
    **{
        department: {
            "name": f"{department} reviewer",
            "kind": "bureau",
            "bureau": department,
            "scopes": ["registry:read", "registry:review", "monitoring:read", "monitoring:write"],
        }
        for department in REVIEWERS
    },
}


class MonitoringStack:
    """Clients are made on first use (each costs an argon2 hash), then kept."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client: httpx.AsyncClient = stack.client
        self.monitoring = stack.monitoring
        self.registry = stack.registry
        self.workforce = stack.workforce
        self.namespace = stack.namespace
        self._headers: dict[str, dict[str, str]] = {}
        self.client_ids: dict[str, str] = {}

    async def headers(self, who: str) -> dict[str, str]:
        if who not in self._headers:
            created = await self.stack.new_client(**CLIENTS[who])
            self.client_ids[who] = created["client_id"]
            token = await self.stack.token(created["client_id"], created["client_secret"])
            self._headers[who] = {"Authorization": f"Bearer {token}"}
        return self._headers[who]

    async def headers_for(self, **body: Any) -> dict[str, str]:
        return await self.stack.headers_for(**body)

    async def approved_facility(self, who: str = "operator", **overrides: Any) -> dict[str, Any]:
        """A facility applied for by `who`, approved by the four departments, and present (approved)
        in monitoring's projection."""
        response = await self.client.post(
            "/v1/facilities", json=facility_body(**overrides), headers=await self.headers(who)
        )
        assert response.status_code == 201, response.text
        facility = response.json()
        for department in REVIEWERS:
            response = await self.client.post(
                f"/v1/facilities/{facility['id']}/reviews",
                json={"department": department, "decision": "approve", "note": ""},
                headers=await self.headers(department),
            )
            assert response.status_code == 200, response.text
        await self.projected(facility["id"], status="approved")
        return response.json()

    async def projected(self, facility_id: str, *, status: str) -> None:
        async def arrived() -> bool:
            async with self.monitoring.state.sessionmaker() as session:
                facility = await session.get(Facility, facility_id)
                return facility is not None and facility.status == status

        await eventually(arrived)

    async def camera(self, facility_id: str, who: str = "operator", **overrides: Any) -> dict[str, Any]:
        body = {
            "facility_id": facility_id,
            "location": "classroom",
            "vendor": "海康威视",
            "external_id": f"cam-{uuid.uuid4().hex[:8]}",
        } | overrides
        response = await self.client.post("/v1/cameras", json=body, headers=await self.headers(who))
        assert response.status_code == 201, response.text
        return response.json()

    async def employ(
        self, facility_ids: Iterable[str], *, role: str = "infant_carer", name: str = "王五"
    ) -> tuple[str, str]:
        """A certified practitioner hired by the operator at every facility given: (practitioner id,
        the raw ID number a ban names). Hiring waits for the approvals to reach the workforce, and
        returns once monitoring has learned of every hire."""
        facilities = list(facility_ids)
        operator = await self.headers("operator")
        id_number = new_id_number()
        person = await self.client.post(
            "/v1/practitioners", json={"id_number": id_number, "name": name}, headers=operator
        )
        assert person.status_code == 201, person.text
        person_id = person.json()["id"]
        today = date.today()
        certificate = await self.client.post(
            f"/v1/practitioners/{person_id}/certificates",
            json={
                "type": role,
                "number": f"{role}-{person_id[:8]}",
                "issuer": "上海市职业技能鉴定中心",
                "issued_on": (today - timedelta(days=100)).isoformat(),
                "expires_on": (today + timedelta(days=900)).isoformat(),
            },
            headers=operator,
        )
        assert certificate.status_code == 201, certificate.text
        health = await self.client.post(
            f"/v1/practitioners/{person_id}/certificates",
            json={
                "type": "health",  # 健康合格证明: every hire needs one
                "number": f"JK-{person_id[:8]}",
                "issuer": "上海市徐汇区疾病预防控制中心",
                "issued_on": (today - timedelta(days=30)).isoformat(),
            },
            headers=operator,
        )
        assert health.status_code == 201, health.text
        for facility_id in facilities:
            body = {
                "practitioner_id": person_id,
                "facility_id": facility_id,
                "role": role,
                "start_date": today.isoformat(),
            }

            async def hired(body: dict[str, str] = body) -> bool:
                response = await self.client.post("/v1/employments", json=body, headers=operator)
                assert response.status_code in (201, 404), response.text
                return response.status_code == 201

            await eventually(hired)

        # Monitoring learns of each hire from the workforce's event a moment later; a finding may
        # name the person only once it has. Tests go on from there, as a bureau would, days later.
        async def known() -> bool:
            return await self.count(
                select(EmploymentRecord.employment_id)
                .where(
                    EmploymentRecord.practitioner_id == person_id,
                    EmploymentRecord.facility_id.in_(facilities),
                )
                .subquery()
            ) == len(facilities)

        await eventually(known)
        return person_id, id_number

    async def send(self, events: list[dict[str, Any]], who: str = "operator") -> httpx.Response:
        return await self.client.post("/v1/cctv-events", json=events, headers=await self.headers(who))

    async def count(self, query: Any) -> int:
        async with self.monitoring.state.sessionmaker() as session:
            return (await session.execute(select(func.count()).select_from(query))).scalar_one()

    async def settled(self) -> None:
        """Wait until monitoring's outbox has published everything committed so far."""
        outbox = self.monitoring.state.relay.table

        async def drained() -> bool:
            async with self.monitoring.state.sessionmaker() as session:
                pending = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
                return (await session.execute(pending)).scalar_one() == 0

        await eventually(drained)

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """The CloudEvents of this type on monitoring's stream (real NATS), once all are out."""
        await self.settled()
        ns = Namespace(self.namespace)
        nc = await nats.connect(self.monitoring.state.settings.nats_url)
        try:
            js = nc.jetstream()
            stream = ns.stream("monitoring")
            total = (await js.stream_info(stream)).state.messages
            found = []
            for seq in range(1, total + 1):
                message = await js.get_msg(stream, seq)
                if message.subject == ns.subject(event_type):
                    found.append(json.loads(message.data))
            return found
        finally:
            await nc.close()


def cctv_event(camera: dict[str, Any], type: str = "heartbeat", **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "camera_id": camera["id"],
        "facility_id": camera["facility_id"],
        "type": type,
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {},
    } | overrides


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def uuid7(ms: int) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, randomness, the variant."""
    value = (ms << 80) | (0x7 << 76) | (random.getrandbits(12) << 64) | (0b10 << 62) | random.getrandbits(62)
    return str(uuid.UUID(int=value))


def ulid(ms: int) -> str:
    """A ULID: 48 bits of Unix milliseconds and 80 random bits, in Crockford's base 32."""
    value = (ms << 80) | random.getrandbits(80)
    return "".join(CROCKFORD[(value >> (5 * (25 - n))) & 31] for n in range(26))


@pytest.fixture
async def mon(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[MonitoringStack]:
    async with start_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        yield MonitoringStack(stack)
