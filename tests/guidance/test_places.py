"""Places: guidance stations in the 街镇 and the other kinds, who may open them, lists and ETags."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.guidance.conftest import HUANGPU, HUANGPU_TOWN, XUHUI, XUHUI_TOWN, Guide

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_district_opens_a_station_in_its_town_and_anyone_reads_it(guide: Guide) -> None:
    station = await guide.station(name="天平街道家庭科学育儿指导站")
    assert station["kind"] == "guidance_station"
    assert station["district_code"] == XUHUI and station["name"] == "天平街道家庭科学育儿指导站"

    read = await guide.direct.get(f"/v1/stations/{station['id']}", headers=guide.parent())
    assert read.status_code == 200 and read.headers["etag"] == '"1"'
    assert read.json() == station
    listed = await guide.direct.get("/v1/stations", params={"town_code": XUHUI_TOWN}, headers=guide.bureau())
    assert station["id"] in {s["id"] for s in listed.json()["items"]}

    opened = [e for e in await guide.events("cradle.guidance.place.opened") if e.subject == station["id"]]
    assert len(opened) == 1 and opened[0].data["kind"] == "guidance_station"


async def test_a_district_cannot_open_a_station_elsewhere_and_parents_cannot_at_all(guide: Guide) -> None:
    body = {"name": "外滩街道指导站", "town_code": HUANGPU_TOWN, "opened_on": "2024-01-01"}
    assert (
        await guide.direct.post("/v1/stations", json=body, headers=guide.district(XUHUI))
    ).status_code == 403
    assert (await guide.direct.post("/v1/stations", json=body, headers=guide.parent())).status_code == 403
    read_only = guide.district(HUANGPU, scopes=["guidance:read"])
    assert (await guide.direct.post("/v1/stations", json=body, headers=read_only)).status_code == 403
    assert (
        await guide.direct.post("/v1/stations", json=body, headers=guide.district(HUANGPU))
    ).status_code == 201


async def test_every_wrong_field_of_a_place_is_named(guide: Guide) -> None:
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    response = await guide.direct.post(
        "/v1/places",
        json={"kind": "child_friendly_site", "name": "", "opened_on": tomorrow, "extra": 1},
        headers=guide.bureau(),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in response.json()["errors"]} == {"name", "town_code", "opened_on", "extra"}

    unknown_town = await guide.direct.post(
        "/v1/stations",
        json={"name": "站", "town_code": "310104999", "opened_on": "2024-01-01"},
        headers=guide.bureau(),
    )
    assert unknown_town.status_code == 422 and unknown_town.json()["errors"][0]["field"] == "town_code"
    base = await guide.direct.post(
        "/v1/places",
        json={"kind": "development_base", "name": "基地", "opened_on": "2024-01-01"},
        headers=guide.bureau(),
    )
    assert base.status_code == 422 and [e["field"] for e in base.json()["errors"]] == ["district_code"]
    mismatch = await guide.direct.post(
        "/v1/places",
        json={
            "kind": "development_base",
            "name": "基地",
            "opened_on": "2024-01-01",
            "town_code": XUHUI_TOWN,
            "district_code": HUANGPU,
        },
        headers=guide.bureau(),
    )
    assert mismatch.status_code == 422 and mismatch.json()["errors"][0]["field"] == "district_code"


async def test_other_kinds_of_place_are_listed_by_kind_district_and_year(guide: Guide) -> None:
    made = {}
    for kind, extra in (
        ("development_base", {"district_code": HUANGPU}),
        ("child_friendly_site", {"town_code": HUANGPU_TOWN}),
        ("observation_room", {"town_code": HUANGPU_TOWN}),
        ("parent_child_room", {"town_code": HUANGPU_TOWN}),
    ):
        response = await guide.direct.post(
            "/v1/places",
            json={"kind": kind, "name": f"黄浦区{kind}", "opened_on": "2023-06-01", **extra},
            headers=guide.district(HUANGPU),
        )
        assert response.status_code == 201, response.text
        made[kind] = response.json()
    assert made["development_base"]["town_code"] is None
    sites = await guide.direct.get(
        "/v1/places",
        params={"kind": "child_friendly_site", "district_code": HUANGPU, "opened_in": 2023},
        headers=guide.bureau(),
    )
    assert made["child_friendly_site"]["id"] in {p["id"] for p in sites.json()["items"]}
    assert all(p["kind"] == "child_friendly_site" for p in sites.json()["items"])
    none_in_2022 = await guide.direct.get(
        "/v1/places", params={"district_code": HUANGPU, "opened_in": 2022}, headers=guide.bureau()
    )
    assert none_in_2022.json()["items"] == []
    # A base is not a station.
    assert (
        await guide.direct.get(f"/v1/stations/{made['development_base']['id']}", headers=guide.bureau())
    ).status_code == 404


async def test_lists_page_with_a_cursor_and_reject_a_forged_one(guide: Guide) -> None:
    for n in range(3):
        await guide.station(town_code="310104004", name=f"湖南路街道指导站{n}")
    seen, cursor = [], None
    for _ in range(5):
        params = {"town_code": "310104004", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await guide.direct.get("/v1/stations", params=params, headers=guide.bureau())).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3
    forged = await guide.direct.get("/v1/stations", params={"cursor": "!!!"}, headers=guide.bureau())
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "cursor"


async def test_a_repeated_post_with_the_same_idempotency_key_opens_one_station(guide: Guide) -> None:
    headers = {**guide.district(XUHUI, client_id="district-idem"), "Idempotency-Key": "station-42"}
    body = {"name": "徐家汇街道指导站", "town_code": "310104012", "opened_on": "2024-01-01"}
    first = await guide.direct.post("/v1/stations", json=body, headers=headers)
    again = await guide.direct.post("/v1/stations", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = await guide.direct.post("/v1/stations", json={**body, "name": "别的"}, headers=headers)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
