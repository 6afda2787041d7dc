"""A small city of real objects, made through the gateway the way callers make them: facilities
approved by the four departments (and projected into the workforce and monitoring), cameras, an
alert, incidents, an inspection, practitioners with certificates, trainings, a grade, a background
check and an employment, a ban; guidance stations, places, sessions, a family with a parent, a home
visit, a resource. The fuzzer draws path parameters from it; the BOLA matrix makes one estate per
owner and attacks it with the other owner's token."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from gateway.config import RateLimit
from services.monitoring.models import Facility as MonitoredFacility
from services.registry.models import SubsidyRate
from services.workforce.models import FacilityProjection
from shared.pii import national_id_check_char
from tests.conftest import Stack, facility_body
from tests.support import eventually

REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
XUHUI, HUANGPU = "310104", "310101"
XUHUI_TOWN, HUANGPU_TOWN = "310104003", "310101002"
# Every scope a client may be granted (admin is never granted through the API).
EVERY_SCOPE = [
    "registry:read",
    "registry:write",
    "registry:review",
    "workforce:read",
    "workforce:write",
    "workforce:ban",
    "workforce:pii",
    "monitoring:ingest",
    "monitoring:read",
    "monitoring:write",
    "guidance:read",
    "guidance:write",
    "guidance:pii",
    "indicators:read",
    "audit:read",
]
OPERATOR_SCOPES = [
    "registry:read",
    "registry:write",
    "workforce:read",
    "workforce:write",
    "monitoring:ingest",
    "monitoring:read",
    "monitoring:write",
]
DISTRICT_SCOPES = [
    "registry:read",
    "workforce:read",
    "workforce:write",
    "monitoring:read",
    "monitoring:write",
    "guidance:read",
    "guidance:write",
    "guidance:pii",
]
_serial = itertools.count(random.randrange(1, 500))


def new_id_number() -> str:
    """A valid 居民身份证号, unique within the run."""
    n = next(_serial)
    born = date(1975, 1, 1) + timedelta(days=(n * 41) % 9000)
    first17 = f"310104{born:%Y%m%d}{n % 1000:03d}"
    return first17 + national_id_check_char(first17)


def phone_number() -> str:
    return f"139{next(_serial) % 100_000_000:08d}"


def ok(response: httpx.Response, *expected: int) -> dict[str, Any]:
    assert response.status_code in (expected or (200, 201)), (
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
    )
    return response.json()


def unlimited(stack: Stack) -> None:
    """These tests are one client sending as fast as it can: rate limits are not what they test."""
    limits = stack.gateway.state.settings.rate_limits
    for kind in list(limits):
        limits[kind] = RateLimit(rate=1_000_000, burst=10_000_000)


@dataclass
class Estate:
    """An owner's objects, by kind (the BOLA matrix's targets and the fuzzer's path parameters)."""

    owner: str
    headers: dict[str, str]
    client_id: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)  # guidance: the linked parent's headers


class World:
    """Clients and objects on a running stack (the four services behind the gateway)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = stack.client
        self._clients: dict[str, tuple[str, dict[str, str]]] = {}

    async def party(self, name: str, **body: Any) -> tuple[str, dict[str, str]]:
        """A client registered once (each costs an argon2 hash), with its token's headers."""
        if name not in self._clients:
            created = await self.stack.new_client(name=name, **body)
            token = await self.stack.token(created["client_id"], created["client_secret"])
            self._clients[name] = (created["client_id"], {"Authorization": f"Bearer {token}"})
        return self._clients[name]

    async def headers(self, name: str, **body: Any) -> dict[str, str]:
        return (await self.party(name, **body))[1]

    async def reviewer(self, department: str) -> dict[str, str]:
        return await self.headers(
            f"{department} 审批",
            kind="bureau",
            bureau=department,
            scopes=["registry:read", "registry:review"],
        )

    async def edu(self) -> dict[str, str]:
        """The education bureau with every scope: inspectors, bans, credit entries, resources."""
        return await self.headers("市教委", kind="bureau", bureau="EDU", scopes=EVERY_SCOPE)

    async def district(self, code: str = XUHUI) -> dict[str, str]:
        return await self.headers(
            f"{code} 区指导中心", kind="district", district_code=code, scopes=DISTRICT_SCOPES
        )

    async def parent(self, phone: str | None = None) -> dict[str, str]:
        registered = await self.client.post(
            "/v1/auth/parents/register",
            json={"phone": phone or phone_number(), "password": "parent-password-1"},
        )
        return {"Authorization": f"Bearer {ok(registered, 201)['access_token']}"}

    # --- registry, workforce, monitoring -------------------------------------------------------

    async def approved_facility(self, operator: dict[str, str], **overrides: Any) -> str:
        facility_id = ok(
            await self.client.post("/v1/facilities", json=facility_body(**overrides), headers=operator), 201
        )["id"]
        for department in REVIEWERS:
            ok(
                await self.client.post(
                    f"/v1/facilities/{facility_id}/reviews",
                    json={"department": department, "decision": "approve", "note": "符合"},
                    headers=await self.reviewer(department),
                )
            )
        await self.projected(facility_id)
        return facility_id

    async def subsidy_list(self, district_code: str, month: str) -> str:
        """The district's subsidy list for a closed month: FINANCE's rate for its year, recorded as of
        the month's start (the test makes it today), and the list computed. Returns the district."""
        finance = await self.headers("市财政局", kind="bureau", bureau="FINANCE", scopes=EVERY_SCOPE)
        path = f"/v1/subsidy-rates/{month[:4]}/{district_code}"
        ok(await self.client.put(path, json={"amount_fen": 50_000}, headers=finance))
        async with self.stack.registry.state.sessionmaker() as session, session.begin():
            await session.execute(
                update(SubsidyRate)
                .where(SubsidyRate.district_code == district_code)
                .values(set_at=datetime(int(month[:4]), int(month[5:]), 1, tzinfo=UTC))
            )
        ok(await self.client.post(f"/v1/subsidy-lists/{month}/{district_code}/compute", headers=finance))
        return district_code

    async def projected(self, facility_id: str) -> None:
        """Approved in the workforce's and monitoring's projections (events arrived)."""

        async def arrived() -> bool:
            async with self.stack.workforce.state.sessionmaker() as session:
                staffing = await session.get(FacilityProjection, facility_id)
            async with self.stack.monitoring.state.sessionmaker() as session:
                watched = await session.get(MonitoredFacility, facility_id)
            return bool(
                staffing and staffing.status == "approved" and watched and watched.status == "approved"
            )

        await eventually(arrived)

    async def operator_estate(self, name: str, *, district: str = XUHUI) -> Estate:
        """An operator with an approved facility and everything that hangs off it."""
        client_id, operator = await self.party(name, kind="operator", scopes=OPERATOR_SCOPES)
        estate = Estate(owner=name, headers=operator, client_id=client_id)
        town = XUHUI_TOWN if district == XUHUI else HUANGPU_TOWN
        facility_id = await self.approved_facility(operator, name=f"{name}托育点", town_code=town)
        ids = estate.ids
        ids["facility"] = facility_id
        client = self.client
        ok(
            await client.put(
                f"/v1/facilities/{facility_id}/enrolment",
                json={
                    "month": datetime.now(UTC).strftime("%Y-%m"),
                    "infant": 2,
                    "toddler": 3,
                    "preschool": 4,
                },
                headers=operator,
            )
        )
        ok(
            await client.post(
                f"/v1/facilities/{facility_id}/assessments",
                json={
                    "method": "self",
                    "scores": {"safety": 90},
                    "grade": "B",
                    "assessed_on": date.today().isoformat(),
                    "assessor": "自评小组",
                },
                headers=operator,
            ),
            201,
        )
        edu = await self.edu()
        ids["credit_entry"] = ok(
            await client.post(
                f"/v1/facilities/{facility_id}/credit-record",
                json={
                    "polarity": "positive",
                    "category": "award",
                    "title": "市级示范",
                    "occurred_on": date.today().isoformat(),
                },
                headers=edu,
            ),
            201,
        )["id"]
        # Fees disclosed, and a change to its licensed facts awaiting the departments.
        ok(
            await client.post(
                f"/v1/facilities/{facility_id}/fees",
                json={
                    "effective_from": date.today().isoformat(),
                    "fees": [{"age_class": "toddler", "service_mode": "full_day", "amount": "2800.00"}],
                },
                headers=operator,
            ),
            201,
        )
        ids["change_request"] = ok(
            await client.post(
                f"/v1/facilities/{facility_id}/change-requests",
                json={"address": f"{name}路 1 号", "reason": "迁址"},
                headers=operator,
            ),
            202,
        )["id"]

        # Workforce: a practitioner the operator registered, certified, trained, graded, hired.
        practitioner = ok(
            await client.post(
                "/v1/practitioners",
                json={
                    "id_number": new_id_number(),
                    "name": "王老师",
                    "phone": "13812345678",
                    "nationality": "CN",
                },
                headers=operator,
            ),
            201,
        )
        ids["practitioner"] = pid = practitioner["id"]
        ids["certificate"] = ok(
            await client.post(
                f"/v1/practitioners/{pid}/certificates",
                json={
                    "type": "childcare_worker",
                    "number": f"C-{uuid.uuid4().hex[:8]}",
                    "issuer": "上海市人社局",
                    "issued_on": (date.today() - timedelta(days=400)).isoformat(),
                    "expires_on": (date.today() + timedelta(days=800)).isoformat(),
                },
                headers=operator,
            ),
            201,
        )["id"]
        ok(  # 健康合格证明: every hire needs one
            await client.post(
                f"/v1/practitioners/{pid}/certificates",
                json={
                    "type": "health",
                    "number": f"JK-{uuid.uuid4().hex[:8]}",
                    "issuer": "上海市疾病预防控制中心",
                    "issued_on": (date.today() - timedelta(days=30)).isoformat(),
                },
                headers=operator,
            ),
            201,
        )
        ok(
            await client.post(
                f"/v1/practitioners/{pid}/trainings",
                json={
                    "category": "skills",
                    "hours": 8,
                    "date": date.today().isoformat(),
                    "provider": "区妇幼所",
                },
                headers=operator,
            ),
            201,
        )
        employment = ok(
            await client.post(
                "/v1/employments",
                json={
                    "practitioner_id": pid,
                    "facility_id": facility_id,
                    "role": "childcare_worker",
                    "start_date": date.today().isoformat(),
                    "age_class": "toddler",
                },
                headers=operator,
            ),
            201,
        )
        ids["employment"] = employment["id"]
        ids["background_check"] = ok(
            await client.post(
                f"/v1/practitioners/{pid}/background-checks",
                json={"employment_id": employment["id"], "reason": "hire"},
                headers=edu,
            ),
            201,
        )["id"]
        ok(
            await client.post(
                f"/v1/practitioners/{pid}/grades", json={"level": 2, "reason": "年度评定"}, headers=edu
            ),
            201,
        )

        # Monitoring: a camera, an alert from it, incidents, an inspection.
        camera = ok(
            await client.post(
                "/v1/cameras",
                json={
                    "facility_id": facility_id,
                    "location": "classroom",
                    "vendor": "海康威视",
                    "external_id": f"cam-{uuid.uuid4().hex[:8]}",
                },
                headers=operator,
            ),
            201,
        )
        ids["camera"] = camera["id"]
        for kind in ("fall", "intrusion"):
            reply = ok(
                await client.post(
                    "/v1/cctv-events",
                    json=[
                        {
                            "event_id": f"ev-{uuid.uuid4().hex}",
                            "camera_id": camera["id"],
                            "facility_id": facility_id,
                            "type": kind,
                            "occurred_at": datetime.now(UTC).isoformat(),
                            "payload": {"confidence": 0.9},
                        }
                    ],
                    headers=operator,
                )
            )
            assert reply["accepted"] == 1 and not reply["rejected"], reply
        alerts = ok(await client.get("/v1/alerts", params={"facility_id": facility_id}, headers=operator))
        by_type = {a["type"]: a["id"] for a in alerts["items"]}
        ids["alert"] = by_type["fall"]
        ids["alert_2"] = by_type["intrusion"]
        ids["incident"] = ok(
            await client.post(
                "/v1/incidents",
                json={
                    "facility_id": facility_id,
                    "category": "injury",
                    "severity": "medium",
                    "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                    "description": "户外活动时幼儿摔倒擦伤膝盖",
                    "practitioner_ids": [pid],
                },
                headers=operator,
            ),
            201,
        )["id"]
        # A complaint about the facility, lodged without a token: its district handles it.
        ids["complaint"] = ok(
            await client.post(
                "/v1/complaints",
                json={
                    "facility_id": facility_id,
                    "category": "food",
                    "description": "午餐没有按公示食谱提供",
                    "complainant_phone": "13800138000",
                },
            ),
            201,
        )["id"]
        inspectors = [
            ok(
                await client.post(
                    "/v1/inspectors", json={"district_code": district, "name": f"检查员{n}"}, headers=edu
                ),
                201,
            )["id"]
            for n in (1, 2)
        ]
        ids["inspector"] = inspectors[0]
        month = datetime.now(UTC).strftime("%Y-%m")
        ids["plan"] = ok(
            await client.post(
                "/v1/inspection-plans",
                json={"district_code": district, "month": month, "sample_size": 1, "seed": "fuzz"},
                headers=edu,
            ),
            201,
        )["id"]
        ids["inspection"] = ok(
            await client.post(
                "/v1/inspections",
                json={"facility_id": facility_id, "inspector_ids": inspectors},
                headers=edu,
            ),
            201,
        )["id"]
        return estate

    async def ban(self, estate: Estate) -> str:
        """A ban on someone who worked at the estate's facility: a notification it must acknowledge."""
        edu = await self.edu()
        practitioner = ok(
            await self.client.post(
                "/v1/practitioners",
                json={"id_number": (number := new_id_number()), "name": "赵某", "nationality": "CN"},
                headers=estate.headers,
            ),
            201,
        )
        await self.client.post(
            f"/v1/practitioners/{practitioner['id']}/certificates",
            json={
                "type": "childcare_worker",
                "number": f"C-{uuid.uuid4().hex[:8]}",
                "issuer": "上海市人社局",
                "issued_on": (date.today() - timedelta(days=400)).isoformat(),
                "expires_on": (date.today() + timedelta(days=800)).isoformat(),
            },
            headers=estate.headers,
        )
        await self.client.post(
            f"/v1/practitioners/{practitioner['id']}/certificates",
            json={
                "type": "health",
                "number": f"JK-{uuid.uuid4().hex[:8]}",
                "issuer": "上海市疾病预防控制中心",
                "issued_on": (date.today() - timedelta(days=30)).isoformat(),
            },
            headers=estate.headers,
        )
        ok(
            await self.client.post(
                "/v1/employments",
                json={
                    "practitioner_id": practitioner["id"],
                    "facility_id": estate.ids["facility"],
                    "role": "childcare_worker",
                    "start_date": date.today().isoformat(),
                },
                headers=estate.headers,
            ),
            201,
        )
        ban = ok(
            await self.client.post(
                "/v1/bans",
                json={
                    "id_number": number,
                    "name": "赵某",
                    "reason": "虐待儿童",
                    "decision_ref": f"沪教处〔{date.today().year}〕{next(_serial)}号",
                    "role": "abuser",
                },
                headers=edu,
            ),
            201,
        )
        estate.ids["ban"] = ban["id"]
        estate.ids["banned_practitioner"] = practitioner["id"]
        return ban["id"]

    # --- guidance --------------------------------------------------------------------------------

    async def guidance_estate(self, name: str, *, district: str = XUHUI) -> Estate:
        """A district's guidance objects: station, place, session with a booking, a family (its
        parent linked), a home visit; and the parent's headers."""
        headers = await self.district(district)
        estate = Estate(owner=name, headers=headers)
        ids = estate.ids
        town = XUHUI_TOWN if district == XUHUI else HUANGPU_TOWN
        client = self.client
        ids["station"] = ok(
            await client.post(
                "/v1/stations",
                json={"name": f"{name}科学育儿指导站", "town_code": town, "opened_on": "2024-03-01"},
                headers=headers,
            ),
            201,
        )["id"]
        ids["place"] = ok(
            await client.post(
                "/v1/places",
                json={
                    "kind": "child_friendly_site",
                    "name": f"{name}儿童友好空间",
                    "town_code": town,
                    "opened_on": "2024-05-01",
                },
                headers=headers,
            ),
            201,
        )["id"]
        parent = await self.parent()
        born = date.today() - timedelta(days=240)
        family = ok(
            await client.post(
                "/v1/families",
                json={
                    "town_code": town,
                    "guardians": [{"relation": "mother", "name": "李梅", "phone": phone_number()}],
                    "children": [{"birth_date": born.isoformat()}],
                    "in_need": True,
                },
                headers=parent,
            ),
            201,
        )
        ids["family"] = family["id"]
        estate.parent = parent
        ids["session"] = ok(
            await client.post(
                "/v1/sessions",
                json={
                    "level": "district",
                    "kind": "lecture",
                    "title": "婴幼儿辅食添加",
                    "starts_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                    "capacity": 30,
                    "district_code": district,
                    "venue": "区妇幼保健所",
                },
                headers=headers,
            ),
            201,
        )["id"]
        ids["booking"] = ok(
            await client.post(f"/v1/sessions/{ids['session']}/bookings", json={}, headers=parent), 201
        )["id"]
        ids["home_visit"] = ok(
            await client.post(
                "/v1/home-visits",
                json={
                    "family_id": family["id"],
                    "visited_on": date.today().isoformat(),
                    "visitor": "社区医生",
                    "topics": ["nutrition"],
                },
                headers=headers,
            ),
            201,
        )["id"]
        ids["resource"] = ok(
            await client.post(
                "/v1/resources",
                json={"kind": "article", "title": "辅食添加指南", "age_from_months": 6, "age_to_months": 12},
                headers=await self.edu(),
            ),
            201,
        )["id"]
        return estate
