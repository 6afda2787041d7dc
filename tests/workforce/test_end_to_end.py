"""Through the gateway, with the real registry: two facilities applied for and approved, one person
employed at both, then banned. Both employments end and the registry writes a credit entry at both."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.conftest import facility_body
from tests.support import eventually
from tests.workforce.conftest import WorkforceStack, new_id_number

DEPARTMENTS = ("EDU", "HEALTH", "FIRE", "SAMR")


async def reviewers(wf: WorkforceStack) -> dict[str, dict[str, str]]:
    return {
        department: await wf.stack.headers_for(
            name=f"{department} 审批",
            kind="bureau",
            bureau=department,
            scopes=["registry:review", "registry:read"],
        )
        for department in DEPARTMENTS
    }


async def approved_facility(
    wf: WorkforceStack, applicant: dict[str, str], bureaus: dict[str, dict[str, str]], **overrides: Any
) -> str:
    submitted = await wf.gateway.post("/v1/facilities", json=facility_body(**overrides), headers=applicant)
    assert submitted.status_code == 201, submitted.text
    facility_id = submitted.json()["id"]
    for department in DEPARTMENTS:
        reviewed = await wf.gateway.post(
            f"/v1/facilities/{facility_id}/reviews",
            json={"department": department, "decision": "approve", "note": "符合设置标准"},
            headers=bureaus[department],
        )
        assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["status"] == "approved"
    return facility_id


async def test_a_ban_ends_employment_at_two_facilities_and_both_get_a_credit_entry(
    wf: WorkforceStack,
) -> None:
    admin, applicant = await wf.stack.admin(), await wf.stack.operator()
    bureaus = await reviewers(wf)
    xuhui = await approved_facility(wf, applicant, bureaus)
    jingan = await approved_facility(
        wf, applicant, bureaus, name="静安区托育园", town_code="310106006", lat=31.23, lon=121.45
    )

    operator = await wf.stack.headers_for(
        name="连锁托育集团",
        kind="operator",
        facility_ids=[xuhui, jingan],
        scopes=["workforce:read", "workforce:write", "registry:read"],
    )
    id_number = new_id_number()
    person = await wf.gateway.post(
        "/v1/practitioners",
        json={"id_number": id_number, "name": "王五", "phone": "13900001111"},
        headers=operator,
    )
    assert person.status_code == 201, person.text
    person_id = person.json()["id"]
    assert person.json()["id_number"] != id_number
    today = date.today()
    certificate = await wf.gateway.post(
        f"/v1/practitioners/{person_id}/certificates",
        json={
            "type": "infant_carer",
            "number": "YY-2024-0001",
            "issuer": "上海市职业技能鉴定中心",
            "issued_on": (today - timedelta(days=300)).isoformat(),
            "expires_on": (today + timedelta(days=1000)).isoformat(),
        },
        headers=operator,
    )
    assert certificate.status_code == 201, certificate.text
    health = await wf.gateway.post(
        f"/v1/practitioners/{person_id}/certificates",
        json={
            "type": "health",
            "number": "JK-2026-0001",
            "issuer": "上海市徐汇区疾病预防控制中心",
            "issued_on": (today - timedelta(days=30)).isoformat(),
        },
        headers=operator,
    )
    assert health.status_code == 201, health.text

    async def hire(facility_id: str) -> Any:
        return await wf.gateway.post(
            "/v1/employments",
            json={
                "practitioner_id": person_id,
                "facility_id": facility_id,
                "role": "infant_carer",
                "start_date": today.isoformat(),
            },
            headers=operator,
        )

    # The workforce learns of the approvals from the registry's events.
    await eventually(lambda: _hired(hire, xuhui), timeout=60)
    await eventually(lambda: _hired(hire, jingan), timeout=60)

    court = await wf.stack.headers_for(
        name="市公安局", kind="bureau", bureau="POLICE", scopes=["workforce:ban", "workforce:read"]
    )
    ban = await wf.gateway.post(
        "/v1/bans",
        json={
            "id_number": id_number,
            "name": "王五",
            "reason": "虐待被看护人罪，判决已生效",
            "decision_ref": "(2026)沪0104刑初88号",
            "role": "abuser",
        },
        headers=court,
    )
    assert ban.status_code == 201, ban.text
    assert {n["facility_id"] for n in ban.json()["notifications"]} == {xuhui, jingan}

    staff = await wf.gateway.get(
        "/v1/employments", params={"facility_id": xuhui, "status": "ended"}, headers=operator
    )
    assert [(e["practitioner_id"], e["end_reason"]) for e in staff.json()["items"]] == [(person_id, "ban")]
    for facility_id in (xuhui, jingan):
        active = await wf.gateway.get(
            "/v1/employments", params={"facility_id": facility_id}, headers=operator
        )
        assert active.json()["items"] == []

    async def credit_entries(facility_id: str) -> list[dict[str, Any]]:
        record = await wf.gateway.get(f"/v1/facilities/{facility_id}/credit-record", headers=admin)
        assert record.status_code == 200, record.text
        return [e for e in record.json()["items"] if e["source_event_type"] == "cradle.workforce.ban.issued"]

    for facility_id in (xuhui, jingan):
        entries = await eventually(lambda f=facility_id: credit_entries(f))
        assert len(entries) == 1
        assert id_number not in str(entries)

    # And the banned person can be hired nowhere.
    refused = await hire(xuhui)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/banned-person"


async def _hired(hire: Any, facility_id: str) -> bool:
    response = await hire(facility_id)
    if response.status_code == 404 or (
        response.status_code == 409 and response.json().get("type") == "/problems/facility-not-approved"
    ):
        return False  # the approval has not reached the workforce yet (the submission may have)
    assert response.status_code == 201, response.text
    return True
