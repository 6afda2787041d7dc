"""Coverage (T1) and demand (T6) as DOMAIN.md defines them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from services.registry.models import Facility
from shared.clock import shanghai_today
from tests.registry.conftest import Registry


async def test_coverage_counts_approved_inclusive_points_per_town(registry: Registry) -> None:
    # Two inclusive points in 天平路街道 (徐汇, central street), one in 南京东路街道 (黄浦, central street),
    # one in 川沙新镇 (浦东, not central), one not inclusive, one still submitted.
    await registry.approved(town_code="310104003")
    await registry.approved(town_code="310104003")
    await registry.approved(town_code="310101002", lat=31.238, lon=121.484)
    await registry.approved(town_code="310115103", lat=31.19, lon=121.70)
    await registry.approved(
        inclusive=False, kind="kindergarten", has_nursery_class=True, town_code="310104004"
    )
    await registry.approved(
        inclusive=False, kind="kindergarten", has_nursery_class=False, town_code="310104004"
    )
    await registry.submit(town_code="310104007")

    response = await registry.client.get(
        "/v1/coverage", params={"year": shanghai_today().year}, headers=registry["EDU"]
    )
    assert response.status_code == 200, response.text
    city = response.json()
    assert city["towns"] == 216 and city["central_streets"] == 72
    assert city["inclusive_points"] == 4 and city["new_inclusive_points"] == 4
    assert city["towns_with_point"] == 3
    assert city["inclusive_town_coverage"] == round(3 / 216, 4)
    assert city["central_streets_with_point"] == 2
    assert city["central_street_coverage"] == round(2 / 72, 4)
    assert (city["kindergartens"], city["kindergartens_with_nursery_class"]) == (2, 1)
    assert city["kindergarten_nursery_share"] == 0.5

    xuhui = next(d for d in city["districts"] if d["code"] == "310104")
    tianping = next(t for t in xuhui["town_coverage"] if t["code"] == "310104003")
    assert tianping == {
        "code": "310104003",
        "name": "天平路街道",
        "town_type": "street",
        "inclusive_points": 2,
        "has_inclusive_point": True,
        "new_inclusive_points": 2,
    }
    assert xuhui["towns"] == 13 and xuhui["towns_with_point"] == 1
    # Demand: places per 100 children under 3 (age 0 + ¾ × ages 1–4, census 2020).
    children = round(4506 + 0.75 * 27680)
    assert xuhui["children_under_3_estimate"] == children
    assert xuhui["places"] == 4 * 45  # approved only: the submitted one has no places yet
    assert xuhui["places_per_100_children"] == round(100 * 180 / children, 2)


async def test_a_past_year_counts_nothing_approved_later(registry: Registry) -> None:
    await registry.approved()
    city = (await registry.client.get("/v1/coverage", params={"year": 2021}, headers=registry["EDU"])).json()
    assert city["inclusive_points"] == 0 and city["towns_with_point"] == 0


async def test_the_year_is_shanghais(registry: Registry) -> None:
    # Approved at 00:30 on 1 January 2026 in Shanghai, still 31 December 2025 in UTC.
    facility = await registry.approved()
    async with registry.stack.registry.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(Facility)
            .where(Facility.id == facility["id"])
            .values(approved_at=datetime(2025, 12, 31, 16, 30, tzinfo=UTC))
        )

    before = await registry.client.get("/v1/coverage", params={"year": 2025}, headers=registry["EDU"])
    during = await registry.client.get("/v1/coverage", params={"year": 2026}, headers=registry["EDU"])
    assert before.json()["inclusive_points"] == 0
    assert (during.json()["inclusive_points"], during.json()["new_inclusive_points"]) == (1, 1)


async def test_coverage_needs_a_reading_scope_and_a_sane_year(registry: Registry) -> None:
    assert (await registry.client.get("/v1/coverage")).status_code == 401
    bad = await registry.client.get("/v1/coverage", params={"year": 1850}, headers=registry["EDU"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "year"
