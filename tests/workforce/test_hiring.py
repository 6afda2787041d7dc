"""Hiring: every check in one transaction; ending employment; who lacks social insurance;
background checks that block like a ban until resolved."""

from __future__ import annotations

from datetime import date, timedelta

from services.workforce.models import Employment, HireAttempt
from shared.identity import ClientKind, Identity
from tests.workforce.conftest import ADMIN, WorkforceStack


async def test_a_certified_person_is_hired_into_an_approved_facility(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    await wf.certify(person["id"])
    response = await wf.hire(person["id"], facility, contract_type="part_time", social_insurance_paid=True)
    assert response.status_code == 201, response.text
    employment = response.json()
    assert response.headers["location"] == f"/v1/employments/{employment['id']}"
    assert employment["status"] == "active" and employment["district_code"] == "310104"
    assert employment["contract_type"] == "part_time" and employment["social_insurance_paid"] is True
    [event] = await wf.events("cradle.workforce.employment.started")
    assert event.data["employment_id"] == employment["id"] and event.data["facility_id"] == facility


async def test_a_hire_needs_a_known_approved_facility(wf: WorkforceStack) -> None:
    person = await wf.practitioner()
    await wf.certify(person["id"])
    unknown = await wf.hire(person["id"], "8d5e5f3e-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    submitted = await wf.facility(status="submitted", version=1)
    refused = await wf.hire(person["id"], submitted)
    assert refused.status_code == 409 and refused.json()["type"] == "/problems/facility-not-approved"
    suspended = await wf.facility()
    await wf.facility(facility_id=suspended, status="suspended", version=4)
    assert (await wf.hire(person["id"], suspended)).status_code == 409
    assert await wf.table_count(Employment) == 0


async def test_an_operator_hiring_into_another_operators_facility_gets_404(wf: WorkforceStack) -> None:
    mine, theirs = await wf.facility(), await wf.facility(owner_client_id="op-theirs")
    operator = wf.operator(mine)
    person = await wf.practitioner(headers=operator)
    await wf.certify(person["id"])
    response = await wf.hire(person["id"], theirs, headers=operator)
    assert response.status_code == 404
    assert theirs in response.json()["detail"] and "may see" in response.json()["detail"]
    assert (await wf.hire(person["id"], mine, headers=operator)).status_code == 201
    owner = wf.sign(
        Identity(
            client_id="op-theirs", kind=ClientKind.operator, scopes=["workforce:read", "workforce:write"]
        )
    )
    # The other operator hires the same person once it registered them by ID number (their consent).
    assert (await wf.hire(person["id"], theirs, headers=owner)).status_code == 404
    found = await wf.direct.post(
        "/v1/practitioners", json={"id_number": person["raw_id_number"], "name": "张三"}, headers=owner
    )
    assert found.status_code == 200 and found.json()["id"] == person["id"]
    assert (await wf.hire(person["id"], theirs, headers=owner)).status_code == 201
    district = wf.district("310105")  # 长宁 may not hire in 徐汇
    other = await wf.practitioner()
    await wf.certify(other["id"])
    assert (await wf.hire(other["id"], mine, headers=district)).status_code == 404


async def test_an_operator_cannot_hire_a_practitioner_it_has_never_seen(wf: WorkforceStack) -> None:
    """An id learnt elsewhere hires nobody: 404, exactly as for an id that does not exist."""
    facility = await wf.facility()
    operator = wf.operator(facility)
    elsewhere = await wf.facility(district_code="310105")
    person = await wf.employed(elsewhere)
    unseen = await wf.hire(person["id"], facility, headers=operator)
    nobody = await wf.hire("8d5e5f3e-0000-4000-8000-00000000abcd", facility, headers=operator)
    assert unseen.status_code == nobody.status_code == 404
    assert unseen.json()["title"] == nobody.json()["title"] == "Practitioner not found"
    assert await wf.table_count(Employment, Employment.facility_id == facility) == 0
    assert (await wf.direct.get(f"/v1/practitioners/{person['id']}", headers=operator)).status_code == 404
    # A banned person it has never seen is a 404 too (no ban oracle), and no attempt is recorded.
    await wf.ban(person["raw_id_number"])
    assert (await wf.hire(person["id"], facility, headers=operator)).status_code == 404
    assert await wf.table_count(HireAttempt) == 0


async def test_a_role_needing_a_certificate_the_person_lacks_is_a_422(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    none = await wf.hire(person["id"], facility, role="health_worker")
    assert none.status_code == 422 and none.json()["errors"][0]["field"] == "role"
    today = date.today()
    await wf.certify(
        person["id"],
        "health_worker",
        issued_on=(today - timedelta(days=800)).isoformat(),
        expires_on=(today - timedelta(days=1)).isoformat(),
    )
    expired = await wf.hire(person["id"], facility, role="health_worker")
    assert expired.status_code == 422
    wrong_kind = await wf.hire(person["id"], facility, role="teacher")
    assert wrong_kind.status_code == 422
    # Roles without a certificate in the configuration (cooks, guards) need none.
    assert (await wf.hire(person["id"], facility, role="other")).status_code == 201


async def test_one_person_may_work_at_two_facilities_but_not_twice_in_one_role(wf: WorkforceStack) -> None:
    first, second = await wf.facility(), await wf.facility(district_code="310105")
    person = await wf.practitioner()
    await wf.certify(person["id"])
    assert (await wf.hire(person["id"], first)).status_code == 201
    assert (await wf.hire(person["id"], second)).status_code == 201
    again = await wf.hire(person["id"], first)
    assert again.status_code == 409 and again.json()["type"] == "/problems/already-employed"


async def test_employment_ends_with_a_date_and_reason_once(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    staff = await wf.employed(facility, start_date="2026-03-01")
    path = f"/v1/employments/{staff['employment']['id']}/end"
    early = await wf.direct.post(
        path, json={"end_date": "2026-02-01", "reason": "resigned"}, headers=wf.sign()
    )
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "end_date"
    banned_reason = await wf.direct.post(
        path, json={"end_date": "2026-06-30", "reason": "ban"}, headers=wf.sign()
    )
    assert banned_reason.status_code == 422  # only a ban ends employment for a ban
    ended = await wf.direct.post(
        path, json={"end_date": "2026-06-30", "reason": "resigned", "note": "回老家"}, headers=wf.sign()
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended" and ended.json()["end_reason"] == "resigned"
    twice = await wf.direct.post(
        path, json={"end_date": "2026-07-30", "reason": "resigned"}, headers=wf.sign()
    )
    assert twice.status_code == 409
    [event] = await wf.events("cradle.workforce.employment.ended")
    assert event.data["reason"] == "resigned" and event.data["end_date"] == "2026-06-30"
    other_operator = wf.operator(await wf.facility())
    assert (
        await wf.direct.post(
            path, json={"end_date": "2026-07-30", "reason": "resigned"}, headers=other_operator
        )
    ).status_code == 404


async def test_the_facility_list_shows_who_lacks_social_insurance(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    insured = await wf.employed(facility, social_insurance_paid=True)
    uninsured = await wf.employed(facility)
    listed = await wf.direct.get(
        "/v1/employments",
        params={"facility_id": facility, "social_insurance_paid": "false"},
        headers=wf.operator(facility),
    )
    assert listed.status_code == 200, listed.text
    assert [e["practitioner_id"] for e in listed.json()["items"]] == [uninsured["id"]]
    everyone = await wf.direct.get(
        "/v1/employments", params={"facility_id": facility, "limit": 1}, headers=wf.sign()
    )
    page = everyone.json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = await wf.direct.get(
        "/v1/employments", params={"facility_id": facility, "cursor": page["next_cursor"]}, headers=wf.sign()
    )
    assert {page["items"][0]["practitioner_id"], rest.json()["items"][0]["practitioner_id"]} == {
        insured["id"],
        uninsured["id"],
    }
    assert rest.json()["next_cursor"] is None
    stranger = wf.operator(await wf.facility())
    assert (
        await wf.direct.get("/v1/employments", params={"facility_id": facility}, headers=stranger)
    ).status_code == 404


async def test_a_flagged_background_check_blocks_hires_until_resolved(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    await wf.certify(person["id"])
    base = f"/v1/practitioners/{person['id']}/background-checks"
    requested = await wf.direct.post(base, json={"reason": "hire"}, headers=wf.operator(facility))
    # The operator registered nobody and employs nobody yet: it cannot see this person.
    assert requested.status_code == 404
    requested = await wf.direct.post(base, json={"reason": "hire"}, headers=wf.sign())
    assert requested.status_code == 201 and requested.json()["status"] == "pending"
    check = requested.json()["id"]

    # Only a POLICE bureau client answers: not another bureau, not the admin (who acts for no
    # department), not a district client whose bureau field says POLICE.
    pretending = Identity(
        client_id="d-police",
        kind=ClientKind.district,
        district_code="310104",
        bureau="POLICE",
        scopes=["workforce:read", "workforce:write"],
    )
    # (It registers the person, so that it may see them: the refusal is about who it is.)
    seen = await wf.direct.post(
        "/v1/practitioners",
        json={"id_number": person["raw_id_number"], "name": "张三"},
        headers=wf.sign(pretending),
    )
    assert seen.status_code == 200
    for not_police in (wf.bureau("EDU"), wf.sign(pretending)):
        refused = await wf.direct.post(f"{base}/{check}/answer", json={"result": "clear"}, headers=not_police)
        assert refused.status_code == 403, refused.text
        assert "POLICE bureau" in refused.json()["detail"]
    refused = await wf.direct.post(f"{base}/{check}/answer", json={"result": "clear"}, headers=wf.sign(ADMIN))
    assert refused.status_code == 403, refused.text
    police = wf.bureau("POLICE", scopes=["workforce:read", "workforce:write"])
    queue = await wf.direct.get("/v1/compliance/background-checks", headers=police)
    assert [c["id"] for c in queue.json()["items"]] == [check]
    flagged = await wf.direct.post(
        f"{base}/{check}/answer", json={"result": "flagged", "note": "前科待核实"}, headers=police
    )
    assert flagged.status_code == 200 and flagged.json()["status"] == "flagged"

    blocked = await wf.hire(person["id"], facility)
    assert blocked.status_code == 409 and blocked.json()["type"] == "/problems/background-check-flagged"
    [attempt] = await wf.rows(HireAttempt)
    assert attempt.reason == "background_check" and attempt.facility_id == facility
    [event] = await wf.events("cradle.workforce.hire.blocked")
    assert event.data["reason"] == "background_check"

    resolved = await wf.direct.post(f"{base}/{check}/resolve", json={"note": "核实无前科"}, headers=police)
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert (
        await wf.direct.post(f"{base}/{check}/resolve", json={"note": "x"}, headers=police)
    ).status_code == 409
    assert (await wf.hire(person["id"], facility)).status_code == 201


async def test_an_idempotency_key_makes_a_repeated_hire_or_training_happen_once(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    await wf.certify(person["id"])
    keyed = {**wf.sign(), "Idempotency-Key": "hire-0001"}
    first = await wf.hire(person["id"], facility, headers=keyed)
    again = await wf.hire(person["id"], facility, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    other_body = await wf.hire(person["id"], facility, headers=keyed, role="other")
    assert other_body.status_code == 422 and other_body.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await wf.table_count(Employment) == 1
    [started] = await wf.events("cradle.workforce.employment.started")
    assert started.data["employment_id"] == first.json()["id"]

    path = f"/v1/practitioners/{person['id']}/trainings"
    body = {"category": "skills", "hours": 8, "date": "2026-01-05", "provider": "x"}
    for _ in range(3):
        response = await wf.direct.post(path, json=body, headers={**wf.sign(), "Idempotency-Key": "t-1"})
        assert response.status_code == 201
    totals = await wf.direct.get(f"{path}?year=2026", headers=wf.sign())
    assert totals.json()["totals"]["skills_hours"] == 8


async def test_a_refused_hire_replayed_under_its_key_is_the_same_409_recorded_once(
    wf: WorkforceStack,
) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    await wf.certify(person["id"])
    await wf.ban(person["raw_id_number"])
    keyed = {**wf.sign(), "Idempotency-Key": "hire-banned"}
    first = await wf.hire(person["id"], facility, headers=keyed)
    again = await wf.hire(person["id"], facility, headers=keyed)
    assert first.status_code == again.status_code == 409
    assert again.json() == first.json()
    assert again.headers["content-type"] == "application/problem+json"
    assert await wf.table_count(HireAttempt) == 1


async def test_every_change_to_staffing_is_announced_for_the_risk_score(wf: WorkforceStack) -> None:
    facility = await wf.facility(enrolment={"infant": 6, "toddler": 0, "preschool": 0})
    person = await wf.practitioner()
    await wf.certify(person["id"])
    hired = await wf.hire(person["id"], facility, age_class="infant")
    assert hired.status_code == 201, hired.text
    await wf.answer_check(hired.json())
    assessed = [e.data for e in await wf.events("cradle.workforce.staffing.assessed")]
    # The enrolment arrived first (6 infants, no carer: 2 short), then the hire (provisional, not yet
    # counted: still 2 short), then its background check came back clear (1 carer: 1 short).
    assert [(a["met"], a["shortfall"]) for a in assessed if a["facility_id"] == facility][-3:] == [
        (False, 2),
        (False, 2),
        (False, 1),
    ]
    infant = next(c for c in assessed[-1]["classes"] if c["age_class"] == "infant")
    assert infant == {"age_class": "infant", "children": 6, "carers": 1, "carers_required": 2}


async def test_every_contract_type_the_api_accepts_is_stored(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    person = await wf.practitioner()
    await wf.certify(person["id"])
    hired = await wf.hire(person["id"], facility, contract_type="service_agreement")
    assert hired.status_code == 201, hired.text
    assert hired.json()["contract_type"] == "service_agreement"
