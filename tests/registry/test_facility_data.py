"""Facility data: capacity against class sizes, enrolment, versioned edits, ownership, idempotency."""

from __future__ import annotations

from sqlalchemy import func, select

from services.registry.models import Facility
from tests.conftest import facility_body
from tests.registry.conftest import Registry


async def count_facilities(registry: Registry) -> int:
    async with registry.stack.registry.state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(Facility))).scalar_one()


async def test_chinese_names_and_addresses_round_trip_unchanged(registry: Registry) -> None:
    name, address = "浦东新区陆家嘴街道「小星星」托育园（普惠）", "浦东南路 1088 号 3 楼 301 室"
    created = await registry.submit(name=name, address=address, town_code="310115004", lat=31.235, lon=121.51)
    read = (await registry.client.get(f"/v1/facilities/{created['id']}", headers=registry["operator"])).json()
    assert (read["name"], read["address"]) == (name, address)
    assert read["district_code"] == "310115"


async def test_capacity_may_not_exceed_class_sizes_times_classes(registry: Registry) -> None:
    response = await registry.client.post(
        "/v1/facilities",
        json=facility_body(
            capacity={"infant": 11, "toddler": 30, "preschool": 41},
            classes={"infant": 1, "toddler": 2, "preschool": 2},
        ),
        headers=registry["operator"],
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"capacity.infant", "capacity.preschool"}
    assert await count_facilities(registry) == 0

    fits = await registry.submit(
        capacity={"infant": 10, "toddler": 30, "preschool": 40},
        classes={"infant": 1, "toddler": 2, "preschool": 2},
    )
    assert fits["classes"] == {"infant": 1, "toddler": 2, "preschool": 2}
    inferred = await registry.submit(capacity={"infant": 0, "toddler": 16, "preschool": 20})
    assert inferred["classes"] == {"infant": 0, "toddler": 2, "preschool": 1}


async def test_coordinates_outside_shanghai_and_bad_numbers_are_named(registry: Registry) -> None:
    response = await registry.client.post(
        "/v1/facilities",
        json=facility_body(lat=39.9, lon=116.4, capacity={"infant": -1, "toddler": 5000, "preschool": 0}),
        headers=registry["operator"],
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {
        "lat",
        "lon",
        "capacity.infant",
        "capacity.toddler",
    }


async def test_opening_hours_are_validated(registry: Registry) -> None:
    response = await registry.client.post(
        "/v1/facilities",
        json=facility_body(opening_hours=[{"days": [0, 8], "opens": "25:00", "closes": "07:00"}]),
        headers=registry["operator"],
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"opening_hours.0.days", "opening_hours.0.opens"} <= fields


async def test_enrolment_is_monthly_and_never_above_capacity(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}/enrolment"
    over = await registry.client.put(
        path,
        json={"month": "2026-10", "infant": 11, "toddler": 3, "preschool": 21},
        headers=registry["operator"],
    )
    assert over.status_code == 422
    assert {e["field"] for e in over.json()["errors"]} == {"infant", "preschool"}
    bad_month = await registry.client.put(
        path,
        json={"month": "2026-13", "infant": 1, "toddler": 1, "preschool": 1},
        headers=registry["operator"],
    )
    assert bad_month.status_code == 422

    for month, toddler in (("2026-10", 12), ("2026-11", 14), ("2026-11", 15)):
        response = await registry.client.put(
            path,
            json={"month": month, "infant": 8, "toddler": toddler, "preschool": 20},
            headers=registry["operator"],
        )
        assert response.status_code == 200, response.text
    current = response.json()
    assert current["enrolment"] == {"infant": 8, "toddler": 15, "preschool": 20}
    assert current["enrolment_month"] == "2026-11"
    history = (await registry.client.get(path, headers=registry["operator"])).json()["items"]
    assert [h["month"] for h in history] == ["2026-11", "2026-10"]
    events = await registry.events("cradle.registry.enrolment.updated")
    assert len(events) == 3 and events[-1]["data"]["enrolment"]["toddler"] == 15


async def test_edits_are_versioned_and_a_stale_if_match_is_412(registry: Registry) -> None:
    facility = await registry.approved()
    path = f"/v1/facilities/{facility['id']}"
    read = await registry.client.get(path, headers=registry["operator"])
    etag = read.headers["etag"]

    first = await registry.client.patch(
        path, json={"name": "天平托育园（新址）"}, headers={**registry["operator"], "If-Match": etag}
    )
    assert first.status_code == 200
    assert first.headers["etag"] != etag
    stale = await registry.client.patch(
        path, json={"operator_name": "别人"}, headers={**registry["operator"], "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.json()["current_version"] == first.json()["version"]

    versions = (await registry.client.get(f"{path}/versions", headers=registry["operator"])).json()["items"]
    assert versions[0]["facility"]["name"] == "天平托育园（新址）"
    assert versions[0]["version"] == first.json()["version"]
    assert any(v["facility"]["name"] == facility["name"] for v in versions[1:])
    [updated] = await registry.events("cradle.registry.facility.updated")
    assert updated["data"]["name"] == "天平托育园（新址）"


async def test_an_empty_or_unknown_edit_is_refused(registry: Registry) -> None:
    facility = await registry.submit()
    path = f"/v1/facilities/{facility['id']}"
    assert (await registry.client.patch(path, json={}, headers=registry["operator"])).status_code == 422
    unknown = await registry.client.patch(path, json={"status": "approved"}, headers=registry["operator"])
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "status"
    # Null does not clear what a facility cannot be without: each such field is named, nothing changes.
    nulls = await registry.client.patch(
        path,
        json={"operator_name": None, "lat": None, "address": "天平路 1 号"},
        headers=registry["operator"],
    )
    assert nulls.status_code == 422, nulls.text
    assert {error["field"] for error in nulls.json()["errors"]} == {"operator_name", "lat"}
    unchanged = (await registry.client.get(path, headers=registry["operator"])).json()
    assert unchanged["address"] == facility["address"] and unchanged["version"] == facility["version"]


async def test_an_operator_neither_reads_nor_edits_another_operators_facility(registry: Registry) -> None:
    facility = await registry.submit()
    path = f"/v1/facilities/{facility['id']}"
    other = registry["other_operator"]
    assert (await registry.client.get(path, headers=other)).status_code == 404
    assert (await registry.client.patch(path, json={"name": "抢注"}, headers=other)).status_code == 404
    enrolment = {"month": "2026-11", "infant": 0, "toddler": 0, "preschool": 0}
    assert (await registry.client.put(f"{path}/enrolment", json=enrolment, headers=other)).status_code == 404
    listed = (await registry.client.get("/v1/facilities", headers=other)).json()
    assert listed["items"] == []
    # The district sees the facilities of its district, not others.
    assert (await registry.client.get(path, headers=registry["district"])).status_code == 200
    assert (await registry.client.get(path, headers=registry["other_district"])).status_code == 404


async def test_the_same_idempotency_key_and_body_create_one_facility(registry: Registry) -> None:
    headers = {**registry["operator"], "Idempotency-Key": "app-2026-11-28-001"}
    body = facility_body()
    first = await registry.client.post("/v1/facilities", json=body, headers=headers)
    again = await registry.client.post("/v1/facilities", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_facilities(registry) == 1
    assert len(await registry.events("cradle.registry.facility.submitted")) == 1

    different = await registry.client.post("/v1/facilities", json=facility_body(name="别的"), headers=headers)
    assert different.status_code == 422
    assert different.json()["errors"][0]["field"] == "Idempotency-Key"
    # Keys belong to a client: another operator's same key is its own.
    other = await registry.client.post(
        "/v1/facilities",
        json=body,
        headers={**registry["other_operator"], "Idempotency-Key": "app-2026-11-28-001"},
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert await count_facilities(registry) == 2


async def test_text_the_database_cannot_store_is_a_422_not_a_500(registry: Registry) -> None:
    response = await registry.client.post(
        "/v1/facilities", json=facility_body(name="托育\u0000园"), headers=registry["operator"]
    )
    # Refused alike on both databases (shared/text.py), naming the field: the caller's input, not a
    # server error, and not stored on SQLite only to be refused on PostgreSQL.
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "name"
    weird_id = await registry.client.get("/v1/facilities/%00abc", headers=registry["EDU"])
    assert weird_id.status_code in (400, 404, 422)
