"""Training hours per year (≥ 72 h skills, ≥ 40 h ethics) and staff-to-child ratios."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.workforce.conftest import WorkforceStack, start_workforce_stack


async def train(wf: WorkforceStack, practitioner_id: str, category: str, hours: float, on: str) -> None:
    response = await wf.direct.post(
        f"/v1/practitioners/{practitioner_id}/trainings",
        json={"category": category, "hours": hours, "date": on, "provider": "上海市托育服务指导中心"},
        headers=wf.sign(),
    )
    assert response.status_code == 201, response.text


async def test_training_compliance_per_person_per_facility_and_citywide(wf: WorkforceStack) -> None:
    xuhui, changning = await wf.facility(), await wf.facility(district_code="310105")
    meets = await wf.employed(xuhui, start_date="2025-01-01")
    short = await wf.employed(xuhui, start_date="2025-06-01")
    elsewhere = await wf.employed(changning, start_date="2024-02-01")
    await wf.employed(xuhui, start_date="2026-01-05")  # not employed in 2025: not counted
    for _ in range(9):
        await train(wf, meets["id"], "skills", 8, "2025-05-10")
    for _ in range(5):
        await train(wf, meets["id"], "ethics", 8, "2025-09-01")
    await train(wf, short["id"], "skills", 72, "2025-03-01")
    await train(wf, short["id"], "ethics", 39.5, "2025-03-02")
    await train(wf, short["id"], "ethics", 10, "2024-12-31")  # last year's hours do not count
    await train(wf, elsewhere["id"], "other", 100, "2025-01-01")

    person = await wf.direct.get(f"/v1/practitioners/{meets['id']}/trainings?year=2025", headers=wf.sign())
    assert person.json()["totals"] == {
        "practitioner_id": meets["id"],
        "year": 2025,
        "skills_hours": 72.0,
        "ethics_hours": 40.0,
        "other_hours": 0.0,
        "meets": True,
    }
    assert len(person.json()["items"]) == 14

    facility = await wf.direct.get(
        "/v1/compliance/training", params={"year": 2025, "facility_id": xuhui}, headers=wf.operator(xuhui)
    )
    assert facility.status_code == 200, facility.text
    body = facility.json()
    assert (body["practitioners"], body["meeting"]) == (2, 1)
    assert {t["practitioner_id"]: t["meets"] for t in body["items"]} == {
        meets["id"]: True,
        short["id"]: False,
    }
    assert (body["required_skills_hours"], body["required_ethics_hours"]) == (72, 40)

    city = await wf.direct.get(
        "/v1/compliance/training", params={"year": 2025, "limit": 2}, headers=wf.sign()
    )
    assert (city.json()["practitioners"], city.json()["meeting"]) == (3, 1)
    assert len(city.json()["items"]) == 2 and city.json()["next_cursor"]
    rest = await wf.direct.get(
        "/v1/compliance/training",
        params={"year": 2025, "limit": 2, "cursor": city.json()["next_cursor"]},
        headers=wf.sign(),
    )
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None
    district = await wf.direct.get(
        "/v1/compliance/training", params={"year": 2025}, headers=wf.district("310105")
    )
    assert [t["practitioner_id"] for t in district.json()["items"]] == [elsewhere["id"]]
    other = await wf.direct.get(
        "/v1/compliance/training", params={"year": 2025, "facility_id": xuhui}, headers=wf.operator(changning)
    )
    assert other.status_code == 404


async def test_bad_training_input_is_refused(wf: WorkforceStack) -> None:
    person = await wf.practitioner()
    path = f"/v1/practitioners/{person['id']}/trainings"
    bad = await wf.direct.post(
        path, json={"category": "yoga", "hours": 0, "date": "2025-13-01", "provider": ""}, headers=wf.sign()
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"category", "hours", "date", "provider"}
    future = (date.today() + timedelta(days=3)).isoformat()
    ahead = await wf.direct.post(
        path, json={"category": "skills", "hours": 2, "date": future, "provider": "x"}, headers=wf.sign()
    )
    assert ahead.status_code == 422 and ahead.json()["errors"][0]["field"] == "date"
    no_year = await wf.direct.get("/v1/compliance/training", headers=wf.sign())
    assert no_year.status_code == 422 and no_year.json()["errors"][0]["field"] == "year"


async def test_staffing_ratios_per_age_class_from_enrolment_and_caring_staff(wf: WorkforceStack) -> None:
    facility = await wf.facility(enrolment={"infant": 7, "toddler": 10, "preschool": 14})
    for age_class, count in (("infant", 2), ("toddler", 2), ("preschool", 2)):
        for _ in range(count):
            await wf.employed(facility, age_class=age_class)
    await wf.employed(facility, role="health_worker", age_class="infant")  # not a carer
    await wf.employed(facility)  # a carer without an age class

    staffing = await wf.direct.get(f"/v1/facilities/{facility}/staffing", headers=wf.operator(facility))
    assert staffing.status_code == 200, staffing.text
    classes = {c["age_class"]: c for c in staffing.json()["classes"]}
    assert classes["infant"] == {
        "age_class": "infant",
        "children": 7,
        "carers": 2,
        "ratio": "1:3",
        "carers_required": 3,
        "met": False,
    }
    assert (classes["toddler"]["carers_required"], classes["toddler"]["met"]) == (2, True)
    assert (classes["preschool"]["carers_required"], classes["preschool"]["met"]) == (2, True)
    assert staffing.json()["unassigned_carers"] == 1 and staffing.json()["met"] is False

    good = await wf.facility(enrolment={"infant": 0, "toddler": 5, "preschool": 0})
    await wf.employed(good, age_class="toddler")
    out = await wf.direct.get("/v1/compliance/staffing", headers=wf.sign())
    assert [f["facility_id"] for f in out.json()["items"]] == [facility]
    assert (
        await wf.direct.get(f"/v1/facilities/{facility}/staffing", headers=wf.operator(good))
    ).status_code == 404

    # Enrolment falls: the registry's next report puts the facility back in ratio.
    await wf.facility(
        facility_id=facility,
        version=9,
        event="cradle.registry.enrolment.updated",
        enrolment={"infant": 6, "toddler": 10, "preschool": 14},
    )
    assert (await wf.direct.get("/v1/compliance/staffing", headers=wf.sign())).json()["items"] == []


async def test_ratios_are_configuration(
    databases: Any, shared_nats_url: str, namespace: str, keys: dict[str, Any]
) -> None:
    async with start_workforce_stack(
        databases=databases,
        nats_url=shared_nats_url,
        namespace=namespace,
        keys=keys,
        ratios={"infant": 2, "toddler": 5, "preschool": 7},
    ) as wf:
        facility = await wf.facility(enrolment={"infant": 4, "toddler": 0, "preschool": 0})
        await wf.employed(facility, age_class="infant")
        staffing = (await wf.direct.get(f"/v1/facilities/{facility}/staffing", headers=wf.sign())).json()
        infant = staffing["classes"][0]
        assert (infant["ratio"], infant["carers_required"], infant["met"]) == ("1:2", 2, False)


async def test_certification_compliance_counts_valid_certificates_for_the_role(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    certified = await wf.practitioner()
    await wf.certify(certified["id"])
    assert (await wf.hire(certified["id"], facility)).status_code == 201
    lapsing = await wf.practitioner()
    await wf.certify(lapsing["id"], expires_on=(date.today() + timedelta(days=10)).isoformat())
    assert (await wf.hire(lapsing["id"], facility)).status_code == 201
    today = (await wf.direct.get("/v1/compliance/certification", headers=wf.bureau())).json()
    assert (today["employments"], today["certified"], today["rate"]) == (2, 2, 1.0)
    assert today["districts"]["310104"] == {"employments": 2, "certified": 2}
    next_month = (date.today() + timedelta(days=30)).isoformat()
    later = (await wf.direct.get(f"/v1/compliance/certification?on={next_month}", headers=wf.bureau())).json()
    assert (later["employments"], later["certified"], later["rate"]) == (2, 1, 0.5)
