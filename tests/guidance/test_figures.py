"""The plan's figures: a small city built through the API, then every numerator and denominator
checked, per district and city-wide, for this year and the last. The module's stack is the test's
alone: the figures count every family, station and session in a district, so another test's would
change them (who may read them, and through the gateway: test_gateway_paths.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.guidance.conftest import HUANGPU, HUANGPU_TOWN, XUHUI, Guide, from_now, months_ago

pytestmark = pytest.mark.asyncio(loop_scope="module")
OTHER_UNIT = "310104501"  # 漕河泾新兴技术开发区: a valid address, not a 街镇 in the denominators


async def place(guide: Guide, kind: str, opened_on: date, **where: str) -> None:
    body = {"kind": kind, "name": f"{kind} {opened_on}", "opened_on": opened_on.isoformat(), **where}
    response = await guide.direct.post("/v1/places", json=body, headers=guide.bureau())
    assert response.status_code == 201, response.text


async def read(guide: Guide, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = await guide.direct.get(
        "/v1/guidance/figures", params=params, headers=headers or guide.bureau()
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_figures_count_what_happened_in_the_year(guide: Guide) -> None:
    this_year = datetime.now(UTC).year
    last_year = date(this_year - 1, 6, 1)
    recently = datetime.now(UTC).date() - timedelta(days=1)
    # Stations: two Xuhui 街镇 (one of them twice), one opened only this year; an `other` unit.
    await place(guide, "guidance_station", last_year, town_code="310104003")
    await place(guide, "guidance_station", recently, town_code="310104003")
    await place(guide, "guidance_station", recently, town_code="310104004")
    await place(guide, "guidance_station", last_year, town_code=OTHER_UNIT)
    await place(guide, "development_base", last_year, district_code=XUHUI)
    await place(guide, "child_friendly_site", last_year, town_code=HUANGPU_TOWN)
    await place(guide, "child_friendly_site", recently, town_code=HUANGPU_TOWN)
    await place(guide, "observation_room", recently, town_code=HUANGPU_TOWN)
    await place(guide, "parent_child_room", recently, town_code="310104003")

    # Families: newborn families in need, two of three visited; one newborn not in need, visited.
    newborns = [
        await guide.family(newborn=True, in_need=True, children=[{"birth_date": months_ago(0).isoformat()}])
        for _ in range(3)
    ]
    not_in_need = await guide.family(newborn=True, in_need=False, has_handbook=True)
    for family in (*newborns[:2], not_in_need):
        visit = {
            "family_id": family["id"],
            "visited_on": recently.isoformat(),
            "visitor": "社区医生",
            "topics": ["newborn_visit"],
        }
        assert (
            await guide.direct.post("/v1/home-visits", json=visit, headers=guide.district())
        ).status_code == 201
    huangpu = await guide.family(
        guide.district(HUANGPU), town_code=HUANGPU_TOWN, in_need=True, has_handbook=True
    )

    # Offline: one family in need attends six sessions, another five, a family not in need six.
    regular, occasional = newborns[0], newborns[1]
    organiser = guide.district(client_id="district-310104-figures")
    sessions = [await guide.session(organiser, starts_at=from_now(hours=2 + n), capacity=5) for n in range(6)]
    for n, s in enumerate(sessions):
        for family in (regular, not_in_need) + ((occasional,) if n < 5 else ()):
            booked = await guide.book(s["id"], guide.district(), family_id=family["id"])
            assert booked.status_code == 201, booked.text
        ids = [regular["id"], not_in_need["id"]] + ([occasional["id"]] if n < 5 else [])
        marked = await guide.direct.post(
            f"/v1/sessions/{s['id']}/attendance", json={"family_ids": ids}, headers=organiser
        )
        assert marked.status_code == 200
    # Events held: a city-level and two Xuhui district-level 育儿加油站 in the past; a course is no event.
    city = {
        "level": "city",
        "kind": "parenting_station_event",
        "title": "市级育儿加油站",
        "starts_at": from_now(hours=-2),
        "capacity": 100,
    }
    assert (await guide.direct.post("/v1/sessions", json=city, headers=guide.bureau())).status_code == 201
    await guide.session(starts_at=from_now(hours=-3))
    await guide.session(starts_at=from_now(hours=-4))
    await guide.session(starts_at=from_now(hours=-4), kind="course")
    await guide.session(starts_at=from_now(days=3))  # not held yet
    # Online: a resource for newborns reaches the three newborn families in need.
    resource = {"kind": "article", "title": "新生儿护理", "age_from_months": 0, "age_to_months": 2}
    published = await guide.direct.post("/v1/resources", json=resource, headers=guide.bureau())
    assert published.json()["pushed_families"] == 3

    figures = await read(guide, year=this_year)
    xuhui = next(d for d in figures["districts"] if d["code"] == XUHUI)
    huangpu_row = next(d for d in figures["districts"] if d["code"] == HUANGPU)
    assert figures["city"]["towns"] == 216 and xuhui["towns"] == 13
    assert xuhui["towns_with_station"] == 2 and xuhui["stations"] == 4
    assert xuhui["development_bases"] == 1 and xuhui["has_development_base"] is True
    assert huangpu_row["new_child_friendly_sites"] == 1 and huangpu_row["child_friendly_sites"] == 2
    assert huangpu_row["has_observation_room"] is True and figures["districts_with_observation_room"] == 1
    assert xuhui["parent_child_rooms"] == 1
    assert (xuhui["newborn_families"], xuhui["newborn_families_visited"]) == (3, 2)
    assert (xuhui["families_in_need"], xuhui["families_in_need_offline_target_met"]) == (3, 1)
    assert xuhui["families_in_need_reached_online"] == 3
    assert (xuhui["families"], xuhui["families_with_handbook"]) == (4, 1)
    assert (
        huangpu_row["families"],
        huangpu_row["families_in_need"],
        huangpu_row["families_with_handbook"],
    ) == (1, 1, 1)
    assert (figures["city"]["city_events"], xuhui["district_events"], xuhui["city_events"]) == (1, 2, 0)
    assert xuhui["sessions_held"] == 3 and figures["city"]["sessions_held"] == 4
    indicators = {i["id"]: (i["numerator"], i["denominator"]) for i in figures["indicators"]}
    assert indicators["guidance_station_coverage"] == (2, 216)
    assert indicators["newborn_home_visits"] == (2, 3)
    assert indicators["offline_guidance"] == (1, 4)
    assert indicators["observation_room_pilots"] == (1, 16)
    assert indicators["development_bases.districts"] == (1, 16)
    assert indicators["guidance_events.city"] == (1, None) and indicators["guidance_events.district"] == (
        2,
        None,
    )
    assert indicators["handbook_holders"] == (2, 5) and indicators["online_guidance"] == (3, 4)

    # Last year: only what had opened by then; none of this year's families, sessions or sites.
    before = await read(guide, year=this_year - 1, district_code=XUHUI)
    assert [d["code"] for d in before["districts"]] == [XUHUI]
    old = before["districts"][0]
    assert (old["towns_with_station"], old["stations"], old["families"], old["sessions_held"]) == (1, 2, 0, 0)
    assert before["city"]["new_child_friendly_sites"] == 1 and before["districts_with_observation_room"] == 0
    assert huangpu["id"]
