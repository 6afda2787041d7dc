"""Practitioners: ID numbers validated, stored encrypted, shown masked, unmasked reads audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.workforce.models import PiiAccess, Practitioner
from shared.pii import national_id_check_char
from tests.workforce.conftest import WorkforceStack, new_id_number


def with_check(first17: str) -> str:
    return first17 + national_id_check_char(first17)


@pytest.mark.parametrize(
    ("id_number", "reason"),
    [
        ("110105194912310021", "check character"),  # the specimen with a wrong check digit
        ("11010519491231002x", "upper-case X, not x"),
        (with_check("31010419900231123"), "not a real birth date"),
        ("3101041990030712", "18 characters, not 16"),
        ("3101041990030712345", "18 characters, not 19"),
        (with_check("00010419900307123"), "region code"),
    ],
)
async def test_a_bad_id_number_is_a_422_that_says_why(
    wf: WorkforceStack, id_number: str, reason: str
) -> None:
    response = await wf.direct.post(
        "/v1/practitioners", json={"id_number": id_number, "name": "李四"}, headers=wf.sign()
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["id_number"]
    assert reason in problem["errors"][0]["message"]
    assert id_number not in response.text
    assert await wf.table_count(Practitioner) == 0


async def test_a_practitioner_is_shown_masked_and_stored_encrypted(wf: WorkforceStack) -> None:
    person = await wf.practitioner(headers=wf.operator(scopes=["workforce:read", "workforce:write"]))
    raw = person["raw_id_number"]
    assert person["id_number"] == raw[:3] + "*" * 11 + raw[-4:]
    assert person["phone"] == "138****5678"
    assert person["pii"] == "masked"

    [row] = await wf.rows(Practitioner)
    assert raw not in row.id_number_encrypted and raw not in row.id_hash
    assert row.id_number_key_id == "k2026a"
    assert "13812345678" not in (row.phone_encrypted or "")


async def test_an_unmasked_read_needs_the_pii_scope_and_a_purpose_and_is_audited(wf: WorkforceStack) -> None:
    person = await wf.practitioner()
    path = f"/v1/practitioners/{person['id']}"

    no_pii = wf.bureau(scopes=["workforce:read"])
    masked = await wf.direct.get(path, headers={**no_pii, "X-Purpose": "curious"})
    assert masked.status_code == 200 and masked.json()["pii"] == "masked"

    with_pii = wf.bureau("POLICE", scopes=["workforce:read", "workforce:pii"])
    no_purpose = await wf.direct.get(path, headers=with_pii)
    assert no_purpose.json()["pii"] == "masked"
    assert await wf.table_count(PiiAccess) == 0

    purpose = "案件 (2026) 沪公刑 123 号".encode()  # a purpose in Chinese arrives as UTF-8 bytes
    unmasked = await wf.direct.get(path, headers={**with_pii, "X-Purpose": purpose})  # type: ignore[dict-item]
    assert unmasked.status_code == 200
    assert unmasked.json()["id_number"] == person["raw_id_number"]
    assert unmasked.json()["phone"] == "13812345678"
    assert unmasked.json()["pii"] == "unmasked"
    assert unmasked.headers["etag"] == '"1"'

    [audit] = await wf.rows(PiiAccess)
    assert audit.record_id == person["id"] and audit.record_type == "practitioner"
    assert audit.client_id.startswith("police-")
    assert audit.purpose == "案件 (2026) 沪公刑 123 号"
    assert audit.accessed_at is not None


async def test_registering_a_person_already_on_record_finds_them_and_reveals_nothing_else(
    wf: WorkforceStack,
) -> None:
    """The consent path: an operator that holds the person's ID number registers them and may then
    hire them; it sees the record as an operator sees any record (masked), never the facilities
    that employ or employed the person, and nothing in the record changes."""
    first_employer, second_employer = await wf.facility(), await wf.facility(district_code="310105")
    person = await wf.employed(first_employer)
    newcomer_facility = await wf.facility()
    newcomer = wf.operator(newcomer_facility)
    assert (await wf.direct.get(f"/v1/practitioners/{person['id']}", headers=newcomer)).status_code == 404
    again = await wf.direct.post(
        "/v1/practitioners",
        json={"id_number": person["raw_id_number"], "name": "张三丰", "phone": "13900000000"},
        headers=newcomer,
    )
    assert again.status_code == 200, again.text
    found = again.json()
    assert found["id"] == person["id"] and again.headers["location"] == f"/v1/practitioners/{person['id']}"
    assert found["pii"] == "masked" and found["id_number"] == person["id_number"]
    assert found["name"] == "张三" and found["phone"] == person["phone"]  # the record is not rewritten
    assert person["raw_id_number"] not in again.text
    assert first_employer not in again.text and second_employer not in again.text
    assert await wf.table_count(Practitioner) == 1
    assert len(await wf.events("cradle.workforce.practitioner.registered")) == 1

    # Visible now: readable, and hireable; its other employments stay out of reach.
    assert (await wf.direct.get(f"/v1/practitioners/{person['id']}", headers=newcomer)).status_code == 200
    await wf.certify(person["id"])
    assert (await wf.hire(person["id"], newcomer_facility, headers=newcomer)).status_code == 201
    other_job = person["employment"]["id"]
    assert (await wf.direct.get(f"/v1/employments/{other_job}", headers=newcomer)).status_code == 404
    listed = await wf.direct.get("/v1/employments", params={"facility_id": first_employer}, headers=newcomer)
    assert listed.status_code == 404
    # Registering twice changes nothing more.
    twice = await wf.direct.post(
        "/v1/practitioners", json={"id_number": person["raw_id_number"], "name": "张三"}, headers=newcomer
    )
    assert twice.status_code == 200 and twice.json()["id"] == person["id"]


async def test_foreign_staff_need_a_work_permit(wf: WorkforceStack) -> None:
    body = {"id_number": new_id_number(region="910000"), "name": "Anna Smith", "nationality": "GB"}
    refused = await wf.direct.post("/v1/practitioners", json=body, headers=wf.sign())
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["work_permit_no"]
    accepted = await wf.direct.post(
        "/v1/practitioners", json={**body, "work_permit_no": "WP-2026-0001"}, headers=wf.sign()
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["work_permit_no"] == "WP-2026-0001"


async def test_an_operator_sees_only_the_practitioners_it_registered_or_employs(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    mine = wf.operator(facility)
    other = wf.operator(await wf.facility())
    person = await wf.practitioner(headers=mine)
    assert (await wf.direct.get(f"/v1/practitioners/{person['id']}", headers=other)).status_code == 404
    stranger = await wf.practitioner()
    assert (await wf.direct.get(f"/v1/practitioners/{stranger['id']}", headers=mine)).status_code == 404
    await wf.certify(stranger["id"])
    assert (await wf.hire(stranger["id"], facility, headers=mine)).status_code == 404
    registered = await wf.direct.post(
        "/v1/practitioners", json={"id_number": stranger["raw_id_number"], "name": "张三"}, headers=mine
    )
    assert registered.status_code == 200
    assert (await wf.hire(stranger["id"], facility, headers=mine)).status_code == 201
    assert (await wf.direct.get(f"/v1/practitioners/{stranger['id']}", headers=mine)).status_code == 200


async def test_a_grade_is_kept_with_its_history(wf: WorkforceStack) -> None:
    person = await wf.practitioner()
    path = f"/v1/practitioners/{person['id']}/grades"
    for level, reason in ((1, "入职"), (3, "2026 年度考核")):
        response = await wf.direct.post(path, json={"level": level, "reason": reason}, headers=wf.sign())
        assert response.status_code == 201, response.text
    assert (
        await wf.direct.post(path, json={"level": 9, "reason": "x"}, headers=wf.sign())
    ).status_code == 422
    history = (await wf.direct.get(path, headers=wf.sign())).json()["items"]
    assert [(g["level"], g["reason"]) for g in history] == [(1, "入职"), (3, "2026 年度考核")]
    current = (await wf.direct.get(f"/v1/practitioners/{person['id']}", headers=wf.sign())).json()
    assert current["grade"] == 3 and current["version"] == 3


async def test_certificates_have_types_numbers_and_validity(wf: WorkforceStack) -> None:
    person = await wf.practitioner(healthy=False)
    path = f"/v1/practitioners/{person['id']}/certificates"
    today = date.today()
    bad = {
        "type": "astronaut",
        "number": "",
        "issuer": "x",
        "issued_on": today.isoformat(),
        "expires_on": today.isoformat(),
    }
    refused = await wf.direct.post(path, json=bad, headers=wf.sign())
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"type", "number"}
    backwards = {
        **bad,
        "type": "teacher",
        "number": "T-1",
        "expires_on": (today - timedelta(days=1)).isoformat(),
    }
    assert (await wf.direct.post(path, json=backwards, headers=wf.sign())).json()["errors"][0][
        "field"
    ] == "expires_on"

    added = await wf.certify(person["id"], "teacher", number="T-1")
    assert added["valid_today"] is True and added["type"] == "teacher"
    again = await wf.direct.post(
        path,
        json={
            **bad,
            "type": "teacher",
            "number": "T-1",
            "expires_on": (today + timedelta(days=5)).isoformat(),
        },
        headers=wf.sign(),
    )
    assert again.status_code == 409
    listed = (await wf.direct.get(path, headers=wf.sign())).json()["items"]
    assert [c["number"] for c in listed] == ["T-1"]
    [event] = await wf.events("cradle.workforce.certificate.added")
    assert event.data["practitioner_id"] == person["id"]
