"""Licensed facts change only by review: a PATCH of a licensed facility's capacity, address,
coordinates, 街镇 or inclusive flag is a change request the licensing departments decide."""

from __future__ import annotations

from typing import Any

from tests.registry.conftest import REQUIRED, Registry


async def open_by_patch(registry: Registry, facility_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await registry.client.patch(
        f"/v1/facilities/{facility_id}", json=body, headers=registry["operator"]
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"].endswith(f"/change-requests/{response.json()['id']}")
    return response.json()


async def review(
    registry: Registry, facility_id: str, request_id: str, department: str, decision: str = "approve"
) -> Any:
    return await registry.client.post(
        f"/v1/facilities/{facility_id}/change-requests/{request_id}/reviews",
        json={
            "department": department,
            "decision": decision,
            "note": "" if decision == "approve" else "不符合",
        },
        headers=registry[department],
    )


async def coverage_points(registry: Registry, town_code: str) -> int:
    city = (await registry.client.get("/v1/coverage", headers=registry["EDU"])).json()
    return next(
        t["inclusive_points"] for d in city["districts"] for t in d["town_coverage"] if t["code"] == town_code
    )


async def test_a_licensed_capacity_change_waits_for_every_department(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}"
    request = await open_by_patch(
        registry,
        facility["id"],
        {
            "name": "天平托育园",
            "capacity": {"infant": 10, "toddler": 30, "preschool": 20},
            "classes": {"infant": 1, "toddler": 2, "preschool": 1},
        },
    )
    assert request["status"] == "pending" and request["kind"] == "facts"
    assert request["changes"] == {
        "capacity": {"infant": 10, "toddler": 30, "preschool": 20},
        "classes": {"infant": 1, "toddler": 2, "preschool": 1},
    }
    assert request["awaiting"] == list(REQUIRED)
    # The name applied at once; the capacity stays the licensed one, on the public page too.
    current = (await registry.client.get(path, headers=registry["operator"])).json()
    assert current["name"] == "天平托育园" and current["capacity"]["toddler"] == 15
    public = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert public["capacity"]["toddler"] == 15

    for department in REQUIRED[:-1]:
        response = await review(registry, facility["id"], request["id"], department)
        assert response.status_code == 200, response.text
    assert (await registry.client.get(path, headers=registry["operator"])).json()["capacity"]["toddler"] == 15
    # HEALTH approving again keeps its first review beside the second.
    assert (await review(registry, facility["id"], request["id"], "HEALTH")).status_code == 200
    done = await review(registry, facility["id"], request["id"], REQUIRED[-1])
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved" and done.json()["awaiting"] == []
    assert [r["department"] for r in done.json()["reviews"]] == [*REQUIRED[:-1], "HEALTH", REQUIRED[-1]]

    current = (await registry.client.get(path, headers=registry["operator"])).json()
    assert current["capacity"]["toddler"] == 30
    public = (await registry.client.get(f"/v1/public/facilities/{facility['id']}")).json()
    assert public["capacity"]["toddler"] == 30
    again = await review(registry, facility["id"], request["id"], "EDU")
    assert again.status_code == 409
    [opened] = await registry.events("cradle.registry.change_request.opened")
    assert opened["data"]["change_request"]["fields"] == ["capacity", "classes"]
    [decided] = await registry.events("cradle.registry.change_request.decided")
    assert decided["data"]["change_request"]["status"] == "approved"
    assert decided["data"]["capacity"]["toddler"] == 30
    updated = await registry.events("cradle.registry.facility.updated")
    assert updated[-1]["data"]["capacity"]["toddler"] == 30


async def test_a_rejection_closes_the_request_and_nothing_changes(registry: Registry) -> None:
    facility = await registry.approved()
    town = facility["town_code"]
    points = await coverage_points(registry, town)
    request = await open_by_patch(registry, facility["id"], {"inclusive": False, "address": "天平路 300 号"})
    # While pending, coverage still counts the licensed facts.
    assert await coverage_points(registry, town) == points
    rejected = await review(registry, facility["id"], request["id"], "FIRE", "reject")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    current = (
        await registry.client.get(f"/v1/facilities/{facility['id']}", headers=registry["operator"])
    ).json()
    assert current["inclusive"] is True and current["address"] == facility["address"]
    listed = await registry.client.get(
        f"/v1/facilities/{facility['id']}/change-requests",
        params={"status": "rejected"},
        headers=registry["district"],
    )
    assert [r["id"] for r in listed.json()["items"]] == [request["id"]]


async def test_who_may_ask_see_and_review(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/change-requests"
    body = {"address": "天平路 500 号", "reason": "迁址"}
    assert (
        await registry.client.post(path, json=body, headers=registry["other_operator"])
    ).status_code == 404
    opened = await registry.client.post(path, json=body, headers=registry["operator"])
    assert opened.status_code == 202, opened.text
    request_id = opened.json()["id"]
    assert (await registry.client.get(path, headers=registry["other_district"])).status_code == 404
    assert (await registry.client.get(path, headers=registry["other_operator"])).status_code == 404
    assert len((await registry.client.get(path, headers=registry["district"])).json()["items"]) == 1
    # Only a department the request names, as itself.
    assert (await review(registry, facility["id"], request_id, "POLICE")).status_code == 403
    as_other = await registry.client.post(
        f"{path}/{request_id}/reviews",
        json={"department": "EDU", "decision": "approve"},
        headers=registry["FIRE"],
    )
    assert as_other.status_code == 403
    district = await registry.client.post(
        f"{path}/{request_id}/reviews",
        json={"department": "EDU", "decision": "approve"},
        headers=registry["district"],
    )
    assert district.status_code == 403


async def test_an_application_is_edited_directly_and_has_no_change_request(registry: Registry) -> None:
    facility = await registry.submit()
    edited = await registry.client.patch(
        f"/v1/facilities/{facility['id']}",
        json={"address": "天平路 102 号", "capacity": {"infant": 10, "toddler": 15, "preschool": 10}},
        headers=registry["operator"],
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["address"] == "天平路 102 号" and edited.json()["capacity"]["preschool"] == 10
    refused = await registry.client.post(
        f"/v1/facilities/{facility['id']}/change-requests",
        json={"address": "x 路 1 号"},
        headers=registry["operator"],
    )
    assert refused.status_code == 409


async def test_a_request_is_checked_like_an_edit(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/change-requests"
    too_many = {
        "capacity": {"infant": 30, "toddler": 15, "preschool": 20},
        "classes": {"infant": 1, "toddler": 1, "preschool": 1},
    }
    response = await registry.client.post(path, json=too_many, headers=registry["operator"])
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "capacity.infant"
    nowhere = await registry.client.post(path, json={"town_code": "999999999"}, headers=registry["operator"])
    assert nowhere.status_code == 422 and nowhere.json()["errors"][0]["field"] == "town_code"
    empty = await registry.client.post(path, json={"reason": "无"}, headers=registry["operator"])
    assert empty.status_code == 422


async def test_an_application_review_repeated_keeps_the_earlier_one(registry: Registry) -> None:
    facility = await registry.submit()
    assert (await registry.review(facility["id"], "HEALTH", "approve")).status_code == 200
    assert (await registry.review(facility["id"], "HEALTH", "approve", "复核通过")).status_code == 200
    application = (
        await registry.client.get(f"/v1/facilities/{facility['id']}/application", headers=registry["EDU"])
    ).json()
    health = [r for r in application["reviews"] if r["department"] == "HEALTH"]
    assert [r["note"] for r in health] == ["", "复核通过"]
    assert "HEALTH" not in application["awaiting"]
    for department in ("EDU", "FIRE", "SAMR"):
        assert (await registry.review(facility["id"], department)).status_code == 200
    read = await registry.client.get(f"/v1/facilities/{facility['id']}", headers=registry["EDU"])
    assert read.json()["status"] == "approved"
