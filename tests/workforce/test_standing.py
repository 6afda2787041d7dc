"""Through the gateway: a health certificate (健康合格证明) to be hired and to keep working, the
background check every hire opens with POLICE (T12) — provisional until clear, suspended on a flagged
answer until the district decides — and changes to an employment's contract and social insurance,
each kept in its history. Each caller sees only its own facilities' or district's employments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.workforce.jobs import run_due_jobs
from shared.clock import shanghai_today
from tests.workforce.conftest import WorkforceStack, new_id_number, start_workforce_stack

XUHUI, JINGAN = "310104", "310106"


class Callers:
    """Clients made through the gateway's admin API, each with a token."""

    def __init__(self, wf: WorkforceStack) -> None:
        self.wf = wf

    async def make(self, **body: Any) -> dict[str, str]:
        return await self.wf.stack.headers_for(**body)

    async def operator(self, *facility_ids: str) -> dict[str, str]:
        return await self.make(
            name="托育机构", kind="operator", facility_ids=list(facility_ids),
            scopes=["workforce:read", "workforce:write"],
        )  # fmt: skip

    async def district(self, code: str = XUHUI) -> dict[str, str]:
        return await self.make(
            name=f"{code} 托育服务指导中心", kind="district", district_code=code,
            scopes=["workforce:read", "workforce:write"],
        )  # fmt: skip

    async def police(self) -> dict[str, str]:
        return await self.make(
            name="市公安局", kind="bureau", bureau="POLICE", scopes=["workforce:read", "workforce:write"]
        )


async def run_jobs(wf: WorkforceStack, now: datetime) -> Any:
    return await run_due_jobs(
        maker=wf.workforce.state.sessionmaker, workforce=wf.workforce.state.workforce, now=now
    )


async def registered(wf: WorkforceStack, operator: dict[str, str], *, healthy: bool = True) -> str:
    """A person the operator registered and certified for childcare (and, if `healthy`, with a health
    certificate valid today), through the gateway."""
    person = await wf.gateway.post(
        "/v1/practitioners", json={"id_number": new_id_number(), "name": "赵敏"}, headers=operator
    )
    assert person.status_code == 201, person.text
    person_id = str(person.json()["id"])
    certificate = await wf.gateway.post(
        f"/v1/practitioners/{person_id}/certificates",
        json={
            "type": "childcare_worker",
            "number": f"BY-{person_id[:8]}",
            "issuer": "上海市职业技能鉴定中心",
            "issued_on": (date.today() - timedelta(days=300)).isoformat(),
            "expires_on": (date.today() + timedelta(days=1000)).isoformat(),
        },
        headers=operator,
    )
    assert certificate.status_code == 201, certificate.text
    if healthy:
        await health_certificate(wf, operator, person_id)
    return person_id


async def health_certificate(
    wf: WorkforceStack, headers: dict[str, str], person_id: str, *, issued_on: date | None = None
) -> Any:
    response = await wf.gateway.post(
        f"/v1/practitioners/{person_id}/certificates",
        json={
            "type": "health",
            "number": f"JK-{person_id[:8]}-{(issued_on or date.today()).isoformat()}",
            "issuer": "上海市徐汇区疾病预防控制中心",
            "issued_on": (issued_on or date.today() - timedelta(days=10)).isoformat(),
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def hire(
    wf: WorkforceStack, operator: dict[str, str], person_id: str, facility_id: str, **extra: Any
) -> Any:
    body = {
        "practitioner_id": person_id,
        "facility_id": facility_id,
        "role": "childcare_worker",
        "age_class": "toddler",
        "start_date": date.today().isoformat(),
        **extra,
    }
    return await wf.gateway.post("/v1/employments", json=body, headers=operator)


async def answer(wf: WorkforceStack, police: dict[str, str], employment: dict[str, Any], result: str) -> Any:
    response = await wf.gateway.post(
        f"/v1/practitioners/{employment['practitioner_id']}/background-checks/"
        f"{employment['background_check_id']}/answer",
        json={"result": result, "note": "公安回函"},
        headers=police,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def get(wf: WorkforceStack, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = await wf.gateway.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def carers(wf: WorkforceStack, facility_id: str, headers: dict[str, str]) -> int:
    staffing = await get(wf, f"/v1/facilities/{facility_id}/staffing", headers)
    return next(c["carers"] for c in staffing["classes"] if c["age_class"] == "toddler")


async def test_a_hire_needs_a_valid_health_certificate(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    who = Callers(wf)
    operator = await who.operator(facility)
    person = await registered(wf, operator, healthy=False)

    refused = await hire(wf, operator, person, facility)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"] == "/problems/health-certificate-missing"
    assert problem["certificate_type"] == "health" and "健康合格证明" in problem["detail"]

    # One that lapsed before the first day of work does not do either.
    await health_certificate(wf, operator, person, issued_on=date.today() - timedelta(days=400))
    assert (await hire(wf, operator, person, facility)).status_code == 409

    # Valid a year from its issue: given no expiry, it gets one; a longer one is refused.
    longer = await wf.gateway.post(
        f"/v1/practitioners/{person}/certificates",
        json={
            "type": "health", "number": "JK-long", "issuer": "疾控中心",
            "issued_on": date.today().isoformat(),
            "expires_on": (date.today() + timedelta(days=400)).isoformat(),
        },
        headers=operator,
    )  # fmt: skip
    assert longer.status_code == 422 and longer.json()["errors"][0]["field"] == "expires_on"
    certificate = await health_certificate(wf, operator, person)
    assert (
        certificate["expires_on"]
        == (date.fromisoformat(certificate["issued_on"]) + timedelta(days=365)).isoformat()
    )
    assert (await hire(wf, operator, person, facility)).status_code == 201


async def test_a_hire_opens_a_background_check_and_stays_provisional_until_it_is_clear(
    wf: WorkforceStack,
) -> None:
    facility = await wf.facility(enrolment={"infant": 0, "toddler": 5, "preschool": 0})
    who = Callers(wf)
    operator, police, district = await who.operator(facility), await who.police(), await who.district()
    person = await registered(wf, operator)

    hired = await hire(wf, operator, person, facility)
    assert hired.status_code == 201, hired.text
    employment = hired.json()
    assert employment["status"] == "active" and employment["standing"] == "provisional"
    # POLICE has it in its queue, and on its feed as an event naming the hire.
    queue = await get(wf, "/v1/compliance/background-checks", police, status="pending")
    assert employment["background_check_id"] in {c["id"] for c in queue["items"]}
    [requested] = [
        e for e in await wf.events("cradle.workforce.background_check.requested")
        if e.data["background_check_id"] == employment["background_check_id"]
    ]  # fmt: skip
    assert requested.data["reason"] == "hire"
    assert (requested.data["employment_id"], requested.data["facility_id"]) == (employment["id"], facility)
    # A provisional carer works under supervision: not counted toward the ratio.
    assert await carers(wf, facility, operator) == 0
    provisional = await get(wf, "/v1/compliance/employments", district, concern="provisional")
    assert [e["id"] for e in provisional["items"]] == [employment["id"]]

    await answer(wf, police, employment, "clear")
    cleared = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert cleared["standing"] == "cleared" and cleared["version"] == 2
    assert await carers(wf, facility, operator) == 1
    history = await get(wf, f"/v1/employments/{employment['id']}/history", operator)
    assert [(h["kind"], h["changes"]) for h in history["items"]] == [
        ("provisional_cleared", {"standing": ["provisional", "cleared"]})
    ]


async def test_a_clear_check_on_file_before_the_hire_starts_it_cleared(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    who = Callers(wf)
    operator, police = await who.operator(facility), await who.police()
    person = await registered(wf, operator)
    asked = await wf.gateway.post(
        f"/v1/practitioners/{person}/background-checks", json={"reason": "hire"}, headers=operator
    )
    assert asked.status_code == 201, asked.text
    await answer(wf, police, {"practitioner_id": person, "background_check_id": asked.json()["id"]}, "clear")

    hired = await hire(wf, operator, person, facility)
    assert hired.status_code == 201, hired.text
    assert hired.json()["standing"] == "cleared"
    assert hired.json()["background_check_id"] == asked.json()["id"]
    checks = await get(wf, f"/v1/practitioners/{person}/background-checks", operator)
    assert len(checks["items"]) == 1  # no second check opened


async def test_a_flagged_answer_suspends_until_the_district_decides(wf: WorkforceStack) -> None:
    xuhui, jingan = await wf.facility(district_code=XUHUI), await wf.facility(district_code=JINGAN)
    who = Callers(wf)
    operator, police = await who.operator(xuhui, jingan), await who.police()
    xuhui_district, jingan_district = await who.district(XUHUI), await who.district(JINGAN)
    kept, ended = await registered(wf, operator), await registered(wf, operator)
    first = (await hire(wf, operator, kept, xuhui)).json()
    second = (await hire(wf, operator, ended, xuhui)).json()
    await answer(wf, police, first, "flagged")
    await answer(wf, police, second, "flagged")

    suspended = await get(wf, f"/v1/employments/{first['id']}", operator)
    assert suspended["standing"] == "suspended" and suspended["suspended_at"]
    events = {
        e.data["employment_id"]: e.data for e in await wf.events("cradle.workforce.employment.suspended")
    }
    assert events[first["id"]]["facility_id"] == xuhui and events[first["id"]]["default_action"] == "end"
    listed = await get(wf, "/v1/compliance/employments", xuhui_district, concern="suspended")
    assert {e["id"] for e in listed["items"]} == {first["id"], second["id"]}
    assert (await get(wf, "/v1/compliance/employments", jingan_district, concern="suspended"))["items"] == []

    decision = {"decision": "reinstate", "note": "经复核，记录与本人无关"}
    # Not the operator's to decide, and another district does not even see it.
    by_operator = await wf.gateway.post(
        f"/v1/employments/{first['id']}/decision", json=decision, headers=operator
    )
    assert by_operator.status_code == 403, by_operator.text
    elsewhere = await wf.gateway.post(
        f"/v1/employments/{first['id']}/decision", json=decision, headers=jingan_district
    )
    assert elsewhere.status_code == 404, elsewhere.text

    reinstated = await wf.gateway.post(
        f"/v1/employments/{first['id']}/decision", json=decision, headers=xuhui_district
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["standing"] == "cleared"
    again = await wf.gateway.post(
        f"/v1/employments/{first['id']}/decision", json=decision, headers=xuhui_district
    )
    assert again.status_code == 409 and again.json()["type"] == "/problems/employment-not-suspended"
    end = await wf.gateway.post(
        f"/v1/employments/{second['id']}/decision",
        json={"decision": "end", "note": "有不宜从事托育工作的记录"},
        headers=xuhui_district,
    )
    assert end.status_code == 200, end.text
    assert (end.json()["status"], end.json()["end_reason"]) == ("ended", "background_check")

    history = await get(wf, f"/v1/employments/{first['id']}/history", xuhui_district)
    assert [h["kind"] for h in history["items"]] == ["suspended", "reinstated"]
    assert history["items"][1]["note"] == decision["note"]
    [back] = await wf.events("cradle.workforce.employment.reinstated")
    assert (back.data["employment_id"], back.data["decided_by"]) == (first["id"], "district")
    # The flag still blocks a new hire until POLICE resolves it.
    refused = await hire(wf, operator, kept, jingan)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/background-check-flagged"


async def test_an_undecided_suspension_gets_the_default_action_once(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    who = Callers(wf)
    operator, police = await who.operator(facility), await who.police()
    employment = (await hire(wf, operator, await registered(wf, operator), facility)).json()
    await answer(wf, police, employment, "flagged")
    suspended_at = datetime.fromisoformat(
        (await get(wf, f"/v1/employments/{employment['id']}", operator))["suspended_at"]
    )
    assert (await run_jobs(wf, suspended_at + timedelta(days=29))).suspensions_decided == 0
    assert (await run_jobs(wf, suspended_at + timedelta(days=30, minutes=1))).suspensions_decided == 1
    assert (await run_jobs(wf, suspended_at + timedelta(days=60))).suspensions_decided == 0
    after = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert (after["status"], after["end_reason"]) == ("ended", "background_check")
    [ended] = [
        e for e in await wf.events("cradle.workforce.employment.ended")
        if e.data["employment_id"] == employment["id"]
    ]  # fmt: skip
    assert ended.data["reason"] == "background_check"


@pytest.fixture
async def reinstating(databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]) -> Any:
    """A deployment whose undecided suspensions go on (WORKFORCE_SUSPENSION_DEFAULT_ACTION), after 10 days."""
    async with start_workforce_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys,
        suspension_default_action="reinstate", suspension_decision_days=10,
    ) as stack:  # fmt: skip
        yield stack


async def test_where_the_default_is_to_reinstate_an_undecided_suspension_goes_on(
    reinstating: WorkforceStack,
) -> None:
    wf = reinstating
    facility = await wf.facility(enrolment={"infant": 0, "toddler": 5, "preschool": 0})
    who = Callers(wf)
    operator, police = await who.operator(facility), await who.police()
    employment = (await hire(wf, operator, await registered(wf, operator), facility)).json()
    await answer(wf, police, employment, "flagged")
    suspended = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert suspended["standing"] == "suspended"
    [event] = [
        e for e in await wf.events("cradle.workforce.employment.suspended")
        if e.data["employment_id"] == employment["id"]
    ]  # fmt: skip
    assert event.data["default_action"] == "reinstate"
    suspended_at = datetime.fromisoformat(suspended["suspended_at"])
    assert datetime.fromisoformat(event.data["decide_by"]) == suspended_at + timedelta(days=10)

    assert (await run_jobs(wf, suspended_at + timedelta(days=9))).suspensions_decided == 0
    assert (await run_jobs(wf, suspended_at + timedelta(days=10, minutes=1))).suspensions_decided == 1
    assert (await run_jobs(wf, suspended_at + timedelta(days=20))).suspensions_decided == 0
    after = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert (after["status"], after["standing"]) == ("active", "cleared")
    [back] = [
        e for e in await wf.events("cradle.workforce.employment.reinstated")
        if e.data["employment_id"] == employment["id"]
    ]  # fmt: skip
    assert back.data["decided_by"] == "default"
    history = await get(wf, f"/v1/employments/{employment['id']}/history", operator)
    assert [h["kind"] for h in history["items"]] == ["suspended", "reinstated"]
    assert not [
        e for e in await wf.events("cradle.workforce.employment.ended")
        if e.data["employment_id"] == employment["id"]
    ]  # fmt: skip


async def test_a_flag_at_the_annual_recheck_suspends_every_employment_of_the_person(
    wf: WorkforceStack,
) -> None:
    xuhui, jingan = await wf.facility(district_code=XUHUI), await wf.facility(district_code=JINGAN)
    who = Callers(wf)
    operator, police = await who.operator(xuhui, jingan), await who.police()
    person = await registered(wf, operator)
    for facility in (xuhui, jingan):
        employment = (await hire(wf, operator, person, facility)).json()
        if facility == xuhui:
            await answer(wf, police, employment, "clear")
    # A year on, the re-check opens a new check (no facility: the bureaus' alone); it comes back flagged.
    await run_jobs(wf, datetime.now(UTC) + timedelta(days=366))
    annual = (await get(wf, "/v1/compliance/background-checks", police, status="pending"))["items"]
    [check] = [c for c in annual if c["practitioner_id"] == person and c["reason"] == "annual"]
    await answer(wf, police, {"practitioner_id": person, "background_check_id": check["id"]}, "flagged")
    staff = [
        (await get(wf, "/v1/employments", operator, facility_id=facility))["items"][0]
        for facility in (xuhui, jingan)
    ]
    assert [e["standing"] for e in staff] == ["suspended", "suspended"]
    assert {e["background_check_id"] for e in staff} == {check["id"]}


async def test_a_lapsed_health_certificate_flags_the_employment_once(wf: WorkforceStack) -> None:
    facility = await wf.facility(enrolment={"infant": 0, "toddler": 5, "preschool": 0})
    elsewhere = await wf.facility(district_code=JINGAN)
    who = Callers(wf)
    operator, police = await who.operator(facility), await who.police()
    district, other = await who.district(XUHUI), await who.district(JINGAN)
    person = await registered(wf, operator)
    employment = (await hire(wf, operator, person, facility)).json()
    await answer(wf, police, employment, "clear")
    assert await carers(wf, facility, operator) == 1
    certificates = (await get(wf, f"/v1/practitioners/{person}/certificates", operator))["items"]
    expires = date.fromisoformat(next(c["expires_on"] for c in certificates if c["type"] == "health"))
    still_valid = datetime.combine(expires, datetime.min.time(), UTC)
    assert (await run_jobs(wf, still_valid)).health_flagged == 0
    lapsed = still_valid + timedelta(days=2)
    assert (await run_jobs(wf, lapsed)).health_flagged == 1
    assert (await run_jobs(wf, lapsed + timedelta(days=1))).health_flagged == 0  # once

    flagged = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert flagged["health_flagged_on"] == shanghai_today(lapsed).isoformat()
    assert await carers(wf, facility, operator) == 0  # may not work: not counted
    [event] = await wf.events("cradle.workforce.employment.flagged")
    assert (event.data["employment_id"], event.data["facility_id"]) == (employment["id"], facility)
    assert event.data["reason"] == "health_certificate_expired"
    listed = await get(wf, "/v1/compliance/employments", district, concern="health_certificate")
    assert [e["id"] for e in listed["items"]] == [employment["id"]]
    assert (await get(wf, "/v1/compliance/employments", other, concern="health_certificate"))["items"] == []
    assert elsewhere  # the other district's facility exists; its district sees none of this one's

    # A new certificate lifts the flag.
    await health_certificate(wf, operator, person, issued_on=date.today() - timedelta(days=1))
    restored = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert restored["health_flagged_on"] is None and await carers(wf, facility, operator) == 1
    kinds = [
        h["kind"] for h in (await get(wf, f"/v1/employments/{employment['id']}/history", operator))["items"]
    ]
    assert kinds == ["provisional_cleared", "health_flagged", "health_restored"]


@pytest.fixture
async def lenient(databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]) -> Any:
    """A deployment that hires pending the health certificate."""
    async with start_workforce_stack(
        databases=databases, nats_url=shared_nats_url, namespace=namespace, keys=keys,
        provisional_hire_without_health_certificate=True,
    ) as stack:  # fmt: skip
        yield stack


async def test_where_allowed_a_hire_without_a_health_certificate_is_provisional_until_one_comes(
    lenient: WorkforceStack,
) -> None:
    wf = lenient
    facility = await wf.facility()
    who = Callers(wf)
    operator, police = await who.operator(facility), await who.police()
    person = await registered(wf, operator, healthy=False)
    employment = (await hire(wf, operator, person, facility)).json()
    assert employment["standing"] == "provisional" and employment["health_certificate_pending"] is True
    await answer(wf, police, employment, "clear")
    waiting = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert waiting["standing"] == "provisional"  # the certificate is still to come
    # Known to lack one already: the job does not flag it.
    assert (await run_jobs(wf, datetime.now(UTC))).health_flagged == 0
    await health_certificate(wf, operator, person)
    done = await get(wf, f"/v1/employments/{employment['id']}", operator)
    assert (done["standing"], done["health_certificate_pending"]) == ("cleared", False)


async def test_contract_and_social_insurance_change_with_if_match_and_history(wf: WorkforceStack) -> None:
    xuhui, jingan = await wf.facility(district_code=XUHUI), await wf.facility(district_code=JINGAN)
    who = Callers(wf)
    operator, stranger = await who.operator(xuhui), await who.operator(jingan)
    district, other = await who.district(XUHUI), await who.district(JINGAN)
    city = await who.make(name="市人社局", kind="bureau", bureau="HRSS", scopes=["workforce:read"])
    hired = await hire(wf, operator, await registered(wf, operator), xuhui, contract_type="part_time")
    employment = hired.json()
    assert employment["social_insurance_paid"] is False and employment["version"] == 1

    lacking = await get(wf, "/v1/compliance/social-insurance", district)
    assert [e["id"] for e in lacking["items"]] == [employment["id"]]
    assert employment["id"] in {
        e["id"] for e in (await get(wf, "/v1/compliance/social-insurance", city))["items"]
    }
    assert (await get(wf, "/v1/compliance/social-insurance", other))["items"] == []

    path = f"/v1/employments/{employment['id']}"
    read = await wf.gateway.get(path, headers=operator)
    assert read.headers["etag"] == '"1"'
    change = {
        "contract_type": "labour_contract",
        "social_insurance_paid": True,
        "social_insurance_since": "2026-04-01",
    }
    assert (await wf.gateway.patch(path, json=change, headers=stranger)).status_code == 404
    bad = await wf.gateway.patch(
        path, json={"social_insurance_paid": False, "social_insurance_since": "2026-04-01"}, headers=operator
    )
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["social_insurance_since"]
    updated = await wf.gateway.patch(path, json=change, headers={**operator, "If-Match": '"1"'})
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    assert (updated.json()["contract_type"], updated.json()["social_insurance_since"]) == (
        "labour_contract",
        "2026-04-01",
    )
    stale = await wf.gateway.patch(
        path, json={"social_insurance_paid": False}, headers={**operator, "If-Match": '"1"'}
    )
    assert stale.status_code == 412, stale.text
    assert (await get(wf, "/v1/compliance/social-insurance", district))["items"] == []

    history = await get(wf, f"{path}/history", district)
    assert [(h["kind"], h["changes"]) for h in history["items"]] == [
        (
            "updated",
            {
                "contract_type": ["part_time", "labour_contract"],
                "social_insurance_paid": [False, True],
                "social_insurance_since": [None, "2026-04-01"],
            },
        )
    ]
    [event] = await wf.events("cradle.workforce.employment.updated")
    assert (event.data["social_insurance_paid"], event.data["version"]) == (True, 2)
