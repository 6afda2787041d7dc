"""Search: filters, `near` in distance order, cursor pages, and the public view."""

from __future__ import annotations

from typing import Any

from shared.pagination import encode_cursor
from tests.registry.conftest import Registry

# 徐汇 天平路街道 and points at known distances east of it (1° of longitude ≈ 95.2 km at 31.2°N).
CENTRE = (31.2050, 121.4400)


def east_of_centre(metres: float) -> dict[str, float]:
    return {"lat": CENTRE[0], "lon": CENTRE[1] + metres / 95_200}


async def search(registry: Registry, who: str, **params: Any) -> dict[str, Any]:
    response = await registry.client.get("/v1/facilities", params=params, headers=registry[who])
    assert response.status_code == 200, response.text
    return response.json()


async def test_near_returns_facilities_within_the_radius_nearest_first(registry: Registry) -> None:
    far = await registry.approved(name="远", **east_of_centre(1500))
    near = await registry.approved(name="近", **east_of_centre(200))
    middle = await registry.approved(name="中", **east_of_centre(700))
    page = await search(registry, "EDU", near=f"{CENTRE[0]},{CENTRE[1]}")
    assert [f["id"] for f in page["items"]] == [near["id"], middle["id"]]
    assert 150 < page["items"][0]["distance_m"] < 250
    wider = await search(registry, "EDU", near=f"{CENTRE[0]},{CENTRE[1]}", radius_m=2000)
    assert [f["id"] for f in wider["items"]] == [near["id"], middle["id"], far["id"]]

    public = await registry.client.get("/v1/public/facilities", params={"near": f"{CENTRE[0]},{CENTRE[1]}"})
    assert [f["name"] for f in public.json()["items"]] == ["近", "中"]


async def test_near_pages_in_distance_order_without_gaps(registry: Registry) -> None:
    ids = [(await registry.approved(name=f"点{i}", **east_of_centre(100 * i)))["id"] for i in range(1, 6)]
    seen, cursor = [], None
    for _ in range(5):
        params = {"near": f"{CENTRE[0]},{CENTRE[1]}", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await search(registry, "EDU", **params)
        seen += [f["id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids


async def test_filters_combine(registry: Registry) -> None:
    kindergarten = await registry.approved(
        kind="kindergarten", has_nursery_class=True, inclusive=False, service_modes=["half_day"]
    )
    in_huangpu = await registry.approved(town_code="310101002", lat=31.238, lon=121.484)
    submitted = await registry.submit()

    assert [f["id"] for f in (await search(registry, "EDU", kind="kindergarten"))["items"]] == [
        kindergarten["id"]
    ]
    assert [f["id"] for f in (await search(registry, "EDU", district_code="310101"))["items"]] == [
        in_huangpu["id"]
    ]
    assert [f["id"] for f in (await search(registry, "EDU", status="submitted"))["items"]] == [
        submitted["id"]
    ]
    assert [f["id"] for f in (await search(registry, "EDU", service_mode="half_day"))["items"]] == [
        kindergarten["id"]
    ]
    inclusive = {f["id"] for f in (await search(registry, "EDU", inclusive=True))["items"]}
    assert inclusive == {in_huangpu["id"], submitted["id"]}
    assert (await search(registry, "EDU", town_code="310101002"))["items"][0]["id"] == in_huangpu["id"]


async def test_free_places_follow_enrolment(registry: Registry) -> None:
    full = await registry.approved(capacity={"infant": 5, "toddler": 10, "preschool": 0})
    roomy = await registry.approved(capacity={"infant": 5, "toddler": 10, "preschool": 0})
    await registry.client.put(
        f"/v1/facilities/{full['id']}/enrolment",
        json={"month": "2026-11", "infant": 5, "toddler": 3, "preschool": 0},
        headers=registry["operator"],
    )
    with_infant_place = await search(registry, "EDU", free_places="infant")
    assert [f["id"] for f in with_infant_place["items"]] == [roomy["id"]]
    toddler = {
        f["id"]: f["free_places"]["toddler"]
        for f in (await search(registry, "EDU", free_places="toddler"))["items"]
    }
    assert toddler == {full["id"]: 7, roomy["id"]: 10}


async def test_pagination_past_the_end_is_an_empty_page(registry: Registry) -> None:
    for _ in range(3):
        await registry.submit()
    first = await search(registry, "EDU", limit=2)
    second = await search(registry, "EDU", limit=2, cursor=first["next_cursor"])
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None
    past = await search(registry, "EDU", limit=2, cursor=encode_cursor([second["items"][-1]["id"]]))
    assert past == {"items": [], "next_cursor": None}


async def test_bad_search_parameters_are_named(registry: Registry) -> None:
    for params, field in (
        ({"near": "north"}, "near"),
        ({"near": "31.2,121.4", "radius_m": 0}, "radius_m"),
        ({"radius_m": 500}, "radius_m"),
        ({"kind": "castle"}, "kind"),
        ({"district_code": "x"}, "district_code"),
        ({"limit": 1000}, "limit"),
    ):
        response = await registry.client.get("/v1/facilities", params=params, headers=registry["EDU"])
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] == field


async def test_the_public_sees_only_approved_facilities_and_public_fields(registry: Registry) -> None:
    approved = await registry.approved()
    submitted = await registry.submit()
    listed = (await registry.client.get("/v1/public/facilities")).json()
    assert [f["id"] for f in listed["items"]] == [approved["id"]]
    assert "owner_client_id" not in listed["items"][0] and "operator_name" not in listed["items"][0]
    # Asking for another status does not widen the public view.
    widened = (await registry.client.get("/v1/public/facilities", params={"status": "submitted"})).json()
    assert [f["id"] for f in widened["items"]] == [approved["id"]]
    assert (await registry.client.get(f"/v1/public/facilities/{submitted['id']}")).status_code == 404
    page = (await registry.client.get(f"/v1/public/facilities/{approved['id']}")).json()
    assert page["license_no"] == approved["license_no"]
    assert page["inspections"] == [] and page["credit_record"] == []
