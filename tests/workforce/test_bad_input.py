"""No input a caller can send makes the workforce answer 500: every hostile body is a 4xx problem."""

from __future__ import annotations

from typing import Any

from tests.workforce.conftest import WorkforceStack, new_id_number

HOSTILE: list[Any] = [
    None,
    [],
    "text",
    12,
    {"unexpected": True},
    {"name": "\x00", "id_number": "\x00" * 18},
    {"name": "a" * 100_000},
    {"hours": 1e308, "level": 2**70, "date": "0000-00-00", "start_date": "9999-99-99"},
    {"role": {"nested": "object"}, "category": ["skills"]},
]


async def test_hostile_bodies_are_4xx_problems_never_500(wf: WorkforceStack) -> None:
    facility = await wf.facility()
    staff = await wf.employed(facility)
    person_id, employment_id = staff["id"], staff["employment"]["id"]
    ban = (await wf.ban(new_id_number())).json()
    posts = [
        "/v1/practitioners",
        f"/v1/practitioners/{person_id}/certificates",
        f"/v1/practitioners/{person_id}/trainings",
        f"/v1/practitioners/{person_id}/grades",
        f"/v1/practitioners/{person_id}/background-checks",
        f"/v1/practitioners/{person_id}/background-checks/nope/answer",
        "/v1/employments",
        f"/v1/employments/{employment_id}/end",
        "/v1/bans",
        f"/v1/bans/{ban['id']}/rescind",
        "/v1/ban-checks",
    ]
    for path in posts:
        for body in HOSTILE:
            response = await wf.direct.post(path, json=body, headers=wf.sign())
            assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text[:300])
            assert response.headers["content-type"] == "application/problem+json"
        broken = await wf.direct.post(
            path, content=b'{"name": "\xff', headers={**wf.sign(), "content-type": "application/json"}
        )
        assert broken.status_code in (400, 422), (path, broken.text[:300])

    nul_name = await wf.direct.post(
        "/v1/practitioners", json={"id_number": new_id_number(), "name": "王\x00五"}, headers=wf.sign()
    )
    assert nul_name.status_code == 422 and nul_name.json()["errors"][0]["field"] == "name"
    gets = [
        "/v1/practitioners/%00",
        f"/v1/practitioners/{'x' * 5000}",
        "/v1/bans/'; DROP TABLE ban;--",
        "/v1/employments?facility_id=%00",
        "/v1/employments?facility_id=" + facility + "&cursor=%%%",
        "/v1/employments?facility_id=" + facility + "&cursor=WzFd&limit=100000",
        "/v1/compliance/training?year=99999999999999999999",
        "/v1/compliance/staffing?cursor=bnVsbA",
        "/v1/facilities/%00/staffing",
    ]
    for path in gets:
        response = await wf.direct.get(path, headers=wf.sign())
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
