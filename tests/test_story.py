"""The whole city in one run, through the gateway only, as the bureaus, the districts, the operators'
scripts and the video platform would call it (issue 8's story):

an operator applies for an inclusive community point; EDU, HEALTH, FIRE and SAMR approve; it gets a
licence and shows in public search and coverage. Staff with certificates are hired, enrolment is
reported, staffing is in ratio. Cameras send heartbeats; an `abuse_suspected` event raises a critical
alert for the district; the district escalates it and proposes a finding of abuse naming a carer and
the director, which bans nobody until EDU, the lead bureau, confirms it. Then both are banned for
life; their employments end there and at a second facility; the registry's credit record shows it at
both; the risk score rises with its reasons; a third facility's operator registers the carer by ID
number (which finds the person's record and lets it hire them), its hire is refused and the district
sees the blocked hire; a POLICE ban check finds the ban and is audited; the indicators reflect it; the
audit chain verifies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cradle.nats import ADMIN, init_trust
from gateway import audit
from services.workforce.models import BanCheck
from tests.conftest import SERVICES, Stack, facility_body, start_stack
from tests.support import DatabaseFactory, NatsProcess, eventually
from tests.workforce.conftest import new_id_number


@pytest.fixture
async def full_stack(
    databases: DatabaseFactory,
    namespace: str,
    keys: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """The story on a bus that refuses anonymous connections, as `cradle up` runs it: a nats-server of
    the test's own in operator mode, streams made by the provisioning credential, and every process
    on its own credential (each may publish only its own subjects)."""
    trust = init_trust(tmp_path / "trust", namespace=namespace)
    server = NatsProcess(tmp_path / "nats", trust=trust)
    await server.start()
    try:
        monkeypatch.setenv("NATS_CREDS", str(trust.creds_path("gateway")))  # the stack's gateway
        own = {name: {"nats_creds": trust.creds_path(name)} for name in SERVICES}
        no_jobs = {"jobs_interval_seconds": 0}  # the story runs the services' jobs itself
        async with start_stack(
            databases=databases,
            nats_url=server.url,
            namespace=namespace,
            keys=keys,
            services=tuple(SERVICES),
            overrides={
                "registry": own["registry"],
                "workforce": own["workforce"] | no_jobs,
                "monitoring": own["monitoring"] | no_jobs,
                "guidance": own["guidance"],
            },
            nats_admin_creds=trust.creds_path(ADMIN),
        ) as stack:
            yield stack
    finally:
        await server.stop()


REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
MONITORING = ["monitoring:read", "monitoring:write", "monitoring:ingest"]
OPERATOR_SCOPES = ["registry:read", "registry:write", "workforce:read", "workforce:write", *MONITORING]


class City:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = stack.client
        self.who: dict[str, dict[str, str]] = {}

    async def meet(self, name: str, **client: Any) -> dict[str, str]:
        self.who[name] = await self.stack.headers_for(name=name, **client)
        return self.who[name]

    async def call(
        self, method: str, path: str, who: str, expect: int | tuple[int, ...] = 200, **kw: Any
    ) -> Any:
        headers = {**self.who[who], **kw.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kw)
        expected = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in expected, (
            f"{method} {path} as {who}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    async def approved_facility(self, operator: str, **overrides: Any) -> dict[str, Any]:
        facility = await self.call("POST", "/v1/facilities", operator, 201, json=facility_body(**overrides))
        for department in REVIEWERS:
            body = {"department": department, "decision": "approve", "note": "符合《托育机构设置标准》"}
            facility = await self.call(
                "POST", f"/v1/facilities/{facility['id']}/reviews", department, json=body
            )
        return facility

    async def staff(self, operator: str, name: str, role: str, id_number: str) -> str:
        person = await self.call(
            "POST", "/v1/practitioners", operator, 201, json={"id_number": id_number, "name": name}
        )
        today = date.today()
        await self.call(
            "POST",
            f"/v1/practitioners/{person['id']}/certificates",
            operator,
            201,
            json={
                "type": role,
                "number": f"{role}-{uuid.uuid4().hex[:8]}",
                "issuer": "上海市职业技能鉴定中心",
                "issued_on": (today - timedelta(days=200)).isoformat(),
                "expires_on": (today + timedelta(days=700)).isoformat(),
            },
        )
        await self.call(  # 健康合格证明: every hire needs one, valid a year
            "POST",
            f"/v1/practitioners/{person['id']}/certificates",
            operator,
            201,
            json={
                "type": "health",
                "number": f"JK-{uuid.uuid4().hex[:8]}",
                "issuer": "上海市徐汇区疾病预防控制中心",
                "issued_on": (today - timedelta(days=30)).isoformat(),
            },
        )
        return person["id"]

    async def hire(self, operator: str, person_id: str, facility_id: str, role: str, **extra: Any) -> Any:
        body = {
            "practitioner_id": person_id,
            "facility_id": facility_id,
            "role": role,
            "start_date": date.today().isoformat(),
            **extra,
        }

        async def hired() -> Any:  # the workforce learns of the approval from the registry's events
            response = await self.client.post("/v1/employments", json=body, headers=self.who[operator])
            return response if response.status_code != 404 else None

        return await eventually(hired)


async def test_the_city_story(full_stack: Stack) -> None:
    c = City(full_stack)
    for department in REVIEWERS:
        await c.meet(
            department,
            kind="bureau",
            bureau=department,
            scopes=["registry:read", "registry:review", "monitoring:read", "monitoring:write"],
        )
    await c.meet("chain", kind="operator", scopes=OPERATOR_SCOPES)
    await c.meet("rival", kind="operator", scopes=OPERATOR_SCOPES)
    await c.meet(
        "xuhui",
        kind="district",
        district_code="310104",
        scopes=["registry:read", "workforce:read", *MONITORING],
    )
    await c.meet("police", kind="bureau", bureau="POLICE", scopes=["workforce:read", "workforce:write"])
    await c.meet("wcwc", kind="bureau", bureau="WCWC", scopes=["indicators:read"])
    await c.meet("auditor", kind="bureau", bureau="EDU", scopes=["audit:read"])

    # 1. An inclusive community point is applied for and approved by the four departments.
    point = await c.approved_facility("chain")
    assert point["status"] == "approved" and point["license_no"].startswith("沪托310104-")
    public = (await c.client.get("/v1/public/facilities", params={"district_code": "310104"})).json()
    assert point["id"] in {f["id"] for f in public["items"]}
    coverage = await c.call("GET", f"/v1/coverage?year={date.today().year}", "xuhui")
    xuhui = next(d for d in coverage["districts"] if d["code"] == "310104")
    assert xuhui["inclusive_points"] == 1 and xuhui["towns_with_point"] == 1
    second = await c.approved_facility("chain", name="徐汇区枫林街道托育园", town_code="310104007")
    third = await c.approved_facility("rival", name="徐汇区另一家托育", inclusive=False)

    # 2. Staff with certificates, hired; enrolment reported; staffing in ratio.
    carer_id = new_id_number()
    carer = await c.staff("chain", "张三", "infant_carer", carer_id)
    director = await c.staff("chain", "李四", "director", new_id_number())
    for facility in (point, second):
        hired = await c.hire("chain", carer, facility["id"], "infant_carer", age_class="infant")
        assert hired.status_code == 201, hired.text
        # The hire opened a background check with POLICE: provisional (not counted in the ratio)
        # until it is clear.
        assert hired.json()["standing"] == "provisional"
    directing = await c.hire("chain", director, point["id"], "director")
    assert directing.status_code == 201
    for person, employment in ((carer, hired.json()), (director, directing.json())):
        await c.call(
            "POST",
            f"/v1/practitioners/{person}/background-checks/{employment['background_check_id']}/answer",
            "police",
            json={"result": "clear"},
        )
    month = date.today().strftime("%Y-%m")
    await c.call(
        "PUT",
        f"/v1/facilities/{point['id']}/enrolment",
        "chain",
        json={"month": month, "infant": 3, "toddler": 0, "preschool": 0},
    )
    staffing = await eventually(lambda: _staffing_with_children(c, point["id"]))
    assert staffing["met"] is True

    # 3. Cameras and heartbeats; an abuse_suspected event is a critical alert for the district.
    camera = await c.call(
        "POST",
        "/v1/cameras",
        "chain",
        201,
        json={
            "facility_id": point["id"],
            "location": "sleeping_room",
            "vendor": "海康威视",
            "external_id": "NVR-01/ch2",
        },
    )
    now = datetime.now(UTC)
    heartbeats = [
        {
            "event_id": f"hb-{uuid.uuid4().hex}",
            "external_id": "NVR-01/ch2",
            "facility_id": point["id"],
            "type": "heartbeat",
            "occurred_at": (now - timedelta(seconds=60 * i)).isoformat(),
        }
        for i in range(5)
    ]
    sent = await c.call("POST", "/v1/cctv-events", "chain", json=heartbeats)
    assert sent["accepted"] == 5 and sent["alerts_raised"] == 0
    abuse = [
        {
            "event_id": f"ai-{uuid.uuid4().hex}",
            "camera_id": camera["id"],
            "facility_id": point["id"],
            "type": "abuse_suspected",
            "occurred_at": now.isoformat(),
            "payload": {"score": 0.93},
        }
    ]
    assert (await c.call("POST", "/v1/cctv-events", "chain", json=abuse))["alerts_raised"] == 1
    [alert] = (await c.call("GET", "/v1/alerts?severity=critical&status=open", "xuhui"))["items"]

    # 4. The district escalates it and proposes its finding: abuse, by the carer, under the director.
    incident = await c.call(
        "POST",
        f"/v1/alerts/{alert['id']}/escalate",
        "xuhui",
        201,
        json={
            "category": "abuse",
            "severity": "critical",
            "description": "午睡室视频：保育员拍打幼儿",
            "practitioner_ids": [carer],
        },
    )
    findings = f"/v1/incidents/{incident['id']}/findings"
    proposal = {
        "outcome": "confirmed",
        "category": "abuse",
        "abuser_practitioner_ids": [carer],
        "responsible_manager_ids": [director],
        "decision_ref": "徐教托〔2026〕9号",
    }

    async def proposed() -> dict[str, Any] | None:
        # A finding names only the facility's staff, as monitoring learns them from the workforce's
        # employment events: until those arrive, the names are refused (422).
        response = await c.client.post(findings, json=proposal, headers=c.who["xuhui"])
        if response.status_code == 422:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    finding = await eventually(proposed)
    assert finding["status"] == "proposed" and finding["outcome"] is None

    #    A proposal bans nobody: both still work at the point, and a ban check finds nothing.
    for facility in (point, second):
        staff = await c.call("GET", f"/v1/employments?facility_id={facility['id']}", "chain")
        assert carer in {e["practitioner_id"] for e in staff["items"]}
    clear = await c.call(
        "POST",
        "/v1/ban-checks",
        "police",
        json={"id_number": carer_id},
        headers={"X-Purpose": "核查".encode()},
    )
    assert clear["banned"] is False

    #    EDU, the lead bureau, confirms the district's finding; now it is final.
    finding = await c.call("POST", f"{findings}/confirm", "EDU", json={"note": "复核属实"})
    assert finding["status"] == "confirmed"
    assert [f["status"] for f in finding["findings"]] == ["confirmed"]

    # 5. Both are banned: every employment ends, at both facilities.
    async def all_ended() -> bool:
        for facility in (point, second):
            active = await c.call("GET", f"/v1/employments?facility_id={facility['id']}", "chain")
            if active["items"]:
                return False
        return True

    await eventually(all_ended)

    # 6. The registry's credit record shows it at both facilities.
    async def banned_entries(facility_id: str, expected: int) -> bool:
        record = (await c.call("GET", f"/v1/facilities/{facility_id}/credit-record", "xuhui"))["items"]
        found = [e for e in record if e["category"] == "staff_banned"]
        assert len(found) <= expected, found  # never one twice
        return len(found) == expected

    await eventually(lambda: banned_entries(point["id"], 2))  # the carer and the director
    await eventually(lambda: banned_entries(second["id"], 1))  # the carer
    record = (await c.call("GET", f"/v1/facilities/{point['id']}/credit-record", "xuhui"))["items"]
    assert "incident_confirmed" in {e["category"] for e in record}
    assert carer_id not in str(record)

    # 7. The risk score rises, with its reasons.
    async def risky() -> dict[str, Any] | None:
        risk = await c.call("GET", f"/v1/facilities/{point['id']}/risk", "xuhui")
        codes = {reason["code"] for reason in risk["reasons"]}
        return risk if {"confirmed_abuse", "bans"} <= codes else None

    risk = await eventually(risky)
    assert risk["level"] == "high"
    ranked = await c.call("GET", "/v1/risk?district_code=310104", "xuhui")
    assert ranked["items"][0]["facility_id"] == point["id"]

    # 8. A third facility's operator tries to hire the carer. Registering the person by ID number finds
    #    the record already on file (200, masked) and lets the operator hire them; the hire is refused
    #    because of the ban, and the district sees the blocked hire.
    known = await c.client.post(
        "/v1/practitioners", json={"id_number": carer_id, "name": "张三"}, headers=c.who["rival"]
    )
    assert known.status_code == 200, known.text
    assert known.json()["id"] == carer and carer_id not in known.text
    refused = await c.client.post(
        "/v1/employments",
        json={
            "practitioner_id": carer,
            "facility_id": third["id"],
            "role": "infant_carer",
            "start_date": date.today().isoformat(),
        },
        headers=c.who["rival"],
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/problems/banned-person"

    async def blocked_seen() -> list[dict[str, Any]] | None:
        found = (await c.call("GET", "/v1/alerts?type=hire_blocked", "xuhui"))["items"]
        return found or None

    [blocked] = await eventually(blocked_seen)
    assert blocked["facility_id"] == third["id"]

    # 9. A POLICE ban check finds the ban, and is audited (in the workforce and at the gateway).
    check = await c.call(
        "POST",
        "/v1/ban-checks",
        "police",
        json={"id_number": carer_id},
        headers={"X-Purpose": "(2026)沪公刑查字第77号".encode()},
    )
    assert check["banned"] is True
    async with full_stack.workforce.state.sessionmaker() as session:
        audited = (
            (await session.execute(select(BanCheck).where(BanCheck.outcome == "banned"))).scalars().all()
        )
    assert [a.purpose for a in audited] == ["(2026)沪公刑查字第77号"]

    # 10. The indicators reflect it all.
    indicators = await c.call("GET", "/v1/indicators", "wcwc")
    rows = {row["id"]: row for row in indicators["items"]}
    assert rows["new_inclusive_points"]["actual"] == 2  # the point and the second (inclusive) facility
    assert rows["inclusive_town_coverage"]["numerator"] == 2
    assert rows["annual_onsite_inspection"]["denominator"] == 3
    assert rows["certified_rate"]["status"] == "ok"

    # 11. The audit chain holds every call and verifies.
    await _audit_settled(full_stack)
    report = await audit.verify(full_stack.gateway.state.engine, key=full_stack.gateway.state.audit_key)
    assert report.ok, report
    calls = await c.call("GET", "/v1/audit?path=/v1/ban-checks", "auditor")
    assert any(r["client_kind"] == "bureau" and r["status"] == 200 for r in calls["items"])


async def _staffing_with_children(c: City, facility_id: str) -> dict[str, Any] | None:
    staffing = await c.call("GET", f"/v1/facilities/{facility_id}/staffing", "chain")
    infant = next(k for k in staffing["classes"] if k["age_class"] == "infant")
    return staffing if infant["children"] == 3 else None


async def _audit_settled(stack: Stack) -> None:
    writer = stack.gateway.state.runtime.audit
    await eventually(lambda: not writer.pending)
