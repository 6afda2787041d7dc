"""What the casework tests share: bodies, facilities written straight into monitoring's projection
(for draws and rankings that need many), and a client that calls the monitoring service directly
with a gateway-signed identity, for the paths the gateway does not route yet (inspectors, /v1/risk,
/v1/monitoring/figures, parents' reports)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.monitoring.models import Facility
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from tests.monitoring.conftest import MonitoringStack

XUHUI, HUANGPU = "310104", "310101"
WRITE = ["monitoring:read", "monitoring:write"]
DISTRICT = Identity(client_id="district-xuhui", kind=ClientKind.district, district_code=XUHUI, scopes=WRITE)
OTHER_DISTRICT = Identity(
    client_id="district-huangpu", kind=ClientKind.district, district_code=HUANGPU, scopes=WRITE
)
EDU = Identity(client_id="bureau-edu", kind=ClientKind.bureau, bureau="EDU", scopes=WRITE)
OPERATOR = Identity(client_id="operator-x", kind=ClientKind.operator, scopes=WRITE)


def parent(name: str = "p1") -> Identity:
    return Identity(client_id=f"parent-{name}", kind=ClientKind.parent, scopes=["parent"])


class Direct:
    """Calls the monitoring app itself, as the gateway would, signing the given identity."""

    def __init__(self, client: httpx.AsyncClient, signer: IdentitySigner) -> None:
        self.client = client
        self.signer = signer

    async def request(self, method: str, path: str, who: Identity, **kwargs: Any) -> httpx.Response:
        headers = {IDENTITY_HEADER: self.signer.sign(who), **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, who: Identity, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, who, **kwargs)

    async def post(self, path: str, who: Identity, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, who, **kwargs)

    async def inspectors(self, count: int, district: str = XUHUI) -> list[str]:
        ids = []
        for n in range(count):
            response = await self.post(
                "/v1/inspectors", EDU, json={"district_code": district, "name": f"检查员{n + 1}"}
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids


@asynccontextmanager
async def direct(mon: MonitoringStack, keys: dict[str, Any]) -> AsyncIterator[Direct]:
    transport = httpx.ASGITransport(app=mon.monitoring)
    async with httpx.AsyncClient(transport=transport, base_url="http://monitoring") as client:
        yield Direct(client, IdentitySigner(keys["signing"]))


async def add_facilities(
    mon: MonitoringStack, count: int, *, district: str = XUHUI, status: str = "approved", **fields: Any
) -> list[str]:
    """Facilities as the registry's events would have projected them (many, quickly)."""
    now = datetime.now(UTC)
    rows = [
        Facility(
            id=str(uuid.uuid4()),
            name=f"托育点 {n}",
            kind="community_point",
            district_code=district,
            town_code=f"{district}003",
            status=status,
            version=1,
            source_event_at=now,
            updated_at=now,
            **fields,
        )
        for n in range(count)
    ]
    async with mon.monitoring.state.sessionmaker() as session, session.begin():
        session.add_all(rows)
    return sorted(r.id for r in rows)


def incident_body(facility_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "facility_id": facility_id,
        "category": "injury",
        "severity": "high",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        "description": "午睡后发现幼儿手臂擦伤",
        "practitioner_ids": [str(uuid.uuid4())],
    } | overrides


def this_month() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")


def month_after(month: str, n: int = 1) -> str:
    year, number = (int(p) for p in month.split("-"))
    number += n
    year, number = year + (number - 1) // 12, (number - 1) % 12 + 1
    return f"{year:04d}-{number:02d}"


async def owned_facility(mon: MonitoringStack, who: str = "operator", district: str = XUHUI) -> str:
    """One approved facility of `who` (an operator of the stack), straight into the projection: the
    registry's own path is covered by the tests that use `mon.approved_facility()`."""
    await mon.headers(who)
    [facility_id] = await add_facilities(mon, 1, district=district, owner_client_id=mon.client_ids[who])
    return facility_id
