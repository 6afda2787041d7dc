"""A client generated from the committed docs/openapi.json by openapi-python-client (offline, into a
temporary directory, once per module) runs against a real stack over a socket: a short story (a
token by HTTP Basic, an operator registered, its token by the form, a facility applied for, read
back and found in the list, the public divisions), and the whole city story of tests/test_story.py
through its typed functions and models only, asserting on the typed replies. The generator must
skip nothing: any warning fails, and every schema of the document is a model of the client."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select

from cradle.openapi import DOCUMENT
from gateway import audit
from services.workforce.models import BanCheck
from tests.conftest import ADMIN_SECRET, Stack, facility_body, start_stack
from tests.servers import serving
from tests.support import DatabaseFactory, eventually
from tests.test_story import full_stack  # noqa: F401  (the story's stack: a bus in operator mode)
from tests.workforce.conftest import new_id_number

PACKAGE = "cradle_api_client"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    where = tmp_path_factory.mktemp("client")
    run = subprocess.run(
        [str(VENV_BIN / "openapi-python-client"), "generate", "--path", str(DOCUMENT)]
        + ["--meta", "none", "--output-path", str(where / PACKAGE)],
        capture_output=True,
        text=True,
        timeout=300,
        # Its post-generation hooks run ruff, from this environment; nothing reaches the network.
        env=os.environ | {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Warning" not in output and "Unable" not in output, output  # a skipped schema or response
    sys.path.insert(0, str(where))
    try:
        names = [
            "client",
            "api.auth.issue_token",
            "api.admin.create_client",
            "api.facilities.submit_facility",
            "api.facilities.read_facility",
            "api.facilities.list_facilities",
            "api.facilities.report_enrolment",
            "api.divisions.list_divisions",
            "api.applications.review_application",
            "api.public.list_public_facilities",
            "api.coverage.read_coverage",
            "api.workforce.register_practitioner",
            "api.workforce.add_certificate",
            "api.workforce.hire_practitioner",
            "api.workforce.answer_background_check",
            "api.workforce.list_employments",
            "api.workforce.read_facility_staffing",
            "api.workforce.check_bans",
            "api.cameras.register_camera",
            "api.cctv.ingest_cctv_events",
            "api.alerts.list_alerts",
            "api.incidents.escalate_alert",
            "api.incidents.record_finding",
            "api.incidents.confirm_finding",
            "api.credit.read_credit_record",
            "api.risk.read_facility_risk",
            "api.risk.list_risk_ranking",
            "api.views.list_indicators",
            "api.audit.list_audit_records",
            "models",
        ]
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in names}
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
async def served(
    databases: DatabaseFactory, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> AsyncIterator[tuple[Stack, str]]:
    async with (
        start_stack(
            databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys, network=True
        ) as stack,
        serving(stack.gateway) as url,
    ):
        yield stack, url


async def test_a_generated_client_runs_the_story(
    generated: dict[str, ModuleType], served: tuple[Stack, str]
) -> None:
    _, url = served
    api, models = generated, generated["models"]
    client_module = api["client"]

    basic = base64.b64encode(f"admin:{ADMIN_SECRET}".encode()).decode()
    async with client_module.AuthenticatedClient(base_url=url, token=basic, prefix="Basic") as by_basic:
        grant = models.TokenRequest(grant_type=models.TokenRequestGrantType.CLIENT_CREDENTIALS)
        answer = await api["api.auth.issue_token"].asyncio_detailed(client=by_basic, body=grant)
    assert answer.status_code == 200, answer.content
    assert isinstance(answer.parsed, models.TokenResponse) and answer.parsed.scope == "admin"
    assert answer.headers["cache-control"] == "no-store"

    async with client_module.AuthenticatedClient(base_url=url, token=answer.parsed.access_token) as admin:
        created = await api["api.admin.create_client"].asyncio(
            client=admin,
            body=models.ClientCreate(
                name="天平街道社区服务中心",
                kind=models.ClientCreateKind.OPERATOR,
                scopes=["registry:read", "registry:write"],
            ),
        )
    assert isinstance(created, models.ClientCreated), created

    async with client_module.Client(base_url=url) as anonymous:
        posted = await api["api.auth.issue_token"].asyncio(
            client=anonymous,
            body=models.TokenRequest(
                grant_type=models.TokenRequestGrantType.CLIENT_CREDENTIALS,
                client_id=created.client_id,
                client_secret=created.client_secret,
            ),
        )
        assert isinstance(posted, models.TokenResponse), posted
        divisions = await api["api.divisions.list_divisions"].asyncio(client=anonymous)
    assert divisions and any(d.code == "310104" for d in divisions)

    async with client_module.AuthenticatedClient(base_url=url, token=posted.access_token) as operator:
        facility = await api["api.facilities.submit_facility"].asyncio(
            client=operator,
            body=models.FacilityCreate(
                name="天平街道社区托育点",
                kind=models.FacilityKind.COMMUNITY_POINT,
                inclusive=True,
                town_code="310104003",
                address="天平路 100 号",
                lat=31.205,
                lon=121.44,
                operator_name="天平街道社区服务中心",
                service_modes=[models.ServiceMode.FULL_DAY],
                capacity=models.Capacity(infant=10, toddler=15, preschool=20),
            ),
        )
        assert isinstance(facility, models.FacilityRead), facility
        assert facility.status == models.FacilityStatus.SUBMITTED and facility.district_code == "310104"
        again = await api["api.facilities.read_facility"].asyncio(facility.id, client=operator)
        assert isinstance(again, models.FacilityRead) and again.name == "天平街道社区托育点"
        listed = await api["api.facilities.list_facilities"].asyncio(client=operator)
    assert [item.id for item in listed.items] == [facility.id]


def test_every_schema_of_the_document_is_a_model_of_the_client(generated: dict[str, ModuleType]) -> None:
    from openapi_python_client.strings import ClassName

    schemas = json.loads(DOCUMENT.read_text())["components"]["schemas"]
    exported = set(generated["models"].__all__)
    dropped = sorted(name for name in schemas if ClassName(name, "") not in exported)
    assert not dropped


REVIEWERS = ("EDU", "HEALTH", "FIRE", "SAMR")
MONITORING = ["monitoring:read", "monitoring:write", "monitoring:ingest"]
OPERATOR_SCOPES = ["registry:read", "registry:write", "workforce:read", "workforce:write", *MONITORING]


class TypedCity:
    """The story's callers, each an AuthenticatedClient of the generated package with its own token,
    obtained through the generated token function."""

    def __init__(self, api: dict[str, ModuleType], url: str) -> None:
        self.api, self.models, self.url = api, api["models"], url
        self.clients: dict[str, Any] = {}

    async def start(self) -> None:
        basic = base64.b64encode(f"admin:{ADMIN_SECRET}".encode()).decode()
        client = self.api["client"]
        async with client.AuthenticatedClient(base_url=self.url, token=basic, prefix="Basic") as by_basic:
            grant = self.models.TokenRequest(grant_type=self.models.TokenRequestGrantType.CLIENT_CREDENTIALS)
            token = await self.api["api.auth.issue_token"].asyncio(client=by_basic, body=grant)
        assert isinstance(token, self.models.TokenResponse), token
        self.clients["admin"] = client.AuthenticatedClient(base_url=self.url, token=token.access_token)
        self.clients["anonymous"] = client.Client(base_url=self.url)

    async def meet(self, name: str, kind: str, scopes: list[str], **more: Any) -> None:
        m = self.models
        created = await self.api["api.admin.create_client"].asyncio(
            client=self.clients["admin"],
            body=m.ClientCreate(name=name, kind=m.ClientCreateKind(kind), scopes=scopes, **more),
        )
        assert isinstance(created, m.ClientCreated), created
        token = await self.api["api.auth.issue_token"].asyncio(
            client=self.clients["anonymous"],
            body=m.TokenRequest(
                grant_type=m.TokenRequestGrantType.CLIENT_CREDENTIALS,
                client_id=created.client_id,
                client_secret=created.client_secret,
            ),
        )
        assert isinstance(token, m.TokenResponse), token
        self.clients[name] = self.api["client"].AuthenticatedClient(
            base_url=self.url, token=token.access_token
        )

    async def call(self, operation: str, who: str, *args: Any, expect: int = 200, **kwargs: Any) -> Any:
        """A generated function's detailed call; the typed reply once the status is the expected one."""
        answer = await self.api[f"api.{operation}"].asyncio_detailed(
            *args, client=self.clients[who], **kwargs
        )
        assert answer.status_code == expect, f"{operation} as {who}: {answer.status_code} {answer.content!r}"
        return answer.parsed

    async def approved_facility(self, operator: str, **overrides: Any) -> Any:
        m = self.models
        facility = await self.call(
            "facilities.submit_facility",
            operator,
            body=m.FacilityCreate.from_dict(facility_body(**overrides)),
            expect=201,
        )
        for department in REVIEWERS:
            facility = await self.call(
                "applications.review_application",
                department,
                facility.id,
                body=m.ReviewCreate(
                    department=department,
                    decision=m.ReviewDecision("approve"),
                    note="符合《托育机构设置标准》",
                ),
            )
        assert isinstance(facility, m.FacilityRead)
        return facility

    async def staff(self, operator: str, name: str, role: str, id_number: str) -> str:
        m = self.models
        person = await self.call(
            "workforce.register_practitioner",
            operator,
            body=m.PractitionerCreate(id_number=id_number, name=name),
            expect=201,
        )
        assert isinstance(person, m.PractitionerRead)
        today = date.today()
        certificate = await self.call(
            "workforce.add_certificate",
            operator,
            person.id,
            body=m.CertificateCreate(
                type_=m.CertificateType(role),
                number=f"{role}-{uuid.uuid4().hex[:8]}",
                issuer="上海市职业技能鉴定中心",
                issued_on=today - timedelta(days=200),
                expires_on=today + timedelta(days=700),
            ),
            expect=201,
        )
        assert isinstance(certificate, m.CertificateRead)
        # 健康合格证明: no one is hired without one valid on the first day (a year from its issue).
        health = await self.call(
            "workforce.add_certificate",
            operator,
            person.id,
            body=m.CertificateCreate(
                type_=m.CertificateType.HEALTH,
                number=f"JK-{uuid.uuid4().hex[:10]}",
                issuer="上海市徐汇区疾病预防控制中心",
                issued_on=today - timedelta(days=30),
            ),
            expect=201,
        )
        assert isinstance(health, m.CertificateRead) and health.type_ == m.CertificateType.HEALTH
        return str(person.id)

    async def hire(self, operator: str, person_id: str, facility_id: str, role: str, **extra: Any) -> Any:
        m = self.models
        body = m.EmploymentCreate(
            practitioner_id=person_id,
            facility_id=facility_id,
            role=m.Role(role),
            start_date=date.today(),
            **extra,
        )

        async def hired() -> Any:  # the workforce learns of the approval from the registry's events
            answer = await self.api["api.workforce.hire_practitioner"].asyncio_detailed(
                client=self.clients[operator], body=body
            )
            return answer if answer.status_code != 404 else None

        answer = await eventually(hired, timeout=60)
        assert answer.status_code == 201 and isinstance(answer.parsed, m.EmploymentRead), answer.content
        return answer.parsed

    async def close(self) -> None:
        for client in self.clients.values():
            await client.get_async_httpx_client().aclose()


async def until(check: Any, timeout: float = 30) -> Any:
    async def once() -> Any:
        result = check()
        return await result if isinstance(result, Awaitable) else result

    return await eventually(once, timeout=timeout)


async def test_a_generated_client_runs_the_city_story(
    generated: dict[str, ModuleType],
    full_stack: Stack,  # noqa: F811
) -> None:
    """tests/test_story.py's calls, in its order, through the generated functions and models."""
    m = generated["models"]
    async with serving(full_stack.gateway) as url:
        c = TypedCity(generated, url)
        await c.start()
        try:
            await _city_story(c, m, full_stack)
        finally:
            await c.close()


async def _city_story(c: TypedCity, m: ModuleType, stack: Stack) -> None:
    for department in REVIEWERS:
        await c.meet(
            department,
            "bureau",
            ["registry:read", "registry:review", "monitoring:read", "monitoring:write"],
            bureau=department,
        )
    await c.meet("chain", "operator", OPERATOR_SCOPES)
    await c.meet("rival", "operator", OPERATOR_SCOPES)
    await c.meet(
        "xuhui", "district", ["registry:read", "workforce:read", *MONITORING], district_code="310104"
    )
    await c.meet("police", "bureau", ["workforce:read", "workforce:write"], bureau="POLICE")
    await c.meet("wcwc", "bureau", ["indicators:read"], bureau="WCWC")
    await c.meet("auditor", "bureau", ["audit:read"], bureau="EDU")

    # 1. An inclusive community point is applied for and approved by the four departments.
    point = await c.approved_facility("chain")
    assert point.status == m.FacilityStatus.APPROVED and point.license_no.startswith("沪托310104-")
    public = await c.call("public.list_public_facilities", "anonymous", district_code="310104")
    assert point.id in {f.id for f in public.items}
    coverage = await c.call("coverage.read_coverage", "xuhui", year=date.today().year)
    assert isinstance(coverage, m.CityCoverage)
    xuhui = next(d for d in coverage.districts if d.code == "310104")
    assert xuhui.inclusive_points == 1 and xuhui.towns_with_point == 1
    second = await c.approved_facility("chain", name="徐汇区枫林街道托育园", town_code="310104007")
    third = await c.approved_facility("rival", name="徐汇区另一家托育", inclusive=False)

    # 2. Staff with certificates, hired; enrolment reported; staffing in ratio.
    carer_id = new_id_number()
    carer = await c.staff("chain", "张三", "infant_carer", carer_id)
    director = await c.staff("chain", "李四", "director", new_id_number())
    hires = []
    for facility in (point, second):
        hired = await c.hire("chain", carer, facility.id, "infant_carer", age_class=m.AgeClass("infant"))
        assert hired.practitioner_id == carer
        hires.append(hired)
    hires.append(await c.hire("chain", director, point.id, "director"))
    # Each hire opened a background check with POLICE (T12): provisional, out of the ratio, until
    # POLICE answers it clear.
    assert {hire.standing for hire in hires} == {"provisional"}
    for check in {(hire.practitioner_id, hire.background_check_id) for hire in hires}:
        await c.call(
            "workforce.answer_background_check",
            "police",
            *check,
            body=m.BackgroundCheckAnswer.from_dict({"result": "clear"}),
        )
    report = m.EnrolmentReport(month=date.today().strftime("%Y-%m"), infant=3, toddler=0, preschool=0)
    await c.call("facilities.report_enrolment", "chain", point.id, body=report)

    async def staffed() -> Any:
        staffing = await c.call("workforce.read_facility_staffing", "chain", point.id)
        assert isinstance(staffing, m.StaffingRead)
        infant = next(k for k in staffing.classes if k.age_class == m.AgeClass("infant"))
        return staffing if infant.children == 3 else None

    assert (await until(staffed, timeout=60)).met is True

    # 3. Cameras and heartbeats; an abuse_suspected event is a critical alert for the district.
    camera = await c.call(
        "cameras.register_camera",
        "chain",
        body=m.CameraCreate(
            facility_id=point.id,
            location=m.CameraLocation("sleeping_room"),
            vendor="海康威视",
            external_id="NVR-01/ch2",
        ),
        expect=201,
    )
    assert isinstance(camera, m.CameraRead)
    now = datetime.now(UTC)
    event_type = m.IngestCctvEventsCctvEventInType
    heartbeats = [
        m.IngestCctvEventsCctvEventIn(
            event_id=f"hb-{uuid.uuid4().hex}",
            external_id="NVR-01/ch2",
            facility_id=point.id,
            type_=event_type("heartbeat"),
            occurred_at=now - timedelta(seconds=60 * i),
        )
        for i in range(5)
    ]
    sent = await c.call("cctv.ingest_cctv_events", "chain", body=heartbeats)
    assert isinstance(sent, m.IngestReply) and (sent.accepted, sent.alerts_raised) == (5, 0)
    abuse = m.IngestCctvEventsCctvEventIn(
        event_id=f"ai-{uuid.uuid4().hex}",
        camera_id=camera.id,
        facility_id=point.id,
        type_=event_type("abuse_suspected"),
        occurred_at=now,
        payload=m.IngestCctvEventsCctvEventInPayload.from_dict({"score": 0.93}),
    )
    assert (await c.call("cctv.ingest_cctv_events", "chain", body=[abuse])).alerts_raised == 1
    alerts = await c.call("alerts.list_alerts", "xuhui", severity="critical", status="open")
    [alert] = alerts.items

    # 4. The district escalates it and proposes its finding: abuse, by the carer, under the director.
    incident = await c.call(
        "incidents.escalate_alert",
        "xuhui",
        alert.id,
        body=m.Escalation(
            category=m.IncidentCategory("abuse"),
            severity=m.Severity("critical"),
            description="午睡室视频：保育员拍打幼儿",
            practitioner_ids=[carer],
        ),
        expect=201,
    )
    assert isinstance(incident, m.IncidentDetail)
    proposal = m.FindingCreate(
        outcome=m.FindingOutcome("confirmed"),
        category=m.IncidentCategory("abuse"),
        abuser_practitioner_ids=[carer],
        responsible_manager_ids=[director],
        decision_ref="徐教托〔2026〕9号",
    )

    async def proposed() -> Any:
        # A finding names only the facility's staff, as monitoring learns them from the workforce's
        # employment events: until those arrive, the names are refused (422).
        answer = await generated_call(c, "incidents.record_finding", "xuhui", incident.id, body=proposal)
        if answer.status_code == 422:
            return None
        assert answer.status_code == 200, answer.content
        return answer.parsed

    finding = await until(proposed, timeout=60)
    assert isinstance(finding, m.IncidentDetail) and finding.status == "proposed"

    #    A proposal bans nobody: both still work there, and a ban check finds nothing.
    for facility in (point, second):
        staff = await c.call("workforce.list_employments", "chain", facility_id=facility.id)
        assert carer in {e.practitioner_id for e in staff.items}
    clear = await c.call(
        "workforce.check_bans", "police", body=m.BanCheckRequest(id_number=carer_id), x_purpose="check"
    )
    assert isinstance(clear, m.BanCheckResult) and clear.banned is False

    #    EDU, the lead bureau, confirms the district's finding; now it is final.
    finding = await c.call(
        "incidents.confirm_finding", "EDU", incident.id, body=m.FindingConfirm(note="复核属实")
    )
    assert finding.status == "confirmed" and [f.status for f in finding.findings] == ["confirmed"]

    # 5. Both are banned: every employment ends, at both facilities.
    async def all_ended() -> bool:
        for facility in (point, second):
            if (await c.call("workforce.list_employments", "chain", facility_id=facility.id)).items:
                return False
        return True

    await until(all_ended)

    # 6. The registry's credit record shows it at both facilities.
    async def banned_entries(facility_id: str, expected: int) -> bool:
        record = await c.call("credit.read_credit_record", "xuhui", facility_id)
        found = [e for e in record.items if e.category == "staff_banned"]
        assert len(found) <= expected, found  # never one twice
        return len(found) == expected

    await until(lambda: banned_entries(point.id, 2))  # the carer and the director
    await until(lambda: banned_entries(second.id, 1))  # the carer
    record = await c.call("credit.read_credit_record", "xuhui", point.id)
    assert isinstance(record, m.PageCreditEntryRead)
    assert "incident_confirmed" in {e.category for e in record.items}

    # 7. The risk score rises, with its reasons.
    async def risky() -> Any:
        risk = await c.call("risk.read_facility_risk", "xuhui", point.id)
        assert isinstance(risk, m.RiskRead)
        return risk if {"confirmed_abuse", "bans"} <= {reason.code for reason in risk.reasons} else None

    risk = await until(risky)
    assert risk.level == "high"
    ranked = await c.call("risk.list_risk_ranking", "xuhui", district_code="310104")
    assert ranked.items[0].facility_id == point.id

    # 8. A third facility's operator registers the carer by ID number: found (200, masked), and its
    #    hire is refused because of the ban; the district sees the blocked hire.
    known = await c.call(
        "workforce.register_practitioner",
        "rival",
        body=m.PractitionerCreate(id_number=carer_id, name="张三"),
        expect=200,
    )
    assert (
        isinstance(known, m.PractitionerRead) and known.id == carer and carer_id not in str(known.to_dict())
    )
    refused = await c.call(
        "workforce.hire_practitioner",
        "rival",
        body=m.EmploymentCreate(
            practitioner_id=carer, facility_id=third.id, role=m.Role("infant_carer"), start_date=date.today()
        ),
        expect=409,
    )
    assert isinstance(refused, m.Problem) and refused.type_ == "/problems/banned-person"

    async def blocked_seen() -> Any:
        return (await c.call("alerts.list_alerts", "xuhui", type_="hire_blocked")).items or None

    [blocked] = await until(blocked_seen)
    assert blocked.facility_id == third.id

    # 9. A POLICE ban check finds the ban, and is audited (in the workforce and at the gateway).
    purpose = "(2026) case 77"
    check = await c.call(
        "workforce.check_bans", "police", body=m.BanCheckRequest(id_number=carer_id), x_purpose=purpose
    )
    assert check.banned is True
    async with stack.workforce.state.sessionmaker() as session:
        audited = (
            (await session.execute(select(BanCheck).where(BanCheck.outcome == "banned"))).scalars().all()
        )
    assert [a.purpose for a in audited] == [purpose]

    # 10. The indicators reflect it all, as typed rows.
    indicators = await c.call("views.list_indicators", "wcwc")
    assert isinstance(indicators, m.PlanIndicators)
    rows = {row.id: row for row in indicators.items}
    assert rows["new_inclusive_points"].actual == 2
    assert rows["inclusive_town_coverage"].numerator == 2
    assert rows["annual_onsite_inspection"].denominator == 3
    assert rows["certified_rate"].status == "ok"

    # 11. The audit chain holds every call and verifies.
    writer = stack.gateway.state.runtime.audit
    await eventually(lambda: not writer.pending)
    verified = await audit.verify(stack.gateway.state.engine, key=stack.gateway.state.audit_key)
    assert verified.ok, verified
    calls = await c.call("audit.list_audit_records", "auditor", path="/v1/ban-checks")
    assert any(r.client_kind == "bureau" and r.status == 200 for r in calls.items)


async def generated_call(c: TypedCity, operation: str, who: str, *args: Any, **kwargs: Any) -> Any:
    """A generated function's detailed reply, whatever its status."""
    return await c.api[f"api.{operation}"].asyncio_detailed(*args, client=c.clients[who], **kwargs)
